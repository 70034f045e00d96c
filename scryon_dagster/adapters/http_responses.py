"""Reading a provider's HTTP answers: the error code each failure kind gets per stage, the classification of
a non-success response into the error taxonomy (``Retry-After`` included), and provider JSON bodies.

Pure functions over responses and bytes; sending, retrying and pacing live in ``http.py``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from scryon_dagster.adapters.errors import (
    PermanentProviderError,
    ProviderError,
    RateLimitedError,
    RetryableProviderError,
)
from scryon_dagster.domain.calls import ErrorCode


@dataclass(frozen=True)
class StageErrorCodes:
    """The error code each failure kind gets in one pipeline stage."""

    client_error: ErrorCode
    timeout: ErrorCode
    unavailable: ErrorCode
    rate_limited: ErrorCode
    invalid_output: ErrorCode
    job_failed: ErrorCode | None = None
    """For providers with pollable jobs: a job that ended failed or canceled."""


TRANSCRIPTION_CODES = StageErrorCodes(
    client_error=ErrorCode.TRANSCRIPTION_4XX,
    timeout=ErrorCode.TRANSCRIPTION_TIMEOUT,
    unavailable=ErrorCode.TRANSCRIPTION_UNAVAILABLE,
    rate_limited=ErrorCode.TRANSCRIPTION_RATE_LIMITED,
    invalid_output=ErrorCode.TRANSCRIPTION_INVALID_OUTPUT,
)
DIARIZATION_CODES = StageErrorCodes(
    client_error=ErrorCode.DIARIZATION_4XX,
    timeout=ErrorCode.DIARIZATION_TIMEOUT,
    unavailable=ErrorCode.DIARIZATION_UNAVAILABLE,
    rate_limited=ErrorCode.DIARIZATION_RATE_LIMITED,
    invalid_output=ErrorCode.DIARIZATION_INVALID_OUTPUT,
    job_failed=ErrorCode.DIARIZATION_JOB_FAILED,
)
# Voice matching is one soft stage with a single code; the error class and status_code keep the detail.
VOICE_MATCH_CODES = StageErrorCodes(
    client_error=ErrorCode.VOICE_MATCH_FAILED,
    timeout=ErrorCode.VOICE_MATCH_FAILED,
    unavailable=ErrorCode.VOICE_MATCH_FAILED,
    rate_limited=ErrorCode.VOICE_MATCH_FAILED,
    invalid_output=ErrorCode.VOICE_MATCH_FAILED,
    job_failed=ErrorCode.VOICE_MATCH_FAILED,
)
ANALYSIS_CODES = StageErrorCodes(
    client_error=ErrorCode.ANALYSIS_4XX,
    timeout=ErrorCode.ANALYSIS_TIMEOUT,
    unavailable=ErrorCode.ANALYSIS_UNAVAILABLE,
    rate_limited=ErrorCode.ANALYSIS_RATE_LIMITED,
    invalid_output=ErrorCode.ANALYSIS_INVALID_OUTPUT,
)


def parse_retry_after(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


_IDENTIFIER = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


def provider_error_identifiers(body: bytes) -> list[str]:
    """Short machine identifiers (``error.code``, ``error.type``) from an error body, never free text."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        return []
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return []
    candidates = (error.get("code"), error.get("type"))
    return [value for value in candidates if isinstance(value, str) and _IDENTIFIER.match(value)]


def error_for_response(response: httpx.Response, *, provider: str, codes: StageErrorCodes) -> ProviderError:
    """Classify a non-success HTTP response into the taxonomy."""
    status = response.status_code
    identifiers = provider_error_identifiers(response.content)
    detail = f" ({identifiers[0]})" if identifiers else ""
    message = f"{provider} returned HTTP {status}{detail}"
    if status == 429:
        if "insufficient_quota" in identifiers:
            return PermanentProviderError(message, code=codes.client_error, provider=provider, status_code=status)
        return RateLimitedError(
            message,
            code=codes.rate_limited,
            provider=provider,
            status_code=status,
            retry_after=parse_retry_after(response.headers),
        )
    if status == 408:
        return RetryableProviderError(message, code=codes.timeout, provider=provider, status_code=status)
    if status == 409 or status >= 500:
        return RetryableProviderError(
            message,
            code=codes.unavailable,
            provider=provider,
            status_code=status,
            retry_after=parse_retry_after(response.headers),
        )
    return PermanentProviderError(message, code=codes.client_error, provider=provider, status_code=status)


def decode_json_object(raw: bytes, *, provider: str, code: ErrorCode, what: str) -> dict[str, Any]:
    """Parse a provider body that must be a JSON object, or raise an invalid-output error."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise PermanentProviderError(
            f"{provider} {what} is not valid JSON ({len(raw)} bytes)", code=code, provider=provider
        ) from None
    if not isinstance(data, dict):
        raise PermanentProviderError(f"{provider} {what} is not a JSON object", code=code, provider=provider)
    return data


_DECODER = json.JSONDecoder()
_WHITESPACE = re.compile(r"[ \t\n\r]*")


def extract_json_member(raw: bytes, key: str) -> bytes | None:
    """The exact bytes of a top-level member's value, so nested provider output is kept verbatim.

    Raises ``ValueError`` when ``raw`` is not a JSON object; returns None when the key is absent.
    """
    text = raw.decode("utf-8")

    def skip(position: int) -> int:
        match = _WHITESPACE.match(text, position)
        return match.end() if match else position

    position = skip(0)
    if text[position : position + 1] != "{":
        raise ValueError("not a JSON object")
    position = skip(position + 1)
    if text[position : position + 1] == "}":
        return None
    found: str | None = None
    while True:
        name, position = _DECODER.raw_decode(text, position)
        position = skip(position)
        if not isinstance(name, str) or text[position : position + 1] != ":":
            raise ValueError("malformed JSON object member")
        value_start = skip(position + 1)
        _, position = _DECODER.raw_decode(text, value_start)
        if name == key:  # the last duplicate wins, as in json.loads
            found = text[value_start:position]
        position = skip(position)
        separator = text[position : position + 1]
        if separator == "}":
            break
        if separator != ",":
            raise ValueError("malformed JSON object")
        position = skip(position + 1)
    return found.encode("utf-8") if found is not None else None
