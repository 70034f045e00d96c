"""The shared HTTP plumbing: error classification, Retry-After parsing, verbatim member extraction."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from scryon_dagster.adapters.errors import (
    PermanentProviderError,
    RateLimitedError,
    RetryableProviderError,
)
from scryon_dagster.adapters.http import (
    TRANSCRIPTION_CODES,
    Deadline,
    ProviderHttpClient,
    error_for_response,
    extract_json_member,
    parse_retry_after,
)
from scryon_dagster.domain.calls import ErrorCode


@pytest.mark.parametrize(
    ("status", "error_class", "code"),
    [
        (400, PermanentProviderError, ErrorCode.TRANSCRIPTION_4XX),
        (401, PermanentProviderError, ErrorCode.TRANSCRIPTION_4XX),
        (402, PermanentProviderError, ErrorCode.TRANSCRIPTION_4XX),
        (404, PermanentProviderError, ErrorCode.TRANSCRIPTION_4XX),
        (413, PermanentProviderError, ErrorCode.TRANSCRIPTION_4XX),
        (422, PermanentProviderError, ErrorCode.TRANSCRIPTION_4XX),
        (408, RetryableProviderError, ErrorCode.TRANSCRIPTION_TIMEOUT),
        (409, RetryableProviderError, ErrorCode.TRANSCRIPTION_UNAVAILABLE),
        (429, RateLimitedError, ErrorCode.TRANSCRIPTION_RATE_LIMITED),
        (500, RetryableProviderError, ErrorCode.TRANSCRIPTION_UNAVAILABLE),
        (503, RetryableProviderError, ErrorCode.TRANSCRIPTION_UNAVAILABLE),
    ],
)
def test_status_classification(status: int, error_class: type, code: ErrorCode) -> None:
    error = error_for_response(httpx.Response(status), provider="lemonfox", codes=TRANSCRIPTION_CODES)

    assert type(error) is error_class
    assert error.code is code
    assert error.status_code == status
    assert error.retryable is issubclass(error_class, RetryableProviderError)
    assert str(error) == f"lemonfox returned HTTP {status}"


def test_error_message_keeps_short_identifiers_and_drops_free_text() -> None:
    body = {"error": {"message": "Audio of Jane Doe is corrupt", "type": "invalid_request_error", "code": None}}
    error = error_for_response(httpx.Response(400, json=body), provider="lemonfox", codes=TRANSCRIPTION_CODES)
    odd = {"error": {"message": "x", "type": "free text with spaces", "code": "a" * 100}}
    plain = error_for_response(httpx.Response(400, json=odd), provider="lemonfox", codes=TRANSCRIPTION_CODES)

    assert str(error) == "lemonfox returned HTTP 400 (invalid_request_error)"
    assert str(plain) == "lemonfox returned HTTP 400"


def test_retry_after_forms() -> None:
    now = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
    http_date = format_datetime(now + timedelta(seconds=7), usegmt=True)

    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after": "1.5"}) == 1.5
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after": http_date}, now=now) == pytest.approx(7)
    assert parse_retry_after({"retry-after": format_datetime(now - timedelta(seconds=5), usegmt=True)}, now=now) == 0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


def test_retry_after_header_names_are_case_insensitive_on_responses() -> None:
    response = httpx.Response(429, headers={"Retry-After": "2"})

    assert parse_retry_after(response.headers) == 2.0


def test_extract_member_returns_exact_bytes() -> None:
    raw = b'{ "jobId" : "j1",\n  "output" :  {"a": [1.50, "\\u00e9", {"b": null}]} , "status": "succeeded"}'

    member = extract_json_member(raw, "output")

    assert member == b'{"a": [1.50, "\\u00e9", {"b": null}]}'
    assert extract_json_member(raw, "missing") is None
    assert extract_json_member(b"{}", "output") is None
    assert extract_json_member(b'{"output": 1, "output": [2]}', "output") == b"[2]"


@pytest.mark.parametrize("raw", [b"[1]", b'"text"', b'{"a" 1}', b'{"a": 1 "b": 2}'])
def test_extract_member_rejects_non_objects(raw: bytes) -> None:
    with pytest.raises(ValueError, match="JSON object"):
        extract_json_member(raw, "a")


def test_extract_member_matches_json_loads_on_non_ascii() -> None:
    raw = json.dumps({"output": {"name": "Zoë", "n": 1e-7}}, ensure_ascii=False).encode()

    member = extract_json_member(raw, "output")

    assert member is not None
    assert json.loads(member) == {"name": "Zoë", "n": 1e-7}


def test_deadline() -> None:
    assert Deadline.after(60).remaining() > 59
    assert Deadline.after(-1).expired
    assert Deadline.after(-1).remaining() == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"api_key": " "}, "API key"),
        ({"request_timeout_seconds": 0}, "timeout"),
        ({"max_retries": -1}, "retries"),
        ({"max_concurrency": 0}, "concurrency"),
    ],
)
def test_client_rejects_bad_configuration(options: dict[str, object], message: str) -> None:
    settings: dict[str, object] = {
        "provider": "lemonfox",
        "api_key": "k",
        "request_timeout_seconds": 1.0,
        "max_retries": 0,
        "max_concurrency": 1,
    }
    with pytest.raises(ValueError, match=message):
        ProviderHttpClient(**{**settings, **options})  # type: ignore[arg-type]


def test_a_paced_request_leaves_at_its_turn_even_when_slots_are_busy() -> None:
    """A turn taken before waiting for a free slot would be spent late, in a burst past the budget."""
    turns: list[float] = []
    sends: list[float] = []

    class RecordingPacer:
        def wait_for_turn(self, max_wait_seconds: float) -> bool:
            turns.append(time.monotonic())
            return True

    def slow_provider(request: httpx.Request) -> httpx.Response:
        sends.append(time.monotonic())
        time.sleep(0.2)
        return httpx.Response(200, json={})

    client = ProviderHttpClient(
        provider="pyannote",
        api_key="k",
        request_timeout_seconds=5.0,
        max_retries=0,
        max_concurrency=1,
        http_client=httpx.Client(transport=httpx.MockTransport(slow_provider)),
        pacer=RecordingPacer(),
    )
    with ThreadPoolExecutor(max_workers=3) as pool:
        for future in [
            pool.submit(
                client.send, "GET", "https://api.example/jobs", codes=TRANSCRIPTION_CODES, deadline=Deadline.after(10)
            )
            for _ in range(3)
        ]:
            future.result()
    assert len(turns) == len(sends) == 3
    assert max(send - turn for turn, send in zip(sorted(turns), sorted(sends), strict=True)) < 0.1
