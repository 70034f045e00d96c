"""The calls API: upload, list, poll, detail, transcript, analysis (changes to a call: ``call_changes.py``)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from scryon_dagster.adapters.audio_probe import AudioProbe
from scryon_dagster.adapters.db.api_queries import ApiUser, ListPosition
from scryon_dagster.adapters.db.records import CallRecord
from scryon_dagster.adapters.object_store import ObjectNotFoundError
from scryon_dagster.api.analysis_aliases import with_legacy_aliases
from scryon_dagster.api.errors import (
    ARTIFACT_NOT_FOUND,
    AUDIO_TOO_SHORT,
    AUDIO_UNDECODABLE,
    CALL_NOT_COMPLETED,
    PAYLOAD_TOO_LARGE,
    SERVICE_UNAVAILABLE,
    UNSUPPORTED_MEDIA_TYPE,
    VALIDATION_FAILED,
    ApiError,
    error_responses,
    validation_error,
)
from scryon_dagster.api.models import (
    MAX_IDS_PER_REQUEST,
    MAX_PAGE_SIZE,
    AcceptedCall,
    BulkDeleteRequest,
    CallDetail,
    CallList,
    CallListItem,
    CallMetadata,
    CallStatusItem,
    CallStatusList,
)
from scryon_dagster.api.services import ApiServices, CurrentUser, Services
from scryon_dagster.api.uploads import AudioUpload, receive_upload
from scryon_dagster.domain.calls import ACTIVE_STATUSES, ArtifactType, CallStatus
from scryon_dagster.pipeline.intake import IntakeError, enqueue_call

IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"
# The poll hint of /status (the reference's client honours it, clamped to 1-60 s): soon while a step
# that takes seconds is pending (the pickup, the analysis), less often during transcription (tens of
# seconds for a phone call), rarely when nothing polled is in flight.
POLL_SOON_MS = 3_000
POLL_TRANSCRIBING_MS = 5_000
POLL_IDLE_MS = 60_000
_INTAKE_ERRORS = {
    "unsupported_audio_type": (415, UNSUPPORTED_MEDIA_TYPE),
    "file_too_large": (413, PAYLOAD_TOO_LARGE),
    "audio_undecodable": (422, AUDIO_UNDECODABLE),
    "audio_too_short": (422, AUDIO_TOO_SHORT),
    "audio_check_unavailable": (503, SERVICE_UNAVAILABLE),
}

router = APIRouter(prefix="/api/calls", tags=["calls"], responses=error_responses(400, 401, 403, 503))

_UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {
                        "type": "string",
                        "format": "binary",
                        "description": "The recording (wav, mp3, m4a, ...).",
                    },
                    "metadata": {
                        "$ref": "#/components/schemas/CallMetadata",
                        "description": "Call metadata as a JSON object; every field optional.",
                    },
                    "title": {"type": "string", "maxLength": 500, "description": "Used when metadata has no title."},
                },
            },
            "encoding": {"metadata": {"contentType": "application/json"}},
        }
    },
}


def component_schemas() -> dict[str, dict[str, Any]]:
    """OpenAPI component schemas of the bodies the routes read themselves (FastAPI does not see them)."""
    schemas: dict[str, dict[str, Any]] = {}
    for model in (CallMetadata, BulkDeleteRequest):
        schema = model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return schemas


@router.post(
    "/analyze",
    status_code=202,
    response_model=AcceptedCall,
    summary="Upload a recording and queue its call",
    openapi_extra={"requestBody": _UPLOAD_BODY},
    responses=error_responses(413, 415, 422),
)
async def analyze_call(
    request: Request,
    services: Services,
    user: CurrentUser,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            pattern=IDEMPOTENCY_KEY_PATTERN,
            description="A retried upload with the same key returns the call the first attempt created.",
        ),
    ] = None,
) -> JSONResponse:
    if idempotency_key is not None:
        earlier = await run_in_threadpool(_call_for_key, services, user, idempotency_key)
        if earlier is not None:
            return _accepted(earlier, replayed=True)
    upload = await receive_upload(
        request.headers.get("content-type"),
        request.headers.get("content-length"),
        request.stream(),
        max_file_bytes=services.settings.max_file_size,
    )
    try:
        call = await run_in_threadpool(_enqueue, services, user, upload, idempotency_key)
    finally:
        upload.close()
    return _accepted(call, replayed=False)


def _call_for_key(services: ApiServices, user: ApiUser, key: str) -> CallRecord | None:
    call_id = services.queries.call_for_idempotency_key(user.id, key)
    return services.db.get_call(call_id) if call_id is not None else None


def _enqueue(services: ApiServices, user: ApiUser, upload: AudioUpload, idempotency_key: str | None) -> CallRecord:
    metadata = _metadata(upload.fields)
    try:
        call = enqueue_call(
            services.db,
            services.store,
            audio=upload.audio,
            filename=upload.filename,
            user_reference=user.id,
            call=metadata.to_new_call(upload.fields.get("title")),
            max_bytes=services.settings.max_file_size,
            audio_probe=AudioProbe.from_settings(services.settings),
        )
    except IntakeError as exc:
        status, code = _INTAKE_ERRORS.get(exc.code, (400, VALIDATION_FAILED))
        raise ApiError(status, code, str(exc)) from None
    if idempotency_key is None:
        return call
    bound = services.queries.remember_idempotency_key(call.user_id, idempotency_key, call.id)
    if bound == call.id:
        return call
    # A concurrent retry with the same key won: keep its call, remove this duplicate.
    services.delete_call(call)
    return services.db.get_call(bound) or call


def _metadata(fields: dict[str, str]) -> CallMetadata:
    title = fields.get("title")
    if title is not None and len(title) > 500:
        raise ApiError(400, VALIDATION_FAILED, "title: at most 500 characters")
    raw = fields.get("metadata", "").strip()
    if not raw:
        return CallMetadata()
    try:
        return CallMetadata.model_validate_json(raw)
    except ValidationError as exc:
        raise validation_error("invalid metadata", exc.errors()) from None


def _accepted(call: CallRecord, *, replayed: bool) -> JSONResponse:
    body = AcceptedCall(call_id=call.id, status=call.status).model_dump(mode="json", by_alias=True)
    return JSONResponse(body, status_code=202, headers={"Idempotent-Replayed": "true"} if replayed else None)


@router.get("", response_model=CallList, summary="The caller's calls, newest first")
def list_calls(
    services: Services,
    user: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
    cursor: Annotated[str | None, Query(max_length=200, description="`nextCursor` of the previous page")] = None,
    status: CallStatus | None = None,
) -> CallList:
    after = _decode_cursor(cursor) if cursor else None
    page = services.queries.list_calls(user.id, limit=limit + 1, status=status, after=after)
    more = len(page) > limit
    page = page[:limit]
    return CallList(
        items=[CallListItem.of(summary) for summary in page],
        next_cursor=_encode_cursor(page[-1].position) if more else None,
    )


def _encode_cursor(position: ListPosition) -> str:
    payload = json.dumps({"t": position.created_at.isoformat(), "id": str(position.call_id)}).encode()
    return base64.urlsafe_b64encode(payload).rstrip(b"=").decode()


def _decode_cursor(cursor: str) -> ListPosition:
    try:
        payload = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        position = ListPosition(datetime.fromisoformat(payload["t"]), UUID(payload["id"]))
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise ApiError(400, VALIDATION_FAILED, "cursor: not a cursor this API issued") from None
    if position.created_at.tzinfo is None:
        raise ApiError(400, VALIDATION_FAILED, "cursor: not a cursor this API issued")
    return position


@router.get("/status", response_model=CallStatusList, summary="Poll the status of many calls")
def call_statuses(
    services: Services,
    user: CurrentUser,
    ids: Annotated[str, Query(max_length=MAX_IDS_PER_REQUEST * 37, description="Comma-separated call ids")],
) -> CallStatusList:
    call_ids = _parse_ids(ids)
    statuses = services.queries.call_statuses(user.id, call_ids)
    return CallStatusList(
        items=[
            CallStatusItem(call_id=call_id, status=statuses[call_id]) for call_id in call_ids if call_id in statuses
        ],
        next_poll_ms=next_poll_ms(statuses.values()),
    )


def next_poll_ms(statuses: Iterable[CallStatus]) -> int:
    """When the caller should poll again, from the statuses it polled."""
    in_flight = set(statuses) & ACTIVE_STATUSES
    if in_flight - {CallStatus.TRANSCRIBING}:
        return POLL_SOON_MS
    return POLL_TRANSCRIBING_MS if in_flight else POLL_IDLE_MS


def _parse_ids(ids: str) -> list[UUID]:
    parts = [part.strip() for part in ids.split(",") if part.strip()]
    if not parts or len(parts) > MAX_IDS_PER_REQUEST:
        raise ApiError(400, VALIDATION_FAILED, f"ids: between 1 and {MAX_IDS_PER_REQUEST} call ids")
    try:
        return list(dict.fromkeys(UUID(part) for part in parts))
    except ValueError:
        raise ApiError(400, VALIDATION_FAILED, "ids: every id must be a UUID") from None


@router.get("/{call_id}", response_model=CallDetail, summary="One call", responses=error_responses(404))
def get_call(call_id: UUID, services: Services, user: CurrentUser) -> CallDetail:
    return CallDetail.of(services.owned_call(user, call_id))


_ARTIFACT_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"content": {"application/json": {"schema": {"type": "object"}}}, "description": "The stored document"},
    **error_responses(404, 422),
}


@router.get(
    "/{call_id}/transcript",
    response_class=Response,
    responses=_ARTIFACT_RESPONSES,
    summary="The normalized, speaker-attributed transcript of a call (the latest stored)",
)
def get_transcript(call_id: UUID, services: Services, user: CurrentUser) -> Response:
    document = _stored_document(services, user, call_id, ArtifactType.NORMALIZED_TRANSCRIPT_JSON)
    return Response(document, media_type="application/json")


@router.get(
    "/{call_id}/analysis",
    response_class=Response,
    responses=_ARTIFACT_RESPONSES,
    summary="The structured analysis of a call (the latest stored)",
)
def get_analysis(call_id: UUID, services: Services, user: CurrentUser) -> Response:
    document = _stored_document(services, user, call_id, ArtifactType.ANALYSIS_JSON)
    try:
        analysis = json.loads(document)
    except ValueError:
        analysis = None
    if not isinstance(analysis, dict):
        return Response(document, media_type="application/json")  # not ours to judge: served as stored
    return JSONResponse(with_legacy_aliases(analysis))


def _stored_document(services: ApiServices, user: ApiUser, call_id: UUID, artifact_type: ArtifactType) -> bytes:
    """The call's stored document. A reprocess or a retry leaves the previous one readable until it is
    replaced, and a failed one keeps it; a call without one yet answers 422 until it completes."""
    call = services.owned_call(user, call_id)
    artifact = services.db.get_artifacts(call.id).get(artifact_type)
    if artifact is None and call.status is not CallStatus.COMPLETED:
        raise ApiError(422, CALL_NOT_COMPLETED, f"the call is {call.status.value}, not COMPLETED")
    if artifact is None:
        raise ApiError(404, ARTIFACT_NOT_FOUND, f"the call has no {artifact_type.value}")
    try:
        document = services.store.get_bytes(artifact.storage_key)
    except ObjectNotFoundError:
        raise ApiError(404, ARTIFACT_NOT_FOUND, f"the call's {artifact_type.value} object is missing") from None
    return document
