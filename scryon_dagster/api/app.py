"""The HTTP API as an ASGI app: health, call intake and reads, deletion, reprocessing and re-analysis,
the caller's voice profile, and the Lemonfox callback webhook. Served by ``scryon-dagster api``; the
OpenAPI document is at ``/api/openapi.json``, Swagger UI at ``/api/docs``, ReDoc at ``/api/redoc``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi_offline import FastAPIOffline

from scryon_dagster.adapters.db.embedded import resolve_database_url
from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.identity import IdTokenVerifier
from scryon_dagster.adapters.object_store import ObjectStore, build_object_store
from scryon_dagster.api.errors import install_error_handlers
from scryon_dagster.api.routes import call_changes, calls, health, voice_profiles, webhooks
from scryon_dagster.api.security import Authenticator
from scryon_dagster.api.services import ApiServices
from scryon_dagster.settings import Settings

logger = logging.getLogger(__name__)

API_DATABASE_TIMEOUT_SECONDS = 5
"""How long a request waits for a database connection before it is answered 503."""
DEFAULT_MAX_CALLBACK_BODY_BYTES = 16 * 1024 * 1024
"""Far above a long call's verbose_json (a few MB with word timestamps)."""


def package_version() -> str:
    try:
        return version("scryon_dagster")
    except PackageNotFoundError:
        return "unknown"


def create_app(
    settings: Settings,
    *,
    local_dev: bool = False,
    db: CallDatabase | None = None,
    store: ObjectStore | None = None,
    token_verifier: IdTokenVerifier | None = None,
    max_callback_body_bytes: int = DEFAULT_MAX_CALLBACK_BODY_BYTES,
) -> FastAPI:
    """The API for ``settings``.

    The calls routes act for the user of a verified ID token, or (trusted-service mode) for the
    user an API-key caller names; without an identity provider or trusted-service mode the app
    refuses to start unless ``local_dev`` is set, in which case every request acts for the fixed
    ``local-dev`` user (see ``security``). ``db``, ``store`` and ``token_verifier`` default to the
    ones the settings describe (the app then closes the database on shutdown).
    """
    owned_db = db is None
    database = db or CallDatabase(
        resolve_database_url(settings.scryon_database_url, settings.scryon_embedded_pg_dir),
        timeout_seconds=API_DATABASE_TIMEOUT_SECONDS,
        retry_seconds=API_DATABASE_TIMEOUT_SECONDS,
    )
    authenticator = Authenticator.from_settings(settings, database, local_dev=local_dev, verifier=token_verifier)
    services = ApiServices(
        settings=settings,
        db=database,
        store=store or build_object_store(settings),
        version=package_version(),
        max_callback_bytes=max_callback_body_bytes,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logger.info("API authentication: %s", authenticator.describe())
        if authenticator.open_to_anyone:
            logger.warning("API running in local-dev mode without credentials: every request is let in")
        try:
            yield
        finally:
            if owned_db:
                database.close()

    # Swagger UI and ReDoc from the fastapi-offline wheel: the docs pages need no CDN (work offline)
    app = FastAPIOffline(
        title="Scryon call processing API",
        version=services.version,
        description=(
            "Upload call recordings, poll their processing, read transcripts and analyses. Every route but "
            "health and webhooks acts for the user of the ID token in `Authorization: Bearer <token>` (401 "
            "`auth_missing` / `auth_invalid`, 403 `auth_disabled`); another user's call is 404. An API key "
            "(`X-API-Key` or `X-Scryon-Api-Key`) names a user only in trusted-service mode, through `X-User-Id`. "
            'Errors are `{"error": {"code", "message", "details"}}`.'
        ),
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url="/api/redoc",
        static_url="/api/docs-static",
        lifespan=lifespan,
    )
    app.state.services = services
    app.openapi = _openapi_document(app)  # type: ignore[method-assign]
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(webhooks.router)
    authenticated = [Depends(authenticator.dependency())]
    app.include_router(calls.router, dependencies=authenticated)
    app.include_router(call_changes.router, dependencies=authenticated)
    app.include_router(voice_profiles.router, dependencies=authenticated)
    return app


def _openapi_document(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """FastAPI's document, made to match what the API does: request validation errors are 400
    ``validation_failed`` in the error envelope (not FastAPI's default 422 body), and the multipart
    upload's schemas are listed."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)
            schemas.update(calls.component_schemas())
            for operations in document["paths"].values():
                for operation in operations.values():
                    default_422 = operation["responses"].get("422", {})
                    if "HTTPValidationError" in str(default_422):
                        del operation["responses"]["422"]
            app.openapi_schema = document
        return app.openapi_schema

    return openapi
