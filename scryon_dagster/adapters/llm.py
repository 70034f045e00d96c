"""OpenAI-compatible chat completions with a strict JSON-schema response format."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from scryon_dagster.adapters.errors import PermanentProviderError
from scryon_dagster.adapters.http import (
    ANALYSIS_CODES,
    DEFAULT_BACKOFF,
    Backoff,
    Deadline,
    ProviderClient,
    decode_json_object,
)

if TYPE_CHECKING:
    from scryon_dagster.settings import Settings

PROVIDER = "llm"


@dataclass(frozen=True)
class ChatCompletionResult:
    """The first choice of a completion. A refusal or ``finish_reason == "length"`` is returned, not
    raised: the analysis domain decides what it means."""

    content: str | None
    refusal: str | None
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    request_id: str | None
    model: str | None
    raw_bytes: bytes
    attempts: int = 1
    request_ms: int = 0


def parse_chat_completion(
    raw: bytes, *, request_id: str | None = None, attempts: int = 1, request_ms: int = 0
) -> ChatCompletionResult:
    """Read a chat completion body; an unreadable envelope raises ``analysis_invalid_output``."""
    code = ANALYSIS_CODES.invalid_output

    def invalid(what: str) -> PermanentProviderError:
        return PermanentProviderError(f"{PROVIDER} completion {what}", code=code, provider=PROVIDER)

    data = decode_json_object(raw, provider=PROVIDER, code=code, what="completion")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise invalid("has no choices")
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        raise invalid("has no message")
    content, refusal = message.get("content"), message.get("refusal")
    finish_reason, model = choice.get("finish_reason"), data.get("model")
    for name, value in (
        ("content", content),
        ("refusal", refusal),
        ("finish_reason", finish_reason),
        ("model", model),
    ):
        if value is not None and not isinstance(value, str):
            raise invalid(f"field {name} is not a string")
    usage = _object(data.get("usage"))
    details = _object(usage.get("prompt_tokens_details"))
    return ChatCompletionResult(
        content=content,
        refusal=refusal,
        finish_reason=finish_reason,
        prompt_tokens=_count(usage.get("prompt_tokens")),
        completion_tokens=_count(usage.get("completion_tokens")),
        cached_tokens=_count(details.get("cached_tokens")),
        request_id=request_id,
        model=model,
        raw_bytes=raw,
        attempts=attempts,
        request_ms=request_ms,
    )


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


class LlmClient(ProviderClient):
    """One per process; thread-safe. Retries 408/409/429 (not ``insufficient_quota``), 5xx and
    timeouts; never 400/401/403/404/422. ``timeout_seconds`` bounds each attempt, and by default a
    whole call gets ``timeout_seconds * (max_retries + 1)`` including backoff."""

    def __init__(
        self,
        api_key: str,
        base_url: str = "https://api.openai.com/v1",
        model: str = "gpt-4o-mini",
        timeout_seconds: float = 120,
        temperature: float = 0.2,
        max_retries: int = 1,
        max_concurrency: int = 8,
        http_client: httpx.Client | None = None,
        *,
        backoff: Backoff = DEFAULT_BACKOFF,
    ) -> None:
        super().__init__(
            provider=PROVIDER,
            api_key=api_key,
            timeout_seconds=timeout_seconds,
            max_retries=max_retries,
            max_concurrency=max_concurrency,
            backoff=backoff,
            http_client=http_client,
        )
        self._url = f"{base_url.rstrip('/')}/chat/completions"
        self._model = model
        self._temperature = temperature
        self._call_budget_seconds = timeout_seconds * (max_retries + 1)

    @classmethod
    def from_settings(cls, settings: Settings, http_client: httpx.Client | None = None) -> LlmClient:
        if settings.llm_api_key is None:
            raise ValueError("LLM_API_KEY is not set")
        return cls(
            api_key=settings.llm_api_key.get_secret_value(),
            base_url=settings.llm_base_url,
            model=settings.llm_model,
            timeout_seconds=settings.llm_timeout_seconds,
            temperature=settings.llm_temperature,
            max_retries=settings.llm_max_retries,
            max_concurrency=settings.scryon_llm_concurrency,
            http_client=http_client,
        )

    @property
    def model(self) -> str:
        return self._model

    def complete_json(
        self,
        *,
        system: str,
        user: str,
        schema_name: str,
        schema: dict[str, Any],
        temperature: float | None = None,
        deadline: Deadline | None = None,
    ) -> ChatCompletionResult:
        """One strict-schema completion (``response_format.json_schema`` with ``strict: true``)."""
        if not schema_name:
            raise ValueError("schema_name is required")
        body = {
            "model": self._model,
            "temperature": self._temperature if temperature is None else temperature,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": schema_name, "strict": True, "schema": schema},
            },
        }
        sent = self._http.send(
            "POST",
            self._url,
            codes=ANALYSIS_CODES,
            deadline=deadline or Deadline.after(self._call_budget_seconds),
            json=body,
        )
        return parse_chat_completion(
            sent.response.content,
            request_id=sent.response.headers.get("x-request-id"),
            attempts=sent.attempts,
            request_ms=sent.elapsed_ms,
        )
