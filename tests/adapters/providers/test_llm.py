"""LlmClient against the simulator over real HTTP: strict-schema answers, faults, retries, privacy."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from scryon_dagster.adapters.errors import (
    PermanentProviderError,
    ProviderError,
    RateLimitedError,
    RetryableProviderError,
)
from scryon_dagster.adapters.llm import ChatCompletionResult, LlmClient
from scryon_dagster.domain.analysis.contract import decode_strict_output
from scryon_dagster.domain.analysis.models import Analysis
from scryon_dagster.domain.analysis.prompt import ANALYSIS_SCHEMA_NAME, analysis_response_format
from scryon_dagster.domain.analysis.speaker_naming import (
    NAMING_SCHEMA_NAME,
    SpeakerNamingAnswer,
    speaker_naming_response_format,
)
from scryon_dagster.domain.calls import ErrorCode
from scryon_dagster.simulator import SimulatorServer
from tests.adapters.providers.conftest import CANARY_API_KEY, FAST_BACKOFF

ROUTE = "POST /v1/chat/completions"
CALL_ID = "5f0c2d1e-8b7a-4c3d-9e6f-1a2b3c4d5e6f"
USER_PROMPT = "\n".join(
    [
        "Call metadata",
        f"callId: {CALL_ID}",
        "",
        "Transcript",
        "speakers: spk_1 (USER), spk_2 (CONTACT)",
        "[seg_0001  00:00-00:04] spk_1 (USER): Hi there, thanks for calling about the marmalade order.",
        "[seg_0002  00:04-00:09] spk_2 (CONTACT): Yes, the marmalade shipment is late.",
        "[seg_0003  00:09-00:12] spk_1 (USER): I will send the tracking number today.",
    ]
)


def make_client(simulator: SimulatorServer, **overrides: Any) -> LlmClient:
    options: dict[str, Any] = {
        "api_key": "test-key",
        "base_url": simulator.llm_base_url,
        "timeout_seconds": 5,
        "max_retries": 1,
        "max_concurrency": 4,
        "backoff": FAST_BACKOFF,
    }
    return LlmClient(**{**options, **overrides})


@pytest.fixture
def client(simulator: SimulatorServer) -> Iterator[LlmClient]:
    with make_client(simulator) as llm:
        yield llm


def analyse(client: LlmClient, *, user: str = USER_PROMPT, system: str = "Analyse the call.") -> ChatCompletionResult:
    schema = analysis_response_format()["json_schema"]["schema"]
    return client.complete_json(system=system, user=user, schema_name=ANALYSIS_SCHEMA_NAME, schema=schema)


def attempts(simulator: SimulatorServer) -> int:
    return int(simulator.admin.stats()["requests"].get("llm", {}).get(ROUTE, 0))


def test_analysis_answer_is_schema_valid_and_cites_the_prompt(client: LlmClient) -> None:
    result = analyse(client)

    analysis = decode_strict_output(
        Analysis, content=result.content, refusal=result.refusal, finish_reason=result.finish_reason
    )
    cited = {segment for item in analysis.action_items for segment in item.source_segment_ids}
    assert cited <= {"seg_0001", "seg_0002", "seg_0003"}
    assert result.finish_reason == "stop"
    assert result.prompt_tokens > 0
    assert result.completion_tokens > 0
    assert result.request_id is not None
    assert result.request_id.startswith("req_")
    assert result.model == "gpt-4o-mini"
    assert result.attempts == 1


def test_other_schemas_get_their_minimal_valid_instance(client: LlmClient) -> None:
    schema = speaker_naming_response_format()["json_schema"]["schema"]

    result = client.complete_json(system="s", user="u", schema_name=NAMING_SCHEMA_NAME, schema=schema)

    answer = decode_strict_output(
        SpeakerNamingAnswer, content=result.content, refusal=result.refusal, finish_reason=result.finish_reason
    )
    assert answer.names == []


def test_request_carries_a_strict_schema_and_temperature(simulator: SimulatorServer) -> None:
    seen: list[httpx.Request] = []
    with (
        httpx.Client(event_hooks={"request": [seen.append]}) as http,
        make_client(simulator, http_client=http, temperature=0.2) as client,
    ):
        client.complete_json(system="s", user="u", schema_name="probe", schema={"type": "object"}, temperature=0.0)

    body = json.loads(seen[0].content)
    assert body["temperature"] == 0.0
    assert body["response_format"]["json_schema"]["strict"] is True
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert seen[0].headers["authorization"] == "Bearer test-key"


def test_repeated_long_system_prompt_reports_cached_tokens(client: LlmClient) -> None:
    system = "Rules for the analysis. " * 400  # well above 1024 tokens

    first, second = analyse(client, system=system), analyse(client, system=system)

    assert first.cached_tokens == 0
    assert second.cached_tokens >= 1024
    assert second.cached_tokens % 128 == 0


def test_refusal_is_returned(simulator: SimulatorServer, client: LlmClient) -> None:
    simulator.admin.set_fault("llm", "refusal")

    result = analyse(client)

    assert (result.content, result.finish_reason) == (None, "stop")
    assert result.refusal


def test_truncation_is_returned(simulator: SimulatorServer, client: LlmClient) -> None:
    simulator.admin.set_fault("llm", "finish_length")

    result = analyse(client)

    assert result.finish_reason == "length"
    assert result.content


def test_insufficient_quota_is_not_retried(simulator: SimulatorServer, client: LlmClient) -> None:
    simulator.admin.set_fault("llm", "insufficient_quota", times=-1)

    with pytest.raises(PermanentProviderError) as caught:
        analyse(client)

    assert (caught.value.code, caught.value.status_code) == (ErrorCode.ANALYSIS_4XX, 429)
    assert attempts(simulator) == 1


@pytest.mark.parametrize("fault", ["http_400", "http_402"])
def test_client_errors_are_not_retried(simulator: SimulatorServer, client: LlmClient, fault: str) -> None:
    simulator.admin.set_fault("llm", fault, times=-1)

    with pytest.raises(PermanentProviderError) as caught:
        analyse(client)

    assert caught.value.code is ErrorCode.ANALYSIS_4XX
    assert attempts(simulator) == 1


def test_rate_limit_honours_retry_after_ms(simulator: SimulatorServer) -> None:
    sent_at: list[float] = []
    simulator.admin.set_fault("llm", "http_429", retry_after_seconds=1)

    with (
        httpx.Client(event_hooks={"request": [lambda request: sent_at.append(time.monotonic())]}) as http,
        make_client(simulator, http_client=http) as client,
    ):
        result = analyse(client)

    assert result.attempts == 2
    assert sent_at[1] - sent_at[0] >= 1.0


def test_rate_limit_always_ends_rate_limited(simulator: SimulatorServer, client: LlmClient) -> None:
    simulator.admin.set_fault("llm", "http_429", times=-1, retry_after_seconds=0)

    with pytest.raises(RateLimitedError) as caught:
        analyse(client)

    assert caught.value.code is ErrorCode.ANALYSIS_RATE_LIMITED
    assert attempts(simulator) == 2


def test_server_error_is_retried_once(simulator: SimulatorServer, client: LlmClient) -> None:
    simulator.admin.set_fault("llm", "http_500", times=-1)

    with pytest.raises(RetryableProviderError) as caught:
        analyse(client)

    assert caught.value.code is ErrorCode.ANALYSIS_UNAVAILABLE
    assert attempts(simulator) == 2


def test_hang_times_out(simulator: SimulatorServer) -> None:
    simulator.admin.set_fault("llm", "hang", times=-1)

    with make_client(simulator, timeout_seconds=0.3) as client, pytest.raises(RetryableProviderError) as caught:
        analyse(client)

    assert caught.value.code is ErrorCode.ANALYSIS_TIMEOUT
    assert attempts(simulator) == 2


def test_malformed_body_is_invalid_output(simulator: SimulatorServer, client: LlmClient) -> None:
    simulator.admin.set_fault("llm", "malformed_json")

    with pytest.raises(PermanentProviderError) as caught:
        analyse(client)

    assert caught.value.code is ErrorCode.ANALYSIS_INVALID_OUTPUT


def test_fault_matching_call_id(simulator: SimulatorServer, client: LlmClient) -> None:
    simulator.admin.set_fault("llm", "refusal", times=-1, match_call_id=CALL_ID)

    other = analyse(client, user=USER_PROMPT.replace(CALL_ID, "another-call"))
    targeted = analyse(client)

    assert other.refusal is None
    assert targeted.refusal is not None


def test_no_secret_or_transcript_text_in_errors_or_logs(
    simulator: SimulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[ProviderError] = []
    with make_client(simulator, api_key=CANARY_API_KEY, timeout_seconds=0.3) as client:
        for fault in ("http_400", "http_500", "http_429", "insufficient_quota", "hang", "malformed_json"):
            simulator.admin.set_fault("llm", fault, times=-1, retry_after_seconds=0)
            with pytest.raises(ProviderError) as caught:
                analyse(client)
            errors.append(caught.value)
            simulator.admin.clear_faults()

    texts = [str(e) for e in errors] + [repr(e) for e in errors] + [r.getMessage() for r in caplog.records]
    assert any("retrying" in text for text in texts)
    for text in texts:
        assert CANARY_API_KEY not in text
        assert "marmalade" not in text
