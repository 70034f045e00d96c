"""The HTTP API (FastAPI): ``create_app(settings)`` builds the ASGI app."""

from scryon_dagster.api.app import create_app
from scryon_dagster.api.security import ApiConfigurationError

__all__ = ["ApiConfigurationError", "create_app"]
