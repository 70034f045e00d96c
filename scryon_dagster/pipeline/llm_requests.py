"""One strict-schema LLM completion and what it cost, for the analysis and the speaker-naming pass."""

from __future__ import annotations

from typing import Any

from scryon_dagster.adapters.db.records import LlmUsage
from scryon_dagster.adapters.llm import ChatCompletionResult, LlmClient
from scryon_dagster.domain.analysis import estimate_llm_cost_usd
from scryon_dagster.settings import Settings


def complete(llm: LlmClient, *, system: str, user: str, response_format: dict[str, Any]) -> ChatCompletionResult:
    """One strict-schema completion for a ``response_format`` built by the analysis domain."""
    json_schema = response_format["json_schema"]
    return llm.complete_json(system=system, user=user, schema_name=json_schema["name"], schema=json_schema["schema"])


def usage_of(settings: Settings, result: ChatCompletionResult) -> LlmUsage:
    """The completion's tokens and their estimated cost at the configured prices."""
    return LlmUsage(
        model=result.model,
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
        cached_tokens=result.cached_tokens,
        estimated_cost_usd=estimate_llm_cost_usd(
            result.prompt_tokens,
            result.completion_tokens,
            input_price_per_mtok=settings.llm_price_input_per_mtok_usd,
            output_price_per_mtok=settings.llm_price_output_per_mtok_usd,
        ),
        request_id=result.request_id,
    )
