"""One Config object, read once from the AGEGATE_* environment."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Annotated, Any, Literal, get_type_hints

import limits
from pydantic import AfterValidator, Field, StringConstraints, TypeAdapter, ValidationError

from agegate.outbound import parse_networks

REPO_ROOT = Path(__file__).resolve().parent.parent

ROLES = ("registration", "signals", "reviewer", "admin", "downstream")
DEFAULT_DELETION_SYSTEMS = ("chat", "payments", "message_boards", "profiles")
MIN_SECRET_LENGTH = 32


class ConfigError(Exception):
    """The environment cannot produce a safe configuration; the service refuses to boot."""


@dataclass(frozen=True)
class ApiKey:
    """One bearer token: `name` is the actor written to the audit trail."""

    name: str
    role: str
    token: str
    # `name:role:token:test`: everything the token does lives in test mode's keyspace.
    test: bool = False


def setting(env: str | None, default: Any = None, *, parse: Callable[[str], Any] | None = None,
            factory: Callable[[], Any] | None = None) -> Any:
    """One Config field read from `env`: its type annotation (with its range, pydantic's
    `Field(ge=..., le=...)`) says what is valid; `parse` turns a raw string into a value when
    pydantic's own conversion does not fit (lists, tables). Adding a setting is this one line in
    Config (plus its README row, which tests/test_config.py checks)."""
    metadata = {"env": env, "parse": parse}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def _systems(raw: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in raw.split(",") if s.strip())


def _port_or_none(raw: str) -> int | None:
    """A port; 0 means unset."""
    return int(raw) or None


def _rate_limit(value: str) -> str:
    try:
        parsed = limits.parse(value)
    except ValueError:
        raise ValueError("is not a rate limit (use e.g. '5 per hour')") from None
    if parsed.amount < 1:
        raise ValueError("must allow at least one request per window")
    return value


def _directory(path: Path) -> Path:
    if path.exists() and not path.is_dir():
        raise ValueError("names a file, not a directory")
    return path


def _origins(raw: str) -> tuple[str, ...]:
    return tuple(o.strip().rstrip("/") for o in raw.split(",") if o.strip())


def _pem_text(value: str) -> bytes:
    """A PEM bundle given as a file path or as the PEM text itself."""
    raw = value.strip()
    if not raw or raw.startswith("-----BEGIN"):
        return raw.encode()
    return Path(raw).read_bytes()


def _pem_bundle(value: str) -> str:
    from cryptography import x509

    try:
        if value.strip() and not x509.load_pem_x509_certificates(_pem_text(value)):
            raise ValueError
    except (OSError, ValueError):
        raise ValueError("is not a PEM bundle of certificates (a file or the PEM text)") from None
    return value


def _network(value: str) -> str:
    parse_networks([value])  # a ValueError names the value
    return value


Directory = Annotated[Path, AfterValidator(_directory)]
# A serialized web origin as browsers send it: lower-case scheme and host, no path; http:// only
# for the loopback names browsers treat as secure contexts.
Origin = Annotated[str, StringConstraints(
    pattern=r"^(https://[a-z0-9.-]+|http://(localhost|127\.0\.0\.1|\[::1\]))(:[0-9]{1,5})?$")]
Days = Annotated[int, Field(ge=1, le=3650)]
Name = Annotated[str, StringConstraints(pattern=r"^\S{1,200}$")]
SystemName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
Share = Annotated[float, Field(gt=0.0, lt=1.0, allow_inf_nan=False)]


@dataclass(frozen=True)
class Config:
    """Everything the service reads from its environment: one field per variable."""

    env: Literal["production", "development", "test"] = setting(
        "AGEGATE_ENV", "production", parse=lambda raw: raw.strip().lower())
    secret_key: str = setting("AGEGATE_SECRET_KEY", "")
    api_keys: tuple[ApiKey, ...] = setting("AGEGATE_API_KEYS", (), parse=lambda raw:
                                           parse_api_keys(raw))
    redis_url: Annotated[str, StringConstraints(
        pattern=r"^(redis|rediss|unix)://")] | None = setting("REDIS_URL", None)
    # REDIS_URL names one node of a Redis Cluster (storage/keys.py: every atomic write is one slot).
    redis_cluster: bool = setting("AGEGATE_REDIS_CLUSTER", False)
    # Durable acknowledgements (storage/replicas.py): replicas that confirm every write (WAIT),
    # and how long to wait for them (below the 5 s socket timeout).
    redis_min_replicas: Annotated[int, Field(ge=0, le=5)] = setting(
        "AGEGATE_REDIS_MIN_REPLICAS", 0)
    redis_wait_ms: Annotated[int, Field(ge=1, le=4000)] = setting("AGEGATE_REDIS_WAIT_MS", 500)
    data_dir: Directory = setting("AGEGATE_DATA_DIR", REPO_ROOT / "var")
    model_dir: Directory = setting("AGEGATE_MODEL_DIR", REPO_ROOT / "model")
    retry_block_days: Days = setting("AGEGATE_RETRY_BLOCK_DAYS", 30)
    deletion_systems: Annotated[tuple[SystemName, ...], Field(min_length=1, max_length=64)] = \
        setting("AGEGATE_DELETION_SYSTEMS", DEFAULT_DELETION_SYSTEMS, parse=_systems)
    deletion_due_days: Annotated[int, Field(ge=1, le=365)] = setting(
        "AGEGATE_DELETION_DUE_DAYS", 30)
    events_stream: Name = setting("AGEGATE_EVENTS_STREAM", "agegate:events")
    # The signal stream `agegate worker` reads (API.md "Signal stream"), its batch size, and
    # how long an entry may sit unacknowledged with a worker before another one takes it over.
    signals_stream: Name = setting("AGEGATE_SIGNALS_STREAM", "agegate:signals")
    signals_batch: Annotated[int, Field(ge=1, le=1000)] = setting("AGEGATE_SIGNALS_BATCH", 100)
    signals_claim_idle_seconds: Annotated[int, Field(ge=1, le=86_400)] = setting(
        "AGEGATE_SIGNALS_CLAIM_IDLE_SECONDS", 60)
    smtp_url: Annotated[str, StringConstraints(pattern=r"^smtps?://")] | None = setting(
        "AGEGATE_SMTP_URL", None)
    smtp_sender: Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+$",
                                                  max_length=254)] = setting(
        "AGEGATE_SMTP_SENDER", "agegate@localhost")
    # Minimum age per jurisdiction ("US", "US-AL"); unlisted places use default_minimum_age.
    minimum_ages: dict[str, Annotated[int, Field(ge=13, le=25)]] = setting(
        "AGEGATE_MINIMUM_AGES", parse=lambda raw: parse_minimum_ages(raw), factory=dict)
    default_minimum_age: Annotated[int, Field(ge=13, le=25)] = setting(
        "AGEGATE_DEFAULT_MINIMUM_AGE", 18)
    # An operator's jurisdiction rows, merged over agegate/data/jurisdictions.json.
    jurisdictions_file: Path | None = setting("AGEGATE_JURISDICTIONS_FILE", None)
    # Platform age signals expire after this many days; appeals are due this many days after
    # they arrive.
    age_signal_ttl_days: Days = setting("AGEGATE_AGE_SIGNAL_TTL_DAYS", 365)
    appeal_due_days: Annotated[int, Field(ge=1, le=90)] = setting("AGEGATE_APPEAL_DUE_DAYS", 7)
    # Age-assurance records are kept this long, also after the account is deleted.
    assurance_retention_days: Annotated[int, Field(ge=30, le=3650)] = setting(
        "AGEGATE_ASSURANCE_RETENTION_DAYS", 730)
    content_removal_all_regions: bool = setting("AGEGATE_CONTENT_REMOVAL_ALL_REGIONS", False)
    parent_request_rate_limit: Annotated[str, AfterValidator(_rate_limit)] = setting(
        "AGEGATE_PARENT_REQUEST_RATE_LIMIT", "5 per hour")
    parent_request_email_rate_limit: Annotated[str, AfterValidator(_rate_limit)] = setting(
        "AGEGATE_PARENT_REQUEST_EMAIL_RATE_LIMIT", "10 per day")
    # Never more than the proxies that really append to X-Forwarded-For (README).
    trusted_proxies: Annotated[int, Field(ge=0, le=10)] = setting("AGEGATE_TRUSTED_PROXIES", 0)
    review_lease_seconds: Annotated[int, Field(ge=10, le=86_400)] = setting(
        "AGEGATE_REVIEW_LEASE_SECONDS", 900)
    # The body size ceiling of authenticated routes without their own limit (api/body.py).
    max_body_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = setting(
        None, 1024 * 1024)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = setting(
        "AGEGATE_LOG_LEVEL", "INFO", parse=lambda raw: raw.strip().upper())
    load_model: bool = setting(None, True)
    # The share of accounts the operator expects to be run by minors: the classifier's score is
    # shifted from its training share of minors to this, so a score is the probability on the
    # platform. `flagged` (a review case) is score >= minor_review_threshold.
    minor_prevalence: Share = setting("AGEGATE_MINOR_PREVALENCE", 0.02)
    minor_review_threshold: Share = setting("AGEGATE_REVIEW_THRESHOLD", 0.5)
    # When set, /metrics is served on this port only (agegate/metrics_server.py), not the API's.
    metrics_port: Annotated[int, Field(ge=1, le=65535)] | None = setting(
        "AGEGATE_METRICS_PORT", None, parse=_port_or_none)
    # De-identified reviewer examples kept for `agegate recalibrate`; the oldest go first.
    feedback_max_examples: Annotated[int, Field(ge=1, le=10_000_000)] = setting(
        "AGEGATE_FEEDBACK_MAX_EXAMPLES", 50_000)
    # Digital credentials: the web origins wallets may present to, and the PEM bundle (a file,
    # or the PEM text itself) of the trust anchors document signers must chain to.
    credential_origins: tuple[Origin, ...] = setting("AGEGATE_CREDENTIAL_ORIGINS", (),
                                                     parse=_origins)
    credential_trust_anchors: Annotated[str, AfterValidator(_pem_bundle)] = setting(
        "AGEGATE_CREDENTIAL_TRUST_ANCHORS", "")
    # Webhook URLs: http:// too (https:// only by default), and networks (CIDRs) allowed on
    # purpose beside public addresses (agegate/outbound.py).
    webhook_allow_http: bool = setting("AGEGATE_WEBHOOK_ALLOW_HTTP", False)
    webhook_allowed_networks: tuple[Annotated[str, AfterValidator(_network)], ...] = setting(
        "AGEGATE_WEBHOOK_ALLOWED_NETWORKS", (), parse=_systems)

    @property
    def secret_keys(self) -> list[str]:
        """The live keys, comma-separated in AGEGATE_SECRET_KEY: the first hashes and signs
        everything new, the others are still recognised (a rotation)."""
        return [key.strip() for key in self.secret_key.split(",") if key.strip()]

    def credential_anchor_pem(self) -> bytes:
        """The trust-anchor bundle's PEM bytes (empty when none is configured)."""
        return _pem_text(self.credential_trust_anchors)

    @property
    def development(self) -> bool:
        """True for the local `agegate serve` run and tests."""
        return self.env in ("development", "test")

    def with_overrides(self, **changes: object) -> Config:
        """A copy with some fields replaced (used by tests and the CLI)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    def validate(self) -> Config:
        """Refuse configurations that would be unsafe to run: every field within its range
        (its annotation), then the rules that relate several fields."""
        for item in fields(self):
            _check(item.name, getattr(self, item.name))
        if not self.secret_keys:
            raise ConfigError("AGEGATE_SECRET_KEY is required outside development")
        for position, key in enumerate(self.secret_keys, 1):
            if len(key) < MIN_SECRET_LENGTH:
                which = f"key {position} of " if len(self.secret_keys) > 1 else ""
                raise ConfigError(f"{which}AGEGATE_SECRET_KEY must be at least "
                                  f"{MIN_SECRET_LENGTH} characters")
        if len(set(self.secret_keys)) != len(self.secret_keys):
            raise ConfigError("AGEGATE_SECRET_KEY lists the same key twice")
        if self.jurisdictions_file is not None and not self.jurisdictions_file.is_file():
            raise ConfigError("AGEGATE_JURISDICTIONS_FILE does not name a readable file")
        if self.redis_cluster and not self.redis_url:
            raise ConfigError("AGEGATE_REDIS_CLUSTER=true needs REDIS_URL to name a cluster node")
        if self.redis_min_replicas and not self.redis_url:
            raise ConfigError("AGEGATE_REDIS_MIN_REPLICAS needs REDIS_URL (the embedded "
                              "redis-server has no replicas)")
        if self.minor_prevalence >= self.minor_review_threshold:
            # An account without any evidence scores the prevalence: every one would be flagged.
            raise ConfigError("AGEGATE_MINOR_PREVALENCE must be below AGEGATE_REVIEW_THRESHOLD, "
                              "or every account without evidence is flagged")
        return self


_ADAPTERS: dict[str, TypeAdapter[Any]] = {}
# Never echoed in an error message: they hold keys, tokens or a URL's password.
_SECRET_FIELDS = frozenset({"secret_key", "api_keys", "redis_url", "smtp_url"})


def _adapter(name: str) -> TypeAdapter[Any]:
    """pydantic's validator for one Config field (its annotation, range included)."""
    if name not in _ADAPTERS:
        _ADAPTERS[name] = TypeAdapter(get_type_hints(Config, include_extras=True)[name])
    return _ADAPTERS[name]


