"""The service refuses to boot on an unsafe configuration."""

from __future__ import annotations

import pytest

from agegate.config import ConfigError, development_defaults, from_env

GOOD_SECRET = "s" * 40


def test_production_requires_a_secret():
    with pytest.raises(ConfigError, match="AGEGATE_SECRET_KEY"):
        from_env({}).validate()
    with pytest.raises(ConfigError, match="at least"):
        from_env({"AGEGATE_SECRET_KEY": "short"}).validate()
    assert from_env({"AGEGATE_SECRET_KEY": GOOD_SECRET}).validate().secret_key == GOOD_SECRET


def test_api_keys_are_parsed_with_several_tokens_per_role():
    config = from_env({"AGEGATE_API_KEYS": "signup:registration:aaaaaaaaaaaaaaaa, "
                       "alice:reviewer:bbbbbbbbbbbbbbbb,bob:reviewer:cccccccccccccccc"})
    assert [(k.name, k.role) for k in config.api_keys] == [
        ("signup", "registration"), ("alice", "reviewer"), ("bob", "reviewer")]


@pytest.mark.parametrize("raw", ["alice:reviewer", "alice:king:bbbbbbbbbbbbbbbb",
                                 "alice:reviewer:short", "a:admin:xxxxxxxxxxxxxxxx,"
                                 "b:admin:xxxxxxxxxxxxxxxx"])
def test_bad_api_keys_refuse_to_boot(raw):
    with pytest.raises(ConfigError, match="AGEGATE_API_KEYS"):
        from_env({"AGEGATE_API_KEYS": raw})


@pytest.mark.parametrize(("name", "value"), [("AGEGATE_RETRY_BLOCK_DAYS", "thirty"),
                                             ("AGEGATE_MINIMUM_AGES", "US-AL=19"),
                                             ("AGEGATE_MINIMUM_AGES", "US:99"),
                                             ("AGEGATE_CONTENT_REMOVAL_ALL_REGIONS", "maybe")])
def test_bad_values_refuse_to_boot(name, value):
    with pytest.raises(ConfigError, match=name):
        from_env({name: value, "AGEGATE_SECRET_KEY": GOOD_SECRET}).validate()


def test_settings_are_read():
    config = from_env({"AGEGATE_RETRY_BLOCK_DAYS": "7", "AGEGATE_DELETION_SYSTEMS": "chat, crm",
                       "AGEGATE_MINIMUM_AGES": "us-al:19,JP:20",
                       "AGEGATE_EVENTS_STREAM": "ev", "REDIS_URL": "redis://r:6379/0"})
    assert config.retry_block_days == 7
    assert config.deletion_systems == ("chat", "crm")
    assert config.minimum_ages == {"US-AL": 19, "JP": 20}
    assert config.events_stream == "ev" and config.redis_url == "redis://r:6379/0"


def test_development_generates_a_stable_secret_and_a_token_per_role(tmp_path):
    config = from_env({"AGEGATE_ENV": "development", "AGEGATE_DATA_DIR": str(tmp_path)})
    first = development_defaults(config)
    second = development_defaults(config)
    assert len(first.secret_key) >= 32 and first.secret_key == second.secret_key
    assert {k.role for k in first.api_keys} == {"registration", "signals", "reviewer", "admin",
                                                 "downstream"}
    first.validate()


def test_minor_prevalence_and_review_threshold_are_read_with_defaults():
    default = from_env({"AGEGATE_SECRET_KEY": GOOD_SECRET}).validate()
    assert default.minor_prevalence == 0.02 and default.minor_review_threshold == 0.5
    config = from_env({"AGEGATE_SECRET_KEY": GOOD_SECRET, "AGEGATE_MINOR_PREVALENCE": "0.1",
                       "AGEGATE_REVIEW_THRESHOLD": "0.7"}).validate()
    assert config.minor_prevalence == 0.1 and config.minor_review_threshold == 0.7


@pytest.mark.parametrize(("name", "value"), [
    ("AGEGATE_MINOR_PREVALENCE", "0"), ("AGEGATE_MINOR_PREVALENCE", "1"),
    ("AGEGATE_MINOR_PREVALENCE", "2%"), ("AGEGATE_MINOR_PREVALENCE", "nan"),
    ("AGEGATE_REVIEW_THRESHOLD", "1.5"), ("AGEGATE_REVIEW_THRESHOLD", "-0.1"),
    ("AGEGATE_REVIEW_THRESHOLD", "inf")])
