"""One Config object, read once from the AGEGATE_* environment."""

from __future__ import annotations

import math
import os
import re
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path

import limits

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


@dataclass(frozen=True)
class Config:
    """Everything the service reads from its environment."""

    env: str = "production"
    secret_key: str = ""
    api_keys: tuple[ApiKey, ...] = ()
    redis_url: str | None = None
    # REDIS_URL names one node of a Redis Cluster (storage/keys.py: every atomic write is one slot).
    redis_cluster: bool = False
    # Durable acknowledgements (storage/replicas.py): replicas that confirm every write (WAIT).
    redis_min_replicas: int = 0
    redis_wait_ms: int = 500
    data_dir: Path = REPO_ROOT / "var"
    model_dir: Path = REPO_ROOT / "model"
    retry_block_days: int = 30
    deletion_systems: tuple[str, ...] = DEFAULT_DELETION_SYSTEMS
    deletion_due_days: int = 30
    events_stream: str = "agegate:events"
    # The signal stream `agegate worker` reads (API.md "Signal stream"), its batch size, and
    # how long an entry may sit unacknowledged with a worker before another one takes it over.
    signals_stream: str = "agegate:signals"
    signals_batch: int = 100
    signals_claim_idle_seconds: int = 60
    smtp_url: str | None = None
    smtp_sender: str = "agegate@localhost"
    # Minimum age per jurisdiction ("US", "US-AL"); unlisted places use default_minimum_age.
    minimum_ages: dict[str, int] = field(default_factory=dict)
    default_minimum_age: int = 18
    # An operator's jurisdiction rows, merged over agegate/data/jurisdictions.json.
    jurisdictions_file: Path | None = None
    # Platform age signals expire after this many days; appeals are due this many days after
    # they arrive.
    age_signal_ttl_days: int = 365
    appeal_due_days: int = 7
    content_removal_all_regions: bool = False
    parent_request_rate_limit: str = "5 per hour"
    trusted_proxies: int = 0
    review_lease_seconds: int = 900
    # The body size ceiling of authenticated routes without their own limit (api/body.py).
    max_body_bytes: int = 1024 * 1024
    log_level: str = "INFO"
    load_model: bool = True
    # The share of accounts the operator expects to be run by minors: the classifier's score is
    # shifted from its training share of minors to this, so a score is the probability on the
    # platform. `flagged` (a review case) is score >= minor_review_threshold.
    minor_prevalence: float = 0.02
    minor_review_threshold: float = 0.5
    # When set, /metrics is served on this port only (agegate/metrics_server.py), not the API's.
    metrics_port: int | None = None

    @property
    def secret_keys(self) -> list[str]:
        """The live keys, comma-separated in AGEGATE_SECRET_KEY: the first hashes and signs
        everything new, the others are still recognised (a rotation)."""
        return [key.strip() for key in self.secret_key.split(",") if key.strip()]
    # De-identified reviewer examples kept for `agegate recalibrate`; the oldest go first.
    feedback_max_examples: int = 50_000

    @property
    def development(self) -> bool:
        """True for the local `agegate serve` run and tests."""
        return self.env in ("development", "test")

    def with_overrides(self, **changes: object) -> Config:
        """A copy with some fields replaced (used by tests and the CLI)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    def validate(self) -> Config:
        """Refuse configurations that would be unsafe to run."""
        if not self.secret_keys:
            raise ConfigError("AGEGATE_SECRET_KEY is required outside development")
        for position, key in enumerate(self.secret_keys, 1):
            if len(key) < MIN_SECRET_LENGTH:
                which = f"key {position} of " if len(self.secret_keys) > 1 else ""
                raise ConfigError(f"{which}AGEGATE_SECRET_KEY must be at least "
                                  f"{MIN_SECRET_LENGTH} characters")
        if len(set(self.secret_keys)) != len(self.secret_keys):
            raise ConfigError("AGEGATE_SECRET_KEY lists the same key twice")
        if self.retry_block_days < 1:
            raise ConfigError("AGEGATE_RETRY_BLOCK_DAYS must be a positive number of days")
        if not 1 <= self.age_signal_ttl_days <= 3650:
            raise ConfigError("AGEGATE_AGE_SIGNAL_TTL_DAYS must be 1..3650")
        if not 1 <= self.appeal_due_days <= 90:
            raise ConfigError("AGEGATE_APPEAL_DUE_DAYS must be 1..90")
        if self.jurisdictions_file is not None and not self.jurisdictions_file.is_file():
            raise ConfigError("AGEGATE_JURISDICTIONS_FILE does not name a readable file")
        if not 1 <= self.signals_batch <= 1000:
            raise ConfigError("AGEGATE_SIGNALS_BATCH must be within 1..1000")
        if self.signals_claim_idle_seconds < 1:
            raise ConfigError("AGEGATE_SIGNALS_CLAIM_IDLE_SECONDS must be at least 1")
        if not self.deletion_systems:
            raise ConfigError("AGEGATE_DELETION_SYSTEMS must name at least one system")
        if self.redis_cluster and not self.redis_url:
            raise ConfigError("AGEGATE_REDIS_CLUSTER=true needs REDIS_URL to name a cluster node")
        if not 0 <= self.redis_min_replicas <= 5 or not 1 <= self.redis_wait_ms <= 4000:
            raise ConfigError("AGEGATE_REDIS_MIN_REPLICAS must be 0..5, AGEGATE_REDIS_WAIT_MS "
                              "1..4000 (below the 5 s socket timeout)")
        if self.redis_min_replicas and not self.redis_url:
            raise ConfigError("AGEGATE_REDIS_MIN_REPLICAS needs REDIS_URL (the embedded "
                              "redis-server has no replicas)")
        if not 0.0 < self.minor_prevalence < 1.0:
            raise ConfigError("AGEGATE_MINOR_PREVALENCE must be a share strictly between 0 and 1")
        if not 0.0 < self.minor_review_threshold < 1.0:
            raise ConfigError("AGEGATE_REVIEW_THRESHOLD must be a probability strictly between "
                              "0 and 1")
        if self.minor_prevalence >= self.minor_review_threshold:
            # An account without any evidence scores the prevalence: every one would be flagged.
            raise ConfigError("AGEGATE_MINOR_PREVALENCE must be below AGEGATE_REVIEW_THRESHOLD, "
                              "or every account without evidence is flagged")
        try:
            limits.parse(self.parent_request_rate_limit)
        except ValueError:
            raise ConfigError("AGEGATE_PARENT_REQUEST_RATE_LIMIT is not a rate limit "
                              "(use e.g. '5 per hour')") from None
        if self.metrics_port is not None and not 1 <= self.metrics_port <= 65535:
            raise ConfigError("AGEGATE_METRICS_PORT must be a TCP port (1-65535)")
        if not 1 <= self.feedback_max_examples <= 10_000_000:
            raise ConfigError("AGEGATE_FEEDBACK_MAX_EXAMPLES must be within 1..10000000")
        return self


def parse_api_keys(raw: str) -> tuple[ApiKey, ...]:
    """Parse `name:role:token,...`; several tokens per role are allowed for rotation."""
    keys: list[ApiKey] = []
    seen_tokens: set[str] = set()
    for position, entry in enumerate(filter(None, (e.strip() for e in raw.split(","))), 1):
        parts = entry.split(":", 2)
        if len(parts) != 3 or not all(parts):
            raise ConfigError(f"AGEGATE_API_KEYS entry {position} is not name:role:token")
        name, role, token = parts
        if role not in ROLES:
            raise ConfigError(f"AGEGATE_API_KEYS entry {position} has unknown role {role!r}")
        if len(token) < 16:
            raise ConfigError(f"AGEGATE_API_KEYS entry {position} has a token under 16 characters")
        if token in seen_tokens:
            raise ConfigError(f"AGEGATE_API_KEYS entry {position} reuses a token")
        seen_tokens.add(token)
        keys.append(ApiKey(name=name, role=role, token=token))
    return tuple(keys)


_JURISDICTION = re.compile(r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")


def parse_minimum_ages(raw: str) -> dict[str, int]:
    """Parse `US-AL:19,JP:20` into a jurisdiction table."""
    table: dict[str, int] = {}
    for entry in filter(None, (e.strip() for e in raw.split(","))):
        place, _, age = entry.partition(":")
        place = place.strip().upper()
        if not _JURISDICTION.match(place) or not age.strip().isdigit():
            raise ConfigError(f"AGEGATE_MINIMUM_AGES entry {entry!r} is not PLACE:AGE")
        if not 13 <= int(age) <= 25:
            raise ConfigError(f"AGEGATE_MINIMUM_AGES entry {entry!r} is outside 13..25")
        table[place] = int(age)
    return table


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number") from None


def _bool(env: dict[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false")


def _float(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number") from None
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number")
    return value


def from_env(env: dict[str, str] | None = None) -> Config:
    """Build the Config from the environment (os.environ by default)."""
    env = dict(os.environ if env is None else env)
    systems = tuple(
        s.strip() for s in env.get("AGEGATE_DELETION_SYSTEMS", ",".join(DEFAULT_DELETION_SYSTEMS))
        .split(",") if s.strip()
    )
    return Config(
        env=env.get("AGEGATE_ENV", "production").strip().lower() or "production",
        secret_key=env.get("AGEGATE_SECRET_KEY", ""),
        api_keys=parse_api_keys(env.get("AGEGATE_API_KEYS", "")),
        redis_url=env.get("REDIS_URL") or None,
        redis_cluster=_bool(env, "AGEGATE_REDIS_CLUSTER", False),
        redis_min_replicas=_int(env, "AGEGATE_REDIS_MIN_REPLICAS", 0),
        redis_wait_ms=_int(env, "AGEGATE_REDIS_WAIT_MS", 500),
        data_dir=Path(env.get("AGEGATE_DATA_DIR") or REPO_ROOT / "var"),
        model_dir=Path(env.get("AGEGATE_MODEL_DIR") or REPO_ROOT / "model"),
        retry_block_days=_int(env, "AGEGATE_RETRY_BLOCK_DAYS", 30),
        deletion_systems=systems,
        deletion_due_days=_int(env, "AGEGATE_DELETION_DUE_DAYS", 30),
        events_stream=env.get("AGEGATE_EVENTS_STREAM") or "agegate:events",
        signals_stream=env.get("AGEGATE_SIGNALS_STREAM") or "agegate:signals",
        signals_batch=_int(env, "AGEGATE_SIGNALS_BATCH", 100),
        signals_claim_idle_seconds=_int(env, "AGEGATE_SIGNALS_CLAIM_IDLE_SECONDS", 60),
        smtp_url=env.get("AGEGATE_SMTP_URL") or None,
        smtp_sender=env.get("AGEGATE_SMTP_SENDER") or "agegate@localhost",
        minimum_ages=parse_minimum_ages(env.get("AGEGATE_MINIMUM_AGES", "")),
        default_minimum_age=_int(env, "AGEGATE_DEFAULT_MINIMUM_AGE", 18),
        jurisdictions_file=Path(env["AGEGATE_JURISDICTIONS_FILE"])
        if env.get("AGEGATE_JURISDICTIONS_FILE") else None,
        age_signal_ttl_days=_int(env, "AGEGATE_AGE_SIGNAL_TTL_DAYS", 365),
        appeal_due_days=_int(env, "AGEGATE_APPEAL_DUE_DAYS", 7),
        content_removal_all_regions=_bool(env, "AGEGATE_CONTENT_REMOVAL_ALL_REGIONS", False),
        parent_request_rate_limit=env.get("AGEGATE_PARENT_REQUEST_RATE_LIMIT") or "5 per hour",
        trusted_proxies=_int(env, "AGEGATE_TRUSTED_PROXIES", 0),
        review_lease_seconds=_int(env, "AGEGATE_REVIEW_LEASE_SECONDS", 900),
        log_level=(env.get("AGEGATE_LOG_LEVEL") or "INFO").upper(),
        minor_prevalence=_float(env, "AGEGATE_MINOR_PREVALENCE", 0.02),
        minor_review_threshold=_float(env, "AGEGATE_REVIEW_THRESHOLD", 0.5),
        metrics_port=_int(env, "AGEGATE_METRICS_PORT", 0) or None,
        feedback_max_examples=_int(env, "AGEGATE_FEEDBACK_MAX_EXAMPLES", 50_000),
    )


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
