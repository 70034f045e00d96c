"""What the routes share: settings, the call database, object storage, the caller's user and the
user-scoped lookups."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated
from uuid import UUID, uuid4

from fastapi import Depends, Request

from scryon_dagster.adapters.db.api_queries import ApiQueries, ApiUser
from scryon_dagster.adapters.db.records import CallRecord
from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.object_store import ObjectStore
from scryon_dagster.api.errors import AUTH_MISSING, CALL_NOT_FOUND, SERVICE_UNAVAILABLE, ApiError
from scryon_dagster.pipeline.maintenance import delete_calls
from scryon_dagster.pipeline.outcomes import CallOutcome, StageSelection
from scryon_dagster.pipeline.runner import build_call_pipeline
from scryon_dagster.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApiServices:
    settings: Settings
    db: CallDatabase
    store: ObjectStore
    version: str
    max_callback_bytes: int

    @property
    def queries(self) -> ApiQueries:
        return ApiQueries(self.db)

    def owned_call(self, user: ApiUser, call_id: UUID) -> CallRecord:
        """The caller's call; another user's call is indistinguishable from a missing one (404)."""
        call = self.db.get_call(call_id)
        if call is None or call.user_id != user.id:
            raise ApiError(404, CALL_NOT_FOUND, "no such call")
        return call

    def delete_call(self, call: CallRecord) -> bool:
        """Objects first, then the row (its children cascade); False when the row was already gone."""
        return bool(delete_calls(self.db, self.store, [call.id]).deleted)

    def process_call(self, call_id: UUID, selection: StageSelection) -> CallOutcome:
        """Run the pipeline's ``selection`` on one call in this process, as a run launched by hand does
        (it may take a finished call). Blocking until the call is done."""
        try:
            pipeline = build_call_pipeline(self.settings, self.db, self.store)
        except ValueError as exc:  # a provider key is missing from this process's environment
            logger.warning("the pipeline cannot run in the API process: %s", exc)
            raise ApiError(503, SERVICE_UNAVAILABLE, "processing is not configured on this server") from None
        try:
            (outcome,) = pipeline.run_batch([call_id], selection, batch_id=None, run_id=str(uuid4()))
        finally:
            pipeline.close()
        return outcome


def _services(request: Request) -> ApiServices:
    services: ApiServices = request.app.state.services
    return services


def _current_user(request: Request) -> ApiUser:
    # Set by the router's authentication dependency, which runs before the route's own; without it
    # (a route mounted without that dependency) the request is refused rather than let in.
    user = getattr(request.state, "user", None)
    if not isinstance(user, ApiUser):
        raise ApiError(401, AUTH_MISSING, "credentials are required", headers={"WWW-Authenticate": "Bearer"})
    return user


Services = Annotated[ApiServices, Depends(_services)]
CurrentUser = Annotated[ApiUser, Depends(_current_user)]