def variable(name: str) -> str:
    """The environment variable a Config field is read from (the field's name if none)."""
    return {item.name: item.metadata.get("env") for item in fields(Config)}.get(name) or name


def _check(name: str, value: Any) -> Any:
    """`value` validated (and converted from a string) for the field `name`, or ConfigError
    naming the variable and what is wrong."""
    try:
        return _adapter(name).validate_python(value)
    except ValidationError as error:
        problem = error.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        shown = "" if name in _SECRET_FIELDS else f" (got {str(value)[:60]!r})"
        raise ConfigError(f"{variable(name)}{' ' + where if where else ''}: "
                          f"{problem['msg']}{shown}") from None


def parse_api_keys(raw: str) -> tuple[ApiKey, ...]:
    """Parse `name:role:token[:test],...`; several tokens per role are allowed for rotation."""
    keys: list[ApiKey] = []
    seen_tokens: set[str] = set()
    for position, entry in enumerate(filter(None, (e.strip() for e in raw.split(","))), 1):
        parts = entry.split(":")
        if len(parts) not in (3, 4) or not all(parts):
            raise ConfigError(f"AGEGATE_API_KEYS entry {position} is not name:role:token")
        if parts[3:] not in ([], ["test"]):
            raise ConfigError(f"AGEGATE_API_KEYS entry {position}: the 4th field can only be "
                              "'test'")
        name, role, token = parts[:3]
        if role not in ROLES:
            raise ConfigError(f"AGEGATE_API_KEYS entry {position} has unknown role {role!r}")
        if len(token) < 16:
            raise ConfigError(f"AGEGATE_API_KEYS entry {position} has a token under 16 characters")
        if token in seen_tokens:
            raise ConfigError(f"AGEGATE_API_KEYS entry {position} reuses a token")
        seen_tokens.add(token)
        keys.append(ApiKey(name=name, role=role, token=token, test=len(parts) == 4))
    return tuple(keys)


