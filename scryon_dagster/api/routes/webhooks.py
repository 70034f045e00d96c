"""`POST /api/webhooks/lemonfox`: the transcription callback, authenticated by its signed URL.

The query is verified against every configured secret before the body is read; the body is read
up to a bound, validated, stored, and the call handed back to the pipeline. Duplicate and late
deliveries are acknowledged and change nothing; a bad signature, an expired URL or an unknown
call is 401 and changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from scryon_dagster.adapters.webhooks import LEMONFOX_CALLBACK_PATH
from scryon_dagster.api.errors import INVALID_SIGNATURE, PAYLOAD_TOO_LARGE, VALIDATION_FAILED, ApiError, error_responses
from scryon_dagster.api.models import WebhookAck
from scryon_dagster.api.services import Services
from scryon_dagster.api.uploads import declared_length
from scryon_dagster.pipeline.callbacks import (
    API_PREFIX,
    CallbackRejected,
    InvalidCallbackBody,
    accept_transcription_callback,
    verify_callback,
)
from scryon_dagster.pipeline.spend import audio_prices

logger = logging.getLogger(__name__)

router = APIRouter(prefix=API_PREFIX, tags=["webhooks"])

_SignedParameter = Annotated[str | None, Query(max_length=256)]


@router.post(
    LEMONFOX_CALLBACK_PATH,
    response_model=WebhookAck,
    summary="Lemonfox transcription callback (signed URL; no API key)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object", "description": "Lemonfox verbose_json"}}},
        }
    },
    responses=error_responses(400, 401, 413, 503),
)
async def lemonfox_callback(
    request: Request,
    services: Services,
    call_id: Annotated[str | None, Query(alias="callId", max_length=64)] = None,
    exp: _SignedParameter = None,
    kid: _SignedParameter = None,
    sig: _SignedParameter = None,
) -> WebhookAck:
    # The declared parameters document the URL; the signature covers the query exactly as received.
    try:
        callback = verify_callback(dict(request.query_params), services.settings.webhook_secrets)
    except CallbackRejected as exc:
        logger.warning("lemonfox callback rejected (%s)", exc.reason)
        raise ApiError(401, INVALID_SIGNATURE, "the callback URL is not valid") from None
    body = await _bounded_body(request.headers.get("content-length"), request.stream(), services.max_callback_bytes)
    try:
        outcome = await run_in_threadpool(
            accept_transcription_callback,
            services.db,
            services.store,
            callback,
            body,
            prices=audio_prices(services.settings),
        )
    except CallbackRejected as exc:
        logger.warning("lemonfox callback rejected (%s)", exc.reason)
        raise ApiError(401, INVALID_SIGNATURE, "the callback URL is not valid") from None
    except InvalidCallbackBody as exc:
        logger.warning("lemonfox callback for call %s has an unreadable body (%s)", callback.call_id, exc.code)
        raise ApiError(400, VALIDATION_FAILED, "the body is not a verbose_json transcript") from None
    return WebhookAck(status=outcome)


async def _bounded_body(content_length: str | None, stream: AsyncIterator[bytes], limit: int) -> bytes:
    declared = declared_length(content_length)
    if declared is not None and declared > limit:
        raise ApiError(413, PAYLOAD_TOO_LARGE, f"the body exceeds {limit} bytes")
    received = bytearray()
    async for chunk in stream:
        received.extend(chunk)
        if len(received) > limit:
            raise ApiError(413, PAYLOAD_TOO_LARGE, f"the body exceeds {limit} bytes")
    return bytes(received)