def test_bad_prevalence_or_threshold_refuses_to_boot(name, value):
    with pytest.raises(ConfigError, match=name):
        from_env({name: value, "AGEGATE_SECRET_KEY": GOOD_SECRET}).validate()


def test_prevalence_at_or_over_the_threshold_refuses_to_boot():
    with pytest.raises(ConfigError, match="AGEGATE_MINOR_PREVALENCE must be below"):
        from_env({"AGEGATE_SECRET_KEY": GOOD_SECRET, "AGEGATE_MINOR_PREVALENCE": "0.3",
                  "AGEGATE_REVIEW_THRESHOLD": "0.3"}).validate()


# One out-of-range (or malformed) value per variable Config reads. A new setting needs a row:
# test_every_variable_has_an_out_of_range_case fails until it has one.
OUT_OF_RANGE = {
    "AGEGATE_ENV": "staging",
    "AGEGATE_SECRET_KEY": "short",
    "AGEGATE_API_KEYS": "alice:reviewer:short",
    "REDIS_URL": "http://redis:6379/0",
    "AGEGATE_REDIS_CLUSTER": "maybe",
    "AGEGATE_REDIS_MIN_REPLICAS": "6",
    "AGEGATE_REDIS_WAIT_MS": "5000",
    "AGEGATE_DATA_DIR": __file__,
    "AGEGATE_MODEL_DIR": __file__,
    "AGEGATE_RETRY_BLOCK_DAYS": "0",
    "AGEGATE_DELETION_SYSTEMS": "chat, pay ments",
    "AGEGATE_DELETION_DUE_DAYS": "-1",
    "AGEGATE_EVENTS_STREAM": "agegate events",
    "AGEGATE_SIGNALS_STREAM": "x" * 201,
    "AGEGATE_SIGNALS_BATCH": "1001",
    "AGEGATE_SIGNALS_CLAIM_IDLE_SECONDS": "0",
    "AGEGATE_SMTP_URL": "mail.example.com:25",
    "AGEGATE_SMTP_SENDER": "nobody",
    "AGEGATE_MINIMUM_AGES": "US:12",
    "AGEGATE_DEFAULT_MINIMUM_AGE": "0",
    "AGEGATE_JURISDICTIONS_FILE": "/nonexistent/rows.json",
    "AGEGATE_AGE_SIGNAL_TTL_DAYS": "0",
    "AGEGATE_APPEAL_DUE_DAYS": "91",
    "AGEGATE_ASSURANCE_RETENTION_DAYS": "29",
    "AGEGATE_CONTENT_REMOVAL_ALL_REGIONS": "maybe",
    "AGEGATE_PARENT_REQUEST_RATE_LIMIT": "often",
    "AGEGATE_PARENT_REQUEST_EMAIL_RATE_LIMIT": "0 per day",
    "AGEGATE_TRUSTED_PROXIES": "-1",
    "AGEGATE_REVIEW_LEASE_SECONDS": "0",
    "AGEGATE_LOG_LEVEL": "LOUD",
    "AGEGATE_MINOR_PREVALENCE": "1",
    "AGEGATE_REVIEW_THRESHOLD": "0",
    "AGEGATE_METRICS_PORT": "70000",
    "AGEGATE_FEEDBACK_MAX_EXAMPLES": "0",
    "AGEGATE_CREDENTIAL_ORIGINS": "https://signup.example/path",
    "AGEGATE_CREDENTIAL_TRUST_ANCHORS": "/nonexistent/anchors.pem",
    "AGEGATE_WEBHOOK_ALLOW_HTTP": "maybe",
    "AGEGATE_WEBHOOK_ALLOWED_NETWORKS": "10.0.0.0/8, 10.0.0.0/33",
}


def _variables() -> list[str]:
    from dataclasses import fields

    from agegate.config import Config

    return [item.metadata["env"] for item in fields(Config) if item.metadata.get("env")]


def test_every_variable_has_an_out_of_range_case():
    assert sorted(_variables()) == sorted(OUT_OF_RANGE)


@pytest.mark.parametrize(("name", "value"), sorted(OUT_OF_RANGE.items()))
def test_an_out_of_range_value_refuses_to_boot_naming_its_variable(name, value):
    env = {"AGEGATE_SECRET_KEY": GOOD_SECRET, name: value}
    with pytest.raises(ConfigError, match=f"^{name}|[^_]{name}"):
        from_env(env).validate()


