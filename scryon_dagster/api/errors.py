"""Every error the API returns is ``{"code", "message"}`` with a short, stable code.

Messages name the problem, never the caller's data: no metadata values, file names or transcript
text reach a response body or a log line.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus

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
SERVICE_UNAVAILABLE = "service_unavailable"
INTERNAL_ERROR = "internal_error"


class ErrorBody(BaseModel):
    code: str
    message: str


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def error_response(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status_code=status, headers=headers)


def error_responses(*statuses: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI entries for the error statuses an operation can return."""
    return {status: {"model": ErrorBody, "description": HTTPStatus(status).phrase} for status in statuses}


def _validation_message(exc: RequestValidationError) -> str:
    # Location and rule only: pydantic's own messages may quote the rejected input.
    problems = []
    for error in exc.errors()[:5]:
        location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        problems.append(f"{location}: {error.get('type', 'invalid')}" if location else str(error.get("type")))
    return "invalid request (" + "; ".join(problems) + ")"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, VALIDATION_FAILED, _validation_message(exc))

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
