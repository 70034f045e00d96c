"""`GET /api/health`: is this process able to serve, i.e. are PostgreSQL and object storage reachable."""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from scryon_dagster.adapters.db.repository import DatabaseError
from scryon_dagster.adapters.object_store import ObjectStoreError
from scryon_dagster.api.models import Health, HealthChecks
from scryon_dagster.api.services import Services

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api", tags=["health"])


@router.get(
    "/health",
    response_model=Health,
    summary="Liveness and dependencies; 503 when PostgreSQL or object storage is unreachable",
    responses={503: {"model": Health, "description": "A dependency is unreachable"}},
)
def health(services: Services) -> JSONResponse:
    database = _probe("database", services.db.check, DatabaseError)
    storage = _probe("object storage", services.store.check, ObjectStoreError)
    healthy = database and storage
    body = Health(
        status="ok" if healthy else "unavailable",
        version=services.version,
        checks=HealthChecks(
            database="ok" if database else "unavailable", object_storage="ok" if storage else "unavailable"
        ),
    )
    return JSONResponse(body.model_dump(mode="json", by_alias=True), status_code=200 if healthy else 503)


def _probe(name: str, check: Callable[[], None], failure: type[Exception]) -> bool:
    try:
        check()
    except failure as exc:
        logger.warning("health: %s unavailable (%s)", name, type(exc).__name__)
        return False
    return True
