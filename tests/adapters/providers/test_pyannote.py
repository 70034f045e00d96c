"""PyannoteClient against the simulator over real HTTP: upload, jobs, voice identification, faults."""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest

from scryon_dagster.adapters.errors import (
    PermanentProviderError,
    ProviderError,
    RateLimitedError,
    RetryableProviderError,
)
from scryon_dagster.adapters.http import RequestPacer
from scryon_dagster.adapters.pyannote import PyannoteClient, parse_job
from scryon_dagster.adapters.webhooks import verify_pyannote_webhook
from scryon_dagster.domain.calls import ErrorCode
from scryon_dagster.domain.provider_outputs import Diarization
from scryon_dagster.simulator import SAMPLE_CALLS, SimulatorServer
from scryon_dagster.simulator.synthesis import synthesize_wav
from tests.adapters.providers.conftest import CANARY_API_KEY, FAST_BACKOFF, WebhookReceiver, silent_wav
from tests.fixtures.simulator import SIMULATOR_WEBHOOK_SECRET

THREE_PARTY = next(sample for sample in SAMPLE_CALLS if sample.slug == "three_party")


@pytest.fixture(scope="module")
def three_party_wav() -> bytes:
    return synthesize_wav(THREE_PARTY.conversation)


def make_client(simulator: SimulatorServer, **overrides: Any) -> PyannoteClient:
    options: dict[str, Any] = {
        "api_key": "test-key",
        "base_url": simulator.pyannote_base_url,
        "timeout_seconds": 10,
        "poll_interval_seconds": 0.02,
        "max_retries": 2,
        "max_concurrency": 4,
        "backoff": FAST_BACKOFF,
    }
    return PyannoteClient(**{**options, **overrides})


@pytest.fixture
def client(simulator: SimulatorServer) -> Iterator[PyannoteClient]:
    with make_client(simulator) as pyannote:
        yield pyannote


def requests(simulator: SimulatorServer, route: str) -> int:
    return int(simulator.admin.stats()["requests"].get("pyannote", {}).get(route, 0))


def test_upload_and_diarize_a_sample_call(
    simulator: SimulatorServer, client: PyannoteClient, three_party_wav: bytes
) -> None:
    media_url = client.upload_media(three_party_wav, "users/u1/calls/c1")
    result = client.diarize(media_url)

    assert media_url == "media://users/u1/calls/c1"
    assert result.diarization.speaker_count >= 3
    assert result.diarization.exclusive_diarization
    assert Diarization.parse(result.raw_bytes) == result.diarization
    assert set(json.loads(result.raw_bytes)) == {"diarization", "exclusiveDiarization"}
    assert result.polls >= 1
    assert requests(simulator, "PUT /_sim/presigned/{token}") == 1  # accepted: no Bearer on the presigned PUT


def test_max_speakers_caps_the_speaker_count(client: PyannoteClient, three_party_wav: bytes) -> None:
    media_url = client.upload_media(three_party_wav, "capped")

    result = client.diarize(media_url, max_speakers=2, exclusive=False)

    assert result.diarization.speaker_count == 2
    assert result.diarization.exclusive_diarization is None


def test_exclusive_turns_never_overlap(client: PyannoteClient, three_party_wav: bytes) -> None:
    turns = client.diarize(client.upload_media(three_party_wav, "exclusive")).diarization.turns_for_alignment

    assert all(earlier.end <= later.start + 1e-9 for earlier, later in itertools.pairwise(turns))


@pytest.mark.parametrize("fault", ["job_failed", "job_canceled"])
def test_failed_or_canceled_job(simulator: SimulatorServer, client: PyannoteClient, fault: str) -> None:
    media_url = client.upload_media(silent_wav(12.0), "f")
    simulator.admin.set_fault("pyannote", fault)

    with pytest.raises(PermanentProviderError) as caught:
        client.diarize(media_url)

    assert caught.value.code is ErrorCode.DIARIZATION_JOB_FAILED
    assert fault.removeprefix("job_") in str(caught.value)


def test_job_that_outlives_the_deadline_times_out(simulator: SimulatorServer) -> None:
    with make_client(simulator, timeout_seconds=0.5) as client:
        media_url = client.upload_media(silent_wav(12.0), "slow")
        simulator.admin.set_fault("pyannote", "slow_poll")
        with pytest.raises(RetryableProviderError) as caught:
            client.diarize(media_url)

    assert caught.value.code is ErrorCode.DIARIZATION_TIMEOUT
    assert requests(simulator, "GET /v1/jobs/{jobId}") >= 2


