"""The opt-in LLM speaker-naming pass of the transcript stage: cite-or-discard, verified in the domain;
any failure keeps the transcript as it was (soft)."""

from __future__ import annotations

from scryon_dagster.adapters.errors import ProviderError
from scryon_dagster.domain.analysis import (
    apply_speaker_naming,
    build_speaker_naming_prompt,
    speaker_naming_response_format,
)
from scryon_dagster.domain.calls import ErrorCode, Stage
from scryon_dagster.domain.provider_spend import SpendStage
from scryon_dagster.domain.transcript.models import NormalizedTranscript
from scryon_dagster.pipeline.call_context import CallPorts, CallWork
from scryon_dagster.pipeline.llm_requests import complete, usage_of
from scryon_dagster.pipeline.spend import record_llm_cost


def name_speakers_with_llm(ports: CallPorts, work: CallWork, transcript: NormalizedTranscript) -> NormalizedTranscript:
    """The transcript with the speakers the LLM named (each name cited from the call), or as it was."""
    prompt = build_speaker_naming_prompt(transcript)
    if prompt is None:
        work.log.skipped(Stage.LLM_SPEAKER_NAMING, provider="llm", reason="nothing_to_name")
        return transcript
    with work.log.stage(Stage.LLM_SPEAKER_NAMING, provider="llm") as stage:
        try:
            result = complete(
                ports.llm, system=prompt.system, user=prompt.user, response_format=speaker_naming_response_format()
            )
        except ProviderError as exc:
            stage.soft_failure(exc.code)
            return transcript
        record_llm_cost(ports, work, usage_of(ports.settings, result), SpendStage.SPEAKER_NAMING)
        outcome = apply_speaker_naming(
            transcript, content=result.content, refusal=result.refusal, finish_reason=result.finish_reason
        )
        if outcome.warnings:
            stage.soft_failure(ErrorCode.ANALYSIS_INVALID_OUTPUT)
    named = outcome.transcript
    warnings = [*named.speaker_resolution.warnings, *(str(w) for w in outcome.warnings)]
    return named.model_copy(
        update={"speaker_resolution": named.speaker_resolution.model_copy(update={"warnings": warnings})}
    )
