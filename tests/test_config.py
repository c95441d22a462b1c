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