def test_payment_required_is_permanent(simulator: SimulatorServer, client: PyannoteClient) -> None:
    simulator.admin.set_fault("pyannote", "http_402")

    with pytest.raises(PermanentProviderError) as caught:
        client.upload_media(silent_wav(5.0), "k")

    assert (caught.value.code, caught.value.status_code) == (ErrorCode.DIARIZATION_4XX, 402)
    assert requests(simulator, "POST /v1/media/input") == 1


def test_bad_request_is_permanent(simulator: SimulatorServer, client: PyannoteClient) -> None:
    media_url = client.upload_media(silent_wav(5.0), "k")
    simulator.admin.set_fault("pyannote", "http_400")

    with pytest.raises(PermanentProviderError) as caught:
        client.diarize(media_url)

    assert caught.value.code is ErrorCode.DIARIZATION_4XX
    assert requests(simulator, "POST /v1/diarize") == 1


def test_server_error_is_retried_per_request(simulator: SimulatorServer, client: PyannoteClient) -> None:
    simulator.admin.set_fault("pyannote", "http_500", times=2)

    result = client.diarize(client.upload_media(silent_wav(9.0), "retry"))

    assert result.diarization.diarization
    assert requests(simulator, "POST /v1/media/input") == 3


def test_server_error_always_is_unavailable(simulator: SimulatorServer, client: PyannoteClient) -> None:
    simulator.admin.set_fault("pyannote", "http_500", times=-1)

    with pytest.raises(RetryableProviderError) as caught:
        client.upload_media(silent_wav(5.0), "k")

    assert caught.value.code is ErrorCode.DIARIZATION_UNAVAILABLE
    assert requests(simulator, "POST /v1/media/input") == 3


def test_transient_poll_failure_is_retried(simulator: SimulatorServer, client: PyannoteClient) -> None:
    media_url = client.upload_media(silent_wav(9.0), "poll")
    job_id = client.submit_diarization(media_url)
    simulator.admin.set_fault("pyannote", "http_500")

    snapshot = client.get_job(job_id)

    assert snapshot.job_id == job_id
    assert requests(simulator, "GET /v1/jobs/{jobId}") == 2


def test_sliding_window_rate_limit(simulator: SimulatorServer, client: PyannoteClient) -> None:
    job_id = client.submit_diarization(client.upload_media(silent_wav(9.0), "limited"))
    simulator.admin.set_rate_limit("pyannote", 1)
    client.get_job(job_id)

    with make_client(simulator, timeout_seconds=2) as short, pytest.raises(RateLimitedError) as caught:
        short.get_job(job_id)

    assert caught.value.code is ErrorCode.DIARIZATION_RATE_LIMITED
    assert caught.value.retry_after is not None
    assert caught.value.retry_after > 2  # beyond the deadline, so not waited for
    assert simulator.admin.stats()["rate_limited"] == {"pyannote": 1}


def test_rate_limit_with_short_retry_after_is_waited_out(simulator: SimulatorServer, client: PyannoteClient) -> None:
    simulator.admin.set_fault("pyannote", "http_429", retry_after_seconds=1)

    assert client.upload_media(silent_wav(5.0), "k") == "media://k"
    assert requests(simulator, "POST /v1/media/input") == 2


def test_malformed_job_document(simulator: SimulatorServer, client: PyannoteClient) -> None:
    media_url = client.upload_media(silent_wav(9.0), "m")
    simulator.admin.set_fault("pyannote", "malformed_json")

    with pytest.raises(PermanentProviderError) as caught:
        client.diarize(media_url)

    assert caught.value.code is ErrorCode.DIARIZATION_INVALID_OUTPUT


def test_hanging_job_creation_times_out(simulator: SimulatorServer) -> None:
    with make_client(simulator, timeout_seconds=0.5) as client:
        media_url = client.upload_media(silent_wav(9.0), "h")
        simulator.admin.set_fault("pyannote", "hang", times=-1)
        with pytest.raises(RetryableProviderError) as caught:
            client.diarize(media_url)

    assert caught.value.code is ErrorCode.DIARIZATION_TIMEOUT


def test_fault_matching_audio_duration(simulator: SimulatorServer, client: PyannoteClient) -> None:
    short, long = client.upload_media(silent_wav(5.0), "short"), client.upload_media(silent_wav(11.0), "long")
    simulator.admin.set_fault("pyannote", "job_failed", times=-1, match_audio_seconds=11.0)

    assert client.diarize(short).diarization.diarization
    with pytest.raises(PermanentProviderError):
        client.diarize(long)


def test_unknown_media_is_a_client_error(client: PyannoteClient) -> None:
    with pytest.raises(PermanentProviderError) as caught:
        client.diarize("media://never-uploaded")

    assert (caught.value.code, caught.value.status_code) == (ErrorCode.DIARIZATION_4XX, 400)


