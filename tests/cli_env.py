"""The environment a service process (the CLI, gunicorn) needs to run against the test Redis."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import API_KEYS, MODEL_DIR, SECRET

API_KEYS_ENV = ",".join(f"{k.name}:{k.role}:{k.token}" for k in API_KEYS)


def service_env(redis_url: str, tmp_path: Path) -> dict[str, str]:
    """Production settings against the test Redis, with the shipped model."""
    return {
        "AGEGATE_ENV": "production", "AGEGATE_SECRET_KEY": SECRET,
        "AGEGATE_API_KEYS": API_KEYS_ENV, "REDIS_URL": redis_url,
        "AGEGATE_DATA_DIR": str(tmp_path / "data"), "AGEGATE_MODEL_DIR": str(MODEL_DIR),
    }
