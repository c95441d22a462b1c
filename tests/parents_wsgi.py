"""gunicorn entry for the multi-worker tests: wsgi:app's config from the environment, loading
the model only when its artifact exists (as the in-process test config does)."""

from agegate import create_app
from agegate.config import from_env
from tests.conftest import MODEL_DIR

config = from_env()
app = create_app(config.with_overrides(load_model=(MODEL_DIR / "card.json").exists()))