_JURISDICTION = re.compile(r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")


def parse_minimum_ages(raw: str) -> dict[str, int]:
    """Parse `US-AL:19,JP:20` into a jurisdiction table (the ages' range is the field's)."""
    table: dict[str, int] = {}
    for entry in filter(None, (e.strip() for e in raw.split(","))):
        place, _, age = entry.partition(":")
        place = place.strip().upper()
        if not _JURISDICTION.match(place) or not age.strip().isdigit():
            raise ConfigError(f"AGEGATE_MINIMUM_AGES entry {entry!r} is not PLACE:AGE")
        table[place] = int(age)
    return table


def from_env(env: dict[str, str] | None = None) -> Config:
    """Build the Config from the environment (os.environ by default): every variable is
    converted and range-checked here, and a bad one is a ConfigError naming it."""
    env = dict(os.environ if env is None else env)
    values: dict[str, Any] = {}
    for item in fields(Config):
        name, parse = item.metadata.get("env"), item.metadata.get("parse")
        raw = env.get(name) if name else None
        if raw is None or raw.strip() == "":
            continue
        try:
            value = parse(raw) if parse else raw.strip()
        except ValueError:
            raise ConfigError(f"{name}: not a valid value") from None
        values[item.name] = _check(item.name, value)
    return Config(**values)


def development_defaults(config: Config) -> Config:
    """Fill what a local run needs: a persistent dev secret and one generated token per role."""
    changes: dict[str, object] = {}
    if not config.secret_key:
        secret_file = config.data_dir / "dev-secret"
        config.data_dir.mkdir(parents=True, exist_ok=True)
        if not secret_file.exists():
            # Keyed hashes must stay stable across restarts, or retry blocks silently vanish.
            secret_file.write_text(secrets.token_urlsafe(48))
            secret_file.chmod(0o600)
        changes["secret_key"] = secret_file.read_text().strip()
    if not config.api_keys:
        changes["api_keys"] = tuple(
            ApiKey(name=f"dev-{role}", role=role, token=secrets.token_urlsafe(24)) for role in ROLES
        )
    return config.with_overrides(**changes) if changes else config
