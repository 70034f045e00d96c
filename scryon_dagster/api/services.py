"""What the routes share: settings, the call database, object storage, and the user-scoped lookups."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from uuid import UUID

from fastapi import Depends, Header, Request

from scryon_dagster.adapters.db.api_queries import ApiQueries
from scryon_dagster.adapters.db.records import CallRecord, UserRecord
from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.object_store import ObjectStore
from scryon_dagster.api.errors import CALL_NOT_FOUND, VALIDATION_FAILED, ApiError
from scryon_dagster.pipeline.maintenance import delete_calls
from scryon_dagster.settings import Settings

LOCAL_DEV_USER = "local-dev"
USER_ID_PATTERN = r"^[\x21-\x7e]{1,128}$"
"""Printable ASCII without spaces: Firebase uids, emails, UUIDs."""


@dataclass(frozen=True)
class ApiServices:
    settings: Settings
    db: CallDatabase
    store: ObjectStore
    local_dev: bool
    version: str
    max_callback_bytes: int

    @property
    def queries(self) -> ApiQueries:
        return ApiQueries(self.db)

    def find_user(self, reference: str) -> UserRecord | None:
        return self.db.find_user(reference)

    def owned_call(self, user_reference: str, call_id: UUID) -> CallRecord:
        """The caller's call; another user's call is indistinguishable from a missing one (404)."""
        user = self.find_user(user_reference)
        call = self.db.get_call(call_id) if user is not None else None
        if user is None or call is None or call.user_id != user.id:
            raise ApiError(404, CALL_NOT_FOUND, "no such call")
        return call

    def delete_call(self, call: CallRecord) -> bool:
        """Objects first, then the row (its children cascade); False when the row was already gone."""
        return bool(delete_calls(self.db, self.store, [call.id]).deleted)


def _services(request: Request) -> ApiServices:
    services: ApiServices = request.app.state.services
    return services


def _user_reference(
    services: Annotated[ApiServices, Depends(_services)],
    x_user_id: Annotated[
        str | None,
        Header(
            pattern=USER_ID_PATTERN,
            description="The user the request acts for; required unless the API runs in local-dev mode.",
        ),
    ] = None,
) -> str:
    if x_user_id:
        return x_user_id
    if services.local_dev:
        return LOCAL_DEV_USER
    raise ApiError(400, VALIDATION_FAILED, "the X-User-Id header is required")


Services = Annotated[ApiServices, Depends(_services)]
UserReference = Annotated[str, Depends(_user_reference)]