def test_voiceprint_and_identification(
    simulator: SimulatorServer, client: PyannoteClient, three_party_wav: bytes
) -> None:
    enrolment = client.upload_media(three_party_wav[: 44 + 20 * 16_000 * 2], "enrolment")  # first 20 s
    voiceprint = client.create_voiceprint(enrolment)
    call = client.upload_media(three_party_wav, "call")

    result = client.identify(call, [("user", voiceprint)])

    scores = {entry.speaker: entry.confidence["user"] for entry in result.identification.voiceprints}
    matched = [entry.speaker for entry in result.identification.voiceprints if entry.match == "user"]
    assert len(matched) == 1
    assert scores[matched[0]] >= 75
    assert all(score < 40 for speaker, score in scores.items() if speaker != matched[0])
    assert any(turn.match == "user" for turn in result.identification.identification)


def test_voiceprint_audio_longer_than_30_seconds_is_refused(client: PyannoteClient, three_party_wav: bytes) -> None:
    with pytest.raises(PermanentProviderError) as caught:
        client.create_voiceprint(client.upload_media(three_party_wav, "too-long"))

    assert (caught.value.code, caught.value.status_code) == (ErrorCode.VOICE_MATCH_FAILED, 400)


def test_identify_job_failure_is_a_voice_match_failure(simulator: SimulatorServer, client: PyannoteClient) -> None:
    media_url = client.upload_media(silent_wav(9.0), "i")
    simulator.admin.set_fault("pyannote", "job_failed")

    with pytest.raises(PermanentProviderError) as caught:
        client.identify(media_url, [("user", "opaque")])

    assert caught.value.code is ErrorCode.VOICE_MATCH_FAILED


def test_identify_refuses_reserved_or_duplicate_labels(client: PyannoteClient) -> None:
    with pytest.raises(ValueError, match="SPEAKER_"):
        client.identify("media://x", [("SPEAKER_00", "vp")])
    with pytest.raises(ValueError, match="unique"):
        client.identify("media://x", [("user", "a"), ("user", "b")])


def test_bad_media_key_is_refused(client: PyannoteClient) -> None:
    with pytest.raises(ValueError, match="media_key"):
        client.upload_media(b"RIFF", "has spaces")


def test_webhook_delivery_is_signed(
    simulator: SimulatorServer, client: PyannoteClient, webhook_receiver: WebhookReceiver
) -> None:
    media_url = client.upload_media(silent_wav(9.0), "w")

    job_id = client.submit_diarization(media_url, webhook_url=f"{webhook_receiver.url}/webhooks/pyannote")

    delivery = webhook_receiver.wait_for(1)[0]
    assert verify_pyannote_webhook(
        delivery.body,
        delivery.headers.get("x-request-timestamp"),
        delivery.headers.get("x-signature"),
        ["some-other-secret-value-0123456789abc", SIMULATOR_WEBHOOK_SECRET],
    )
    snapshot = parse_job(delivery.body)
    assert (snapshot.job_id, snapshot.status) == (job_id, "succeeded")
    assert snapshot.output_bytes is not None
    assert Diarization.parse(snapshot.output_bytes).diarization


def test_no_secret_in_errors_or_logs(simulator: SimulatorServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[ProviderError] = []
    with make_client(simulator, api_key=CANARY_API_KEY, timeout_seconds=0.5, max_retries=1) as client:
        media_url = client.upload_media(silent_wav(9.0), "canary")
        for fault in ("http_400", "http_402", "http_500", "http_429", "hang", "job_failed", "malformed_json"):
            simulator.admin.set_fault("pyannote", fault, times=-1, retry_after_seconds=0)
            with pytest.raises(ProviderError) as caught:
                client.diarize(media_url)
            errors.append(caught.value)
            simulator.admin.clear_faults()

    texts = [str(e) for e in errors] + [repr(e) for e in errors] + [r.getMessage() for r in caplog.records]
    assert texts
    assert not any(CANARY_API_KEY in text for text in texts)


def test_api_requests_are_paced_to_the_configured_rate(simulator: SimulatorServer) -> None:
    with make_client(simulator, pacer=RequestPacer(120)) as paced:  # one API request about every 0.5 s
        started = time.monotonic()
        for _ in range(5):
            paced.upload_media(silent_wav(1.0), "paced")  # one paced POST + one unpaced presigned PUT each
        elapsed = time.monotonic() - started

    assert elapsed >= 4 * 0.5
    assert simulator.admin.stats()["requests_total"]["pyannote"] == 10
