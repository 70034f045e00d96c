"""The simulator's rate-based and newer faults over real HTTP (``probability``, ``http_503``, ``slow``,
``truncated_body``, per-call subject statistics), and how each adapter classifies them."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from scryon_dagster.adapters.errors import PermanentProviderError, ProviderError, RetryableProviderError
from scryon_dagster.domain.calls import ErrorCode
from scryon_dagster.simulator import SimulatorServer
from tests.adapters.providers import test_lemonfox, test_llm, test_pyannote
from tests.adapters.providers.conftest import WebhookReceiver, silent_wav

AUTH = {"Authorization": "Bearer test-key"}
CALL_ID = "0b7e2c4a-5d61-4f0e-9a3b-6c8d2e1f4a57"
CHAT = {"model": "m", "messages": [{"role": "user", "content": f"callId: {CALL_ID}\nhello"}]}


@pytest.fixture
def http(simulator: SimulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=simulator.base_url, headers=AUTH, timeout=10) as client:
        yield client


def chat_statuses(http: httpx.Client, count: int) -> list[int]:
    return [http.post("/v1/chat/completions", json=CHAT).status_code for _ in range(count)]


def transcription(http: httpx.Client, seconds: float = 6.0) -> httpx.Response:
    form = {"model": "whisper-1", "response_format": "verbose_json"}
    return http.post("/v1/audio/transcriptions", data=form, files={"file": ("a.wav", silent_wav(seconds))})


# --- rates ---------------------------------------------------------------------------------------
def test_probability_serves_that_share_reproducibly(simulator: SimulatorServer, http: httpx.Client) -> None:
    simulator.admin.reset(seed=7)
    simulator.admin.set_fault("llm", "http_429", times=-1, probability=0.3, retry_after_seconds=1)
    first = chat_statuses(http, 300)
    simulator.admin.reset(seed=7)
    simulator.admin.set_fault("llm", "http_429", times=-1, probability=0.3, retry_after_seconds=1)
    second = chat_statuses(http, 300)

    assert first == second
    assert 60 <= first.count(429) <= 120  # 30 % of 300, well inside binomial spread
    assert set(first) == {200, 429}


def test_probabilities_of_several_faults_add_up(simulator: SimulatorServer, http: httpx.Client) -> None:
    simulator.admin.set_fault("llm", "http_500", times=-1, probability=0.15)
    simulator.admin.set_fault("llm", "http_503", times=-1, probability=0.15)

    statuses = Counter(chat_statuses(http, 400))

    assert 35 <= statuses[500] <= 90
    assert 35 <= statuses[503] <= 90  # 15 % each, not 15 % of what the first one left
    assert simulator.admin.stats()["faults_served"]["llm"] == {"http_500": statuses[500], "http_503": statuses[503]}


def test_probability_with_a_count_stops_after_the_count(simulator: SimulatorServer, http: httpx.Client) -> None:
    simulator.admin.set_fault("llm", "http_500", times=3, probability=0.5)

    statuses = chat_statuses(http, 60)

    assert statuses.count(500) == 3
    assert simulator.admin.stats()["faults_served"]["llm"] == {"http_500": 3}


@pytest.mark.parametrize(
    "body",
    [
        {"provider": "llm", "fault": "http_500", "probability": 0},
        {"provider": "llm", "fault": "http_500", "probability": 1.5},
        {"provider": "llm", "fault": "http_500", "probability": True},
        {"provider": "lemonfox", "fault": "slow", "delay_seconds": 0},
        {"provider": "pyannote", "fault": "slow", "delay_seconds": 601},
        {"provider": "lemonfox", "fault": "http_503", "retry_after_seconds": -1},
        {"provider": "lemonfox", "fault": "insufficient_quota"},
    ],
)
def test_fault_admin_rejects_bad_new_fields(http: httpx.Client, body: dict[str, object]) -> None:
    assert http.post("/_sim/faults", json=body).status_code == 400


def test_reset_rejects_a_bad_seed(http: httpx.Client) -> None:
    assert http.post("/_sim/reset", json={"seed": "seven"}).status_code == 400


# --- the new fault kinds, as served --------------------------------------------------------------
def test_http_503_carries_retry_after_only_when_asked(simulator: SimulatorServer, http: httpx.Client) -> None:
    simulator.admin.set_fault("llm", "http_503")
    simulator.admin.set_fault("llm", "http_503", retry_after_seconds=2)

    bare, with_header = (http.post("/v1/chat/completions", json=CHAT) for _ in range(2))

    assert (bare.status_code, with_header.status_code) == (503, 503)
    assert "retry-after" not in bare.headers
    assert with_header.headers["retry-after"] == "2"
    assert with_header.json()["error"]["type"] == "server_error"


def test_truncated_transcription_is_a_prefix_of_the_real_one(simulator: SimulatorServer, http: httpx.Client) -> None:
    whole = transcription(http)
    simulator.admin.set_fault("lemonfox", "truncated_body")

    cut = transcription(http)

    assert cut.status_code == 200
    assert 0 < len(cut.content) < len(whole.content)
    assert whole.content.startswith(cut.content)
    with pytest.raises(json.JSONDecodeError):
        json.loads(cut.content)


def test_truncated_completion_is_cut_json(simulator: SimulatorServer, http: httpx.Client) -> None:
    simulator.admin.set_fault("llm", "truncated_body")

    cut = http.post("/v1/chat/completions", json=CHAT)

    assert cut.status_code == 200
    assert cut.content.startswith(b'{"id"')
    with pytest.raises(json.JSONDecodeError):
        json.loads(cut.content)


def test_slow_answers_normally_after_the_delay(simulator: SimulatorServer, http: httpx.Client) -> None:
    simulator.admin.set_fault("lemonfox", "slow", delay_seconds=0.4)

    started = time.monotonic()
    slow = transcription(http)
    slow_seconds = time.monotonic() - started

    assert slow.status_code == 200
    assert slow.json()["text"]
    assert slow_seconds >= 0.4
    assert simulator.admin.stats()["faults_served"] == {"lemonfox": {"slow": 1}}


def test_truncated_callback_delivery_is_cut_and_not_a_usable_answer(
    simulator: SimulatorServer, http: httpx.Client, webhook_receiver: WebhookReceiver
) -> None:
    simulator.admin.set_fault("lemonfox", "truncated_body")
    form = {"model": "whisper-1", "response_format": "verbose_json", "callback_url": webhook_receiver.url}

    accepted = http.post("/v1/audio/transcriptions", data=form, files={"file": ("a.wav", silent_wav(6.0))})

    (delivery,) = webhook_receiver.wait_for(1)
    assert accepted.json()["status"] == "processing"
    with pytest.raises(json.JSONDecodeError):
        json.loads(delivery.body)
    assert simulator.admin.subject_stats() == {"audio:6.000": {"lemonfox": {"requests": 1}}}


def test_subject_stats_count_requests_and_usable_answers_per_call(
    simulator: SimulatorServer, http: httpx.Client
) -> None:
    simulator.admin.set_fault("llm", "http_500")
    simulator.admin.set_fault("lemonfox", "truncated_body")

    chat_statuses(http, 2)
    transcription(http, 6.0)
    transcription(http, 6.0)

    assert simulator.admin.subject_stats() == {
        CALL_ID: {"llm": {"requests": 2, "answers": 1}},
        "audio:6.000": {"lemonfox": {"requests": 2, "answers": 1}},
    }


# --- how the adapters classify them --------------------------------------------------------------
@pytest.fixture
def fast_clients(simulator: SimulatorServer) -> Iterator[dict[str, Any]]:
    clients = {
        "lemonfox": test_lemonfox.make_client(simulator),
        "pyannote": test_pyannote.make_client(simulator),
        "llm": test_llm.make_client(simulator),
    }
    yield clients
    for client in clients.values():
        client.close()


def provider_call(provider: str, clients: dict[str, Any]) -> Callable[[], object]:
    """One whole provider operation of a pipeline stage (for pyannote: diarize already-uploaded media)."""
    if provider == "lemonfox":
        return lambda: test_lemonfox.transcribe(clients["lemonfox"], silent_wav(6.0))
    if provider == "pyannote":
        media_url = clients["pyannote"].upload_media(silent_wav(9.0), f"scryon-{CALL_ID}-1")
        return lambda: clients["pyannote"].diarize(media_url)
    return lambda: test_llm.analyse(clients["llm"])


STAGE_CODES = {
    "lemonfox": (ErrorCode.TRANSCRIPTION_UNAVAILABLE, ErrorCode.TRANSCRIPTION_INVALID_OUTPUT),
    "pyannote": (ErrorCode.DIARIZATION_UNAVAILABLE, ErrorCode.DIARIZATION_INVALID_OUTPUT),
    "llm": (ErrorCode.ANALYSIS_UNAVAILABLE, ErrorCode.ANALYSIS_INVALID_OUTPUT),
}


@pytest.mark.parametrize("provider", sorted(STAGE_CODES))
def test_503_is_retried_then_unavailable(
    simulator: SimulatorServer, fast_clients: dict[str, Any], provider: str
) -> None:
    operation = provider_call(provider, fast_clients)
    simulator.admin.set_fault(provider, "http_503", retry_after_seconds=0)
    operation()  # one 503 is retried away

    simulator.admin.set_fault(provider, "http_503", times=-1)
    with pytest.raises(RetryableProviderError) as caught:
        operation()

    assert (caught.value.code, caught.value.status_code) == (STAGE_CODES[provider][0], 503)


@pytest.mark.parametrize("provider", sorted(STAGE_CODES))
def test_truncated_body_throughout_is_invalid_output(
    simulator: SimulatorServer, fast_clients: dict[str, Any], provider: str
) -> None:
    operation = provider_call(provider, fast_clients)
    simulator.admin.set_fault(provider, "truncated_body", times=-1)

    with pytest.raises(ProviderError) as caught:
        operation()

    assert isinstance(caught.value, PermanentProviderError)
    assert caught.value.code is STAGE_CODES[provider][1]


@pytest.mark.parametrize("provider", ["lemonfox", "llm"])
def test_one_truncated_answer_is_invalid_output(
    simulator: SimulatorServer, fast_clients: dict[str, Any], provider: str
) -> None:
    simulator.admin.set_fault(provider, "truncated_body")

    with pytest.raises(PermanentProviderError) as caught:
        provider_call(provider, fast_clients)()

    assert caught.value.code is STAGE_CODES[provider][1]
    assert simulator.admin.stats()["faults_served"][provider] == {"truncated_body": 1}


def test_a_truncated_job_result_is_read_again_not_paid_again(
    simulator: SimulatorServer, fast_clients: dict[str, Any]
) -> None:
    pyannote = fast_clients["pyannote"]
    media_url = pyannote.upload_media(silent_wav(9.0), f"scryon-{CALL_ID}-1")
    simulator.admin.set_fault("pyannote", "truncated_body", times=2)

    result = pyannote.diarize(media_url)

    assert result.diarization.diarization
    assert simulator.admin.stats()["requests"]["pyannote"]["POST /v1/diarize"] == 1
    assert simulator.admin.subject_stats()[CALL_ID]["pyannote"]["answers"] == 1


@pytest.mark.parametrize("provider", sorted(STAGE_CODES))
def test_slow_below_the_timeout_succeeds_first_time(
    simulator: SimulatorServer, fast_clients: dict[str, Any], provider: str
) -> None:
    operation = provider_call(provider, fast_clients)
    simulator.admin.set_fault(provider, "slow", times=-1, delay_seconds=0.3)

    operation()

    assert simulator.admin.stats()["faults_served"][provider]["slow"] >= 1