@pytest.mark.parametrize(("field", "value", "name"), [
    ("review_lease_seconds", 0, "AGEGATE_REVIEW_LEASE_SECONDS"),
    ("deletion_due_days", -1, "AGEGATE_DELETION_DUE_DAYS"),
    ("trusted_proxies", -1, "AGEGATE_TRUSTED_PROXIES"),
    ("default_minimum_age", 0, "AGEGATE_DEFAULT_MINIMUM_AGE"),
    ("max_body_bytes", 0, "max_body_bytes")])
def test_a_config_built_directly_is_range_checked_too(field, value, name):
    from agegate.config import Config

    built = Config(secret_key=GOOD_SECRET, **{field: value})
    with pytest.raises(ConfigError, match=name):
        built.validate()
    with pytest.raises(ConfigError, match=name):
        Config(secret_key=GOOD_SECRET).with_overrides(**{field: value}).validate()


def test_every_variable_is_in_the_readme_configuration_table():
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    table = readme.split("## Configuration", 1)[1].split("\n\n", 1)[0]
    missing = [name for name in [*_variables(), "AGEGATE_BIND"] if f"| `{name}` |" not in table]
    assert not missing


@pytest.mark.parametrize("origins", ["http://signup.example", "https://Signup.example",
                                     "signup.example", "https://signup.example/x"])
def test_credential_origins_are_serialized_web_origins(origins):
    with pytest.raises(ConfigError, match="AGEGATE_CREDENTIAL_ORIGINS"):
        from_env({"AGEGATE_SECRET_KEY": GOOD_SECRET,
                  "AGEGATE_CREDENTIAL_ORIGINS": origins}).validate()


def test_credential_trust_anchors_from_a_file_or_inline(tmp_path):
    from tests.mdoc_helpers import make_pki

    pem = make_pki().anchors_pem()
    bundle = tmp_path / "anchors.pem"
    bundle.write_bytes(pem)
    for value in (str(bundle), pem.decode()):
        config = from_env({"AGEGATE_SECRET_KEY": GOOD_SECRET,
                           "AGEGATE_CREDENTIAL_ORIGINS": "https://a.example, http://localhost:8701/",
                           "AGEGATE_CREDENTIAL_TRUST_ANCHORS": value}).validate()
        assert config.credential_anchor_pem().strip() == pem.strip()
        assert config.credential_origins == ("https://a.example", "http://localhost:8701")
    bundle.write_text("not a certificate")
    with pytest.raises(ConfigError, match="AGEGATE_CREDENTIAL_TRUST_ANCHORS"):
        from_env({"AGEGATE_SECRET_KEY": GOOD_SECRET,
                  "AGEGATE_CREDENTIAL_TRUST_ANCHORS": str(bundle)}).validate()


def _bounds(annotation) -> str | None:
    """A numeric field's range as the README writes it: `lo..hi`, or `(lo, hi)` when open (the
    bounds on the field, on its value when it is optional, or on a table's values)."""
    from typing import get_args

    found = {}
    for item in getattr(annotation, "__metadata__", ()):
        for bound in getattr(item, "metadata", [item]):  # pydantic's Field(...) holds a list
            found |= {name: getattr(bound, name) for name in ("ge", "le", "gt", "lt")
                      if hasattr(bound, name)}
    if {"ge", "le"} <= set(found):
        return f"{found['ge']}..{found['le']}"
    if {"gt", "lt"} <= set(found):
        return f"({found['gt']:g}, {found['lt']:g})"
    return next(filter(None, map(_bounds, get_args(annotation))), None)


def test_the_readme_rows_give_each_settings_range_and_default():
    from dataclasses import MISSING, fields
    from pathlib import Path
    from typing import get_type_hints

    from agegate.config import Config

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    table = readme.split("## Configuration", 1)[1].split("\n\n", 1)[0]
    rows = {line.split("|")[1].strip(" `"): line.split("|")[2:4]
            for line in table.splitlines() if line.startswith("| `")}
    hints = get_type_hints(Config, include_extras=True)
    wrong = []
    for item in fields(Config):
        name = item.metadata.get("env")
        if not name:
            continue
        meaning, default = rows[name]
        bounds = _bounds(hints[item.name])
        if bounds and bounds not in meaning:
            wrong.append(f"{name}: range {bounds}")
        value = item.default
        if value is not MISSING and isinstance(value, (bool, int, float, str)) and value != "":
            shown = str(value).lower() if isinstance(value, bool) else f"{value:g}" \
                if isinstance(value, float) else str(value)
            if f"`{shown}`" not in default:
                wrong.append(f"{name}: default {shown}")
    assert wrong == []
