"""LemonfoxClient against the simulator over real HTTP: results, faults, retries, deadlines, privacy."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from scryon_dagster.adapters.errors import (
    PermanentProviderError,
    ProviderError,
    RateLimitedError,
    RetryableProviderError,
)
from scryon_dagster.adapters.lemonfox import LemonfoxClient, parse_transcription
from scryon_dagster.adapters.webhooks import build_signed_callback_url, key_id_for, verify_callback_query
from scryon_dagster.domain.calls import ErrorCode
from scryon_dagster.simulator import SAMPLE_CALLS, SimulatorServer
from scryon_dagster.simulator.synthesis import synthesize_wav
from tests.adapters.providers.conftest import CANARY_API_KEY, FAST_BACKOFF, WebhookReceiver, silent_wav
from tests.fixtures.simulator import delivery_stats

ROUTE = "POST /v1/audio/transcriptions"
GREETING = next(sample for sample in SAMPLE_CALLS if sample.slug == "greeting_by_name")


@pytest.fixture(scope="module")
def greeting_wav() -> bytes:
    return synthesize_wav(GREETING.conversation)


def make_client(simulator: SimulatorServer, **overrides: Any) -> LemonfoxClient:
    options: dict[str, Any] = {
        "api_key": "test-key",
        "base_url": simulator.lemonfox_base_url,
        "timeout_seconds": 5,
        "max_retries": 2,
        "max_concurrency": 4,
        "backoff": FAST_BACKOFF,
    }
    return LemonfoxClient(**{**options, **overrides})


@pytest.fixture
def client(simulator: SimulatorServer) -> Iterator[LemonfoxClient]:
    with make_client(simulator) as lemonfox:
        yield lemonfox


def attempts(simulator: SimulatorServer) -> int:
    return int(simulator.admin.stats()["requests"].get("lemonfox", {}).get(ROUTE, 0))


def transcribe(client: LemonfoxClient, audio: bytes) -> Any:
    return client.transcribe(audio, filename="call.wav", content_type="audio/wav")


def test_sample_call_transcribes_with_speakers_and_words(
    simulator: SimulatorServer, client: LemonfoxClient, greeting_wav: bytes
) -> None:
    result = transcribe(client, greeting_wav)

    transcript = result.transcript
    assert transcript.text.startswith("Hi Praveen")
    assert {segment.speaker for segment in transcript.segments} == {"SPEAKER_00", "SPEAKER_01"}
    assert all(segment.words for segment in transcript.segments)
    assert transcript.words
    assert transcript.duration == pytest.approx(GREETING.duration_seconds, abs=0.01)
    assert parse_transcription(result.raw_bytes) == transcript
    assert result.attempts == 1
    assert attempts(simulator) == 1


def test_language_and_speaker_bounds_are_sent(simulator: SimulatorServer) -> None:
    seen: list[bytes] = []

    def record(request: httpx.Request) -> None:
        seen.append(request.read())

    with (
        httpx.Client(event_hooks={"request": [record]}) as http,
        make_client(simulator, language="en", http_client=http) as client,
    ):
        client.transcribe(silent_wav(8.0), filename="a.wav", content_type="audio/wav", min_speakers=1, max_speakers=2)

    body = seen[0]
    for field, value in [
        (b'name="model"', b"whisper-1"),
        (b'name="response_format"', b"verbose_json"),
        (b'name="speaker_labels"', b"true"),
        (b'name="task"', b"transcribe"),
        (b'name="language"', b"en"),
        (b'name="max_speakers"', b"2"),
    ]:
        assert field in body
        assert value in body
    assert body.count(b'name="timestamp_granularities[]"') == 2


def test_server_error_once_is_retried(simulator: SimulatorServer, client: LemonfoxClient) -> None:
    simulator.admin.set_fault("lemonfox", "http_500")

    result = transcribe(client, silent_wav(6.0))

    assert result.attempts == 2
    assert attempts(simulator) == 2


def test_server_error_always_exhausts_retries(simulator: SimulatorServer, client: LemonfoxClient) -> None:
    simulator.admin.set_fault("lemonfox", "http_500", times=-1)

    with pytest.raises(RetryableProviderError) as caught:
        transcribe(client, silent_wav(6.0))

    assert caught.value.code is ErrorCode.TRANSCRIPTION_UNAVAILABLE
    assert caught.value.status_code == 500
    assert attempts(simulator) == 3  # max_retries=2


@pytest.mark.parametrize("fault", ["http_400", "http_402"])
def test_client_errors_fail_at_once(simulator: SimulatorServer, client: LemonfoxClient, fault: str) -> None:
    simulator.admin.set_fault("lemonfox", fault)

    with pytest.raises(PermanentProviderError) as caught:
        transcribe(client, silent_wav(6.0))

    assert caught.value.code is ErrorCode.TRANSCRIPTION_4XX
    assert caught.value.status_code == int(fault.removeprefix("http_"))
    assert attempts(simulator) == 1


@pytest.mark.parametrize("fault", ["http_429", "http_503"])
def test_rate_limit_and_unavailability_wait_at_least_retry_after(simulator: SimulatorServer, fault: str) -> None:
    sent_at: list[float] = []
    simulator.admin.set_fault("lemonfox", fault, retry_after_seconds=1)

    with (
        httpx.Client(event_hooks={"request": [lambda request: sent_at.append(time.monotonic())]}) as http,
        make_client(simulator, http_client=http) as client,
    ):
        result = transcribe(client, silent_wav(6.0))

    assert result.attempts == 2
    assert sent_at[1] - sent_at[0] >= 1.0


def test_rate_limit_always_ends_rate_limited(simulator: SimulatorServer, client: LemonfoxClient) -> None:
    simulator.admin.set_fault("lemonfox", "http_429", times=-1, retry_after_seconds=0)

    with pytest.raises(RateLimitedError) as caught:
        transcribe(client, silent_wav(6.0))

    assert caught.value.code is ErrorCode.TRANSCRIPTION_RATE_LIMITED
    assert caught.value.retry_after == 0
    assert attempts(simulator) == 3


def test_retry_after_beyond_the_deadline_fails_without_waiting(simulator: SimulatorServer) -> None:
    simulator.admin.set_fault("lemonfox", "http_429", times=-1, retry_after_seconds=120)

    with make_client(simulator, timeout_seconds=2, max_retries=3) as client, pytest.raises(RateLimitedError) as caught:
        transcribe(client, silent_wav(6.0))

    assert caught.value.code is ErrorCode.TRANSCRIPTION_RATE_LIMITED
    assert caught.value.retry_after == 120
    assert attempts(simulator) == 1


def test_hanging_provider_times_out_within_the_deadline(simulator: SimulatorServer) -> None:
    simulator.admin.set_fault("lemonfox", "hang", times=-1)

    with (
        make_client(simulator, timeout_seconds=0.3, max_retries=1) as client,
        pytest.raises(RetryableProviderError) as caught,
    ):
        transcribe(client, silent_wav(6.0))

    assert caught.value.code is ErrorCode.TRANSCRIPTION_TIMEOUT
    assert attempts(simulator) == 2


def test_malformed_json_is_invalid_output(simulator: SimulatorServer, client: LemonfoxClient) -> None:
    simulator.admin.set_fault("lemonfox", "malformed_json")

    with pytest.raises(PermanentProviderError) as caught:
        transcribe(client, silent_wav(6.0))

    assert caught.value.code is ErrorCode.TRANSCRIPTION_INVALID_OUTPUT
    assert attempts(simulator) == 1


def test_empty_transcript(simulator: SimulatorServer, client: LemonfoxClient) -> None:
    simulator.admin.set_fault("lemonfox", "empty_transcript")

    with pytest.raises(PermanentProviderError) as caught:
        transcribe(client, silent_wav(6.0))

    assert caught.value.code is ErrorCode.TRANSCRIPTION_EMPTY


def test_concurrent_requests_are_capped_by_max_concurrency(simulator: SimulatorServer) -> None:
    simulator.admin.set_latency("lemonfox", 0.2)
    audio = silent_wav(6.0)

    with make_client(simulator, max_concurrency=2) as client, ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda _: transcribe(client, audio), range(6)))

    assert len(results) == 6
    assert simulator.admin.stats()["peak_in_flight"] == {"lemonfox": 2}


def test_fault_matching_audio_duration(simulator: SimulatorServer, client: LemonfoxClient) -> None:
    simulator.admin.set_fault("lemonfox", "http_400", times=-1, match_audio_seconds=7.0)

    assert transcribe(client, silent_wav(5.0)).attempts == 1
    with pytest.raises(PermanentProviderError):
        transcribe(client, silent_wav(7.1))


def test_missing_api_key_at_the_provider_is_a_client_error(simulator: SimulatorServer) -> None:
    with httpx.Client() as raw:
        response = raw.post(f"{simulator.lemonfox_base_url}/audio/transcriptions", files={"file": ("a.wav", b"x")})

    assert response.status_code == 401
    assert response.headers["x-scryon-simulator"] == "1"


def test_undecodable_audio_is_a_client_error(client: LemonfoxClient) -> None:
    with pytest.raises(PermanentProviderError) as caught:
        client.transcribe(b"definitely not audio", filename="a.mp3", content_type="audio/mpeg")

    assert caught.value.code is ErrorCode.TRANSCRIPTION_4XX


def test_bad_arguments_are_refused_before_any_request(simulator: SimulatorServer, client: LemonfoxClient) -> None:
    with pytest.raises(ValueError, match="empty"):
        client.transcribe(b"", filename="a.wav", content_type="audio/wav")
    with pytest.raises(ValueError, match="min_speakers"):
        client.transcribe(silent_wav(1), filename="a.wav", content_type="audio/wav", min_speakers=3, max_speakers=2)
    assert attempts(simulator) == 0


def test_callback_mode_delivers_the_transcript_to_the_signed_url(
    simulator: SimulatorServer, client: LemonfoxClient, greeting_wav: bytes, webhook_receiver: WebhookReceiver
) -> None:
    secret = "callback-secret-0123456789abcdefghijkl"
    callback_url = build_signed_callback_url(
        webhook_receiver.url, "call-42", secret, key_id_for(secret), datetime.now(UTC) + timedelta(minutes=5)
    )

    client.submit_with_callback(greeting_wav, filename="c.wav", content_type="audio/wav", callback_url=callback_url)

    delivery = webhook_receiver.wait_for(1)[0]
    assert verify_callback_query(delivery.query, [secret]) == "call-42"
    assert parse_transcription(delivery.body).text.startswith("Hi Praveen")
    assert delivery_stats(simulator, "lemonfox_callback") == {"delivered": 1}


def test_no_secret_or_transcript_text_in_errors_or_logs(
    simulator: SimulatorServer, greeting_wav: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    spoken_words = ("Praveen", "shipment", "warehouse", "invoice")
    errors: list[ProviderError] = []
    with make_client(simulator, api_key=CANARY_API_KEY, timeout_seconds=0.5, max_retries=1) as client:
        for fault in ("http_400", "http_402", "http_500", "http_429", "hang", "malformed_json", "empty_transcript"):
            simulator.admin.set_fault("lemonfox", fault, times=-1, retry_after_seconds=0)
            with pytest.raises(ProviderError) as caught:
                client.transcribe(greeting_wav, filename="c.wav", content_type="audio/wav", prompt="Praveen")
            errors.append(caught.value)
            simulator.admin.clear_faults()

    texts = [str(error) for error in errors] + [repr(error) for error in errors]
    texts += [record.getMessage() for record in caplog.records]
    assert any("retrying" in text for text in texts)  # the retry log lines are part of what is checked
    for text in texts:
        assert CANARY_API_KEY not in text
        assert not any(word in text for word in spoken_words)
