"""The calls API's changes to existing calls: delete (one or many), reprocess, reanalyze.

Uploads and reads are in ``calls.py``; both routers share the prefix, tags and authentication (``api/app.py``).
"""

from __future__ import annotations

import logging
from uuid import UUID

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError

from scryon_dagster.adapters.db.api_queries import ApiUser
from scryon_dagster.adapters.object_store import ObjectStoreError
from scryon_dagster.api.errors import (
    ARTIFACT_NOT_FOUND,
    AUDIO_MISSING,
    CALL_IN_PROGRESS,
    CALL_NOT_COMPLETED,
    CALL_NOT_FOUND,
    PROVIDER_ERROR,
    ApiError,
    error_responses,
    validation_error,
)
from scryon_dagster.api.models import (
    AcceptedCall,
    BulkDeleteRequest,
    BulkDeleteResult,
    CallDetail,
)
from scryon_dagster.api.services import ApiServices, CurrentUser, Services
from scryon_dagster.domain.calls import CallStatus
from scryon_dagster.domain.policy import CALL_BUSY, RESTING_STATUSES, reprocess_refusal
from scryon_dagster.pipeline.maintenance import MaintenanceError, plan_call_reprocess, present_inputs
from scryon_dagster.pipeline.outcomes import PipelineAsset, StageSelection

logger = logging.getLogger(__name__)

REANALYSIS = StageSelection(frozenset({PipelineAsset.NORMALIZED_TRANSCRIPT, PipelineAsset.ANALYSIS}))
"""The runbook's ``stage: normalization``: re-derived from the stored raw transcript and diarization."""

router = APIRouter(prefix="/api/calls", tags=["calls"], responses=error_responses(400, 401, 403, 503))


@router.delete(
    "/{call_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a call: its objects first, then the row (cascade)",
    responses=error_responses(404),
)
def delete_call(call_id: UUID, services: Services, user: CurrentUser) -> Response:
    call = services.owned_call(user, call_id)
    if not services.delete_call(call):
        raise ApiError(404, CALL_NOT_FOUND, "no such call")
    return Response(status_code=204)


@router.delete(
    "",
    response_model=BulkDeleteResult,
    summary="Delete several calls",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BulkDeleteRequest"}}},
        }
    },
)
async def delete_calls(request: Request, services: Services, user: CurrentUser) -> BulkDeleteResult:
    # Read here rather than as a declared body: FastAPI parses declared bodies before the
    # authentication runs, and an unauthenticated caller must learn nothing, not even that its JSON is bad.
    try:
        body = BulkDeleteRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        raise validation_error("invalid body", exc.errors()) from None
    return await run_in_threadpool(_delete_calls, services, user, body)


def _delete_calls(services: ApiServices, user: ApiUser, body: BulkDeleteRequest) -> BulkDeleteResult:
    calls = services.db.get_calls(body.call_ids)
    deleted, missing, failed = 0, 0, []
    for call_id in dict.fromkeys(body.call_ids):
        call = calls.get(call_id)
        if call is None or call.user_id != user.id:
            missing += 1
            continue
        try:
            if services.delete_call(call):
                deleted += 1
            else:
                missing += 1
        except ObjectStoreError as exc:
            logger.warning("call %s not deleted: object storage refused (%s)", call_id, type(exc).__name__)
            failed.append(call_id)
    return BulkDeleteResult(deleted=deleted, missing=missing, failed=failed)


@router.post(
    "/{call_id}/reprocess",
    status_code=202,
    response_model=AcceptedCall,
    summary="Queue a finished call to run again (needs its TEMP_AUDIO)",
    responses=error_responses(404, 409),
)
def reprocess_call(call_id: UUID, services: Services, user: CurrentUser) -> AcceptedCall:
    call = services.owned_call(user, call_id)
    if call.status is CallStatus.QUEUED:
        return AcceptedCall(call_id=call.id, status=call.status)
    needed = StageSelection.everything().stored_inputs()
    refusal = reprocess_refusal(
        call.status,
        claimed=call.claim_id is not None,
        needed=needed,
        stored=present_inputs(needed, services.db.get_artifacts(call.id), services.store),
    )
    if refusal == CALL_BUSY:
        raise ApiError(409, CALL_IN_PROGRESS, f"the call is {call.status.value}; wait until it finishes")
    if refusal is not None:
        raise ApiError(409, AUDIO_MISSING, "the call's temporary audio is gone; it cannot be processed again")
    if not services.db.transition(call.id, RESTING_STATUSES, CallStatus.QUEUED):
        current = services.owned_call(user, call_id)
        if current.status is not CallStatus.QUEUED:
            raise ApiError(409, CALL_IN_PROGRESS, f"the call is {current.status.value}; wait until it finishes")
    return AcceptedCall(call_id=call.id, status=CallStatus.QUEUED)


@router.post(
    "/{call_id}/reanalyze",
    response_model=CallDetail,
    summary="Re-derive a completed call's transcript and analysis from its stored provider outputs",
    description=(
        "Normalization, speaker attribution and the LLM analysis run again from the stored raw transcript "
        "and diarization: no audio is sent to a provider. Answers when done, with the call. A call not "
        "COMPLETED is 409 (`details.status`); one without stored outputs to re-derive from is 404."
    ),
    responses=error_responses(404, 409, 502),
)
def reanalyze_call(call_id: UUID, services: Services, user: CurrentUser) -> CallDetail:
    call = services.owned_call(user, call_id)
    if call.status is not CallStatus.COMPLETED:
        raise ApiError(
            409,
            CALL_NOT_COMPLETED,
            f"the call is {call.status.value}; only a COMPLETED call is re-analyzed",
            details={"status": call.status.value},
        )
    try:
        plan_call_reprocess(
            services.db, services.store, call_id=call.id, selection=REANALYSIS, settings=services.settings
        )
    except MaintenanceError as exc:
        if exc.code == "call_busy":
            raise ApiError(409, CALL_IN_PROGRESS, "the call is being processed; wait until it finishes") from None
        raise ApiError(404, ARTIFACT_NOT_FOUND, "the call has no stored transcript to re-derive from") from None
    outcome = services.process_call(call.id, REANALYSIS)
    if not outcome.succeeded:
        code = outcome.error_code or outcome.retry_of or outcome.left_alone
        current = services.owned_call(user, call_id)
        raise ApiError(
            502,
            PROVIDER_ERROR,
            "the call could not be re-analyzed",
            details={"cause": code, "status": current.status.value},
        )
    return CallDetail.of(services.owned_call(user, call_id))
