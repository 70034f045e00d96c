"""Every error the API returns is the reference's envelope, ``{"error": {"code", "message", "details"}}``,
with a short, stable code; ``details`` is an object of machine-readable specifics, or null.

Messages name the problem, never the caller's data: no metadata values, file names or transcript
text reach a response body or a log line.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from scryon_dagster.adapters.db.repository import DatabaseUnavailableError
from scryon_dagster.adapters.object_store import ObjectStoreUnavailableError

logger = logging.getLogger(__name__)

VALIDATION_FAILED = "validation_failed"
AUTH_MISSING = "auth_missing"
AUTH_INVALID = "auth_invalid"
AUTH_DISABLED = "auth_disabled"
CALL_NOT_FOUND = "call_not_found"
CALL_NOT_COMPLETED = "call_not_completed"
ARTIFACT_NOT_FOUND = "artifact_not_found"
CALL_IN_PROGRESS = "call_in_progress"
AUDIO_MISSING = "audio_missing"
AUDIO_UNDECODABLE = "audio_undecodable"
AUDIO_TOO_SHORT = "audio_too_short"
PAYLOAD_TOO_LARGE = "payload_too_large"
UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
INVALID_SIGNATURE = "invalid_signature"
AUDIO_TOO_LONG = "audio_too_long"
FEATURE_NOT_AVAILABLE = "feature_not_available"
CONSENT_REQUIRED = "consent_required"
PROVIDER_ERROR = "provider_error"
SERVICE_UNAVAILABLE = "service_unavailable"
INTERNAL_ERROR = "internal_error"


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: dict[str, Any] | None


class ErrorBody(BaseModel):
    error: ErrorDetail


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
        self.details = details


def error_response(
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    details: Mapping[str, Any] | None = None,
) -> JSONResponse:
    body = ErrorBody(error=ErrorDetail(code=code, message=message, details=dict(details) if details else None))
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


def error_responses(*statuses: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI entries for the error statuses an operation can return."""
    return {status: {"model": ErrorBody, "description": HTTPStatus(status).phrase} for status in statuses}


def validation_problems(errors: Any) -> list[dict[str, str]]:
    """Where and which rule, for the first few problems: never the rejected value (pydantic's own
    messages may quote the input)."""
    return [
        {
            "field": ".".join(str(part) for part in error.get("loc", ()) if part != "body"),
            "rule": str(error.get("type", "invalid")),
        }
        for error in list(errors)[:5]
    ]


def validation_error(what: str, errors: Any) -> ApiError:
    """400 ``validation_failed`` naming each problem's place and rule, in the message and the details."""
    problems = validation_problems(errors)
    listed = "; ".join(f"{p['field']}: {p['rule']}" if p["field"] else p["rule"] for p in problems)
    return ApiError(400, VALIDATION_FAILED, f"{what} ({listed})", details={"problems": problems})


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.headers, exc.details)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        error = validation_error("invalid request", exc.errors())
        return error_response(error.status, error.code, error.message, details=error.details)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        phrase = HTTPStatus(exc.status_code).phrase
        return error_response(exc.status_code, phrase.lower().replace(" ", "_"), phrase, exc.headers)

    @app.exception_handler(DatabaseUnavailableError)
    @app.exception_handler(ObjectStoreUnavailableError)
    async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
        logger.warning("%s %s: dependency unavailable (%s)", request.method, request.url.path, type(exc).__name__)
        return error_response(503, SERVICE_UNAVAILABLE, "a backing service is unavailable; retry later")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The type only: messages of third-party exceptions may quote call data.
        logger.error("%s %s failed unexpectedly (%s)", request.method, request.url.path, type(exc).__name__)
        return error_response(500, INTERNAL_ERROR, "internal error")
