"""Analysis (hard), action items and sentiment (soft) for one call."""

from __future__ import annotations

from scryon_dagster.adapters.db.records import LlmUsage
from scryon_dagster.adapters.errors import ProviderError
from scryon_dagster.adapters.llm import ChatCompletionResult
from scryon_dagster.domain.analysis import (
    Analysis,
    AnalysisInvalidOutput,
    analysis_response_format,
    build_action_item_drafts,
    build_sentiment_summary,
    validate_analysis_output,
)
from scryon_dagster.domain.analysis.chunking import AnalysisPart, merge_part_answers, plan_analysis_parts
from scryon_dagster.domain.calls import ArtifactType, CallStatus, ErrorCode, Stage
from scryon_dagster.domain.provider_spend import SpendStage
from scryon_dagster.domain.transcript.models import NormalizedTranscript, TranscriptFormatError
from scryon_dagster.pipeline.call_context import CallPorts, CallWork
from scryon_dagster.pipeline.llm_requests import complete, usage_of
from scryon_dagster.pipeline.outcomes import MetadataValue
from scryon_dagster.pipeline.spend import record_llm_cost
from scryon_dagster.pipeline.stages import StageFailure

ANALYSIS_SCHEMA_VERSION = 3


def run_analysis(
    ports: CallPorts, work: CallWork, transcript: NormalizedTranscript | None
) -> dict[str, MetadataValue] | None:
    """The ANALYZED stage and, after it, ACTION_ITEMS_EXTRACTED; None when analysis is switched off."""
    if not work.flags.analysis:
        work.log.skipped(Stage.ANALYZED, provider="llm", reason="disabled")
        return None
    transcript = transcript or _stored_transcript(ports, work)
    if not ports.move(work, CallStatus.TRANSCRIBING, CallStatus.ANALYZING):
        raise StageFailure("superseded")
    call = work.call
    withheld = [name for name in (call.contact_name, work.user.display_name if work.user else None) if name]
    parts = plan_analysis_parts(
        transcript,
        max_prompt_tokens=ports.settings.llm_max_prompt_tokens,
        call_id=str(call.id),
        recorded_at=call.recorded_at,
        duration_seconds=transcript.duration_seconds or call.duration_seconds,
        title=call.title,
        withheld_names=withheld,
    )
    with work.log.stage(Stage.ANALYZED, provider="llm") as stage:
        answers: list[tuple[str, Analysis]] = []
        usages: list[LlmUsage] = []
        try:
            for part in parts:
                result = _request_part(ports, part)
                usages.append(usage_of(ports.settings, result))
                record_llm_cost(ports, work, usages[-1], SpendStage.ANALYSIS)
                answers.append(_accepted_answer(result, part))
        finally:
            if usages:  # tokens are spent even when an answer is unusable
                usage = _total_usage(usages)
                ports.db.record_llm_usage(call.id, usage)
        if len(answers) == 1:
            content, analysis = answers[0]
        else:
            content = merge_part_answers([answer for answer, _ in answers])
            analysis = _accepted_analysis(content, transcript)  # the merged document, checked against the whole call
        size = ports.store_artifact(
            work,
            ArtifactType.ANALYSIS_JSON,
            content.encode(),
            schema_version=ANALYSIS_SCHEMA_VERSION,
        )
    return {
        "provider": "llm",
        "model": usage.model or ports.settings.llm_model,
        "schema_version": ANALYSIS_SCHEMA_VERSION,
        "analysis_parts": len(parts),
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "estimated_cost_usd": round(usage.estimated_cost_usd, 6),
        "action_items": _save_action_items(ports, work, analysis, transcript),
        "size_bytes": size,
        "duration_ms": stage.elapsed_ms,
    }


def _request_part(ports: CallPorts, part: AnalysisPart) -> ChatCompletionResult:
    """One analysis request: the whole call, or one part of a long one."""
    try:
        return complete(
            ports.llm, system=part.prompt.system, user=part.prompt.user, response_format=analysis_response_format()
        )
    except ProviderError as exc:
        raise StageFailure(exc.code) from None


def _accepted_answer(result: ChatCompletionResult, part: AnalysisPart) -> tuple[str, Analysis]:
    """The answer's content and analysis once it is valid and cites only its part's segments."""
    analysis = _accepted_analysis(
        result.content, part.transcript, refusal=result.refusal, finish_reason=result.finish_reason
    )
    assert result.content is not None
    return result.content, analysis


def _accepted_analysis(
    content: str | None,
    transcript: NormalizedTranscript,
    *,
    refusal: str | None = None,
    finish_reason: str | None = "stop",
) -> Analysis:
    try:
        return validate_analysis_output(
            content=content, refusal=refusal, finish_reason=finish_reason, transcript=transcript
        )
    except AnalysisInvalidOutput as exc:
        raise StageFailure(exc.code) from None


def _total_usage(usages: list[LlmUsage]) -> LlmUsage:
    """A call's LLM usage over its analysis requests (one per part); the last request's id."""
    return LlmUsage(
        model=usages[-1].model,
        prompt_tokens=sum(usage.prompt_tokens for usage in usages),
        completion_tokens=sum(usage.completion_tokens for usage in usages),
        cached_tokens=sum(usage.cached_tokens for usage in usages),
        estimated_cost_usd=sum(usage.estimated_cost_usd for usage in usages),
        request_id=usages[-1].request_id,
    )


def reuse_stored_analysis(ports: CallPorts, work: CallWork) -> dict[str, MetadataValue] | None:
    """A retried call whose analysis this cycle stored already: no LLM request; its action items and
    sentiment are written again from the stored analysis (the earlier try may have died before them).
    None when the stored analysis cannot be read (the stage then runs again)."""
    stored = ports.read_artifact(work, ArtifactType.ANALYSIS_JSON)
    if stored is None:
        return None
    transcript = _stored_transcript(ports, work)
    if not ports.move(work, CallStatus.TRANSCRIBING, CallStatus.ANALYZING):
        raise StageFailure("superseded")
    try:
        analysis = validate_analysis_output(
            content=stored.decode(), refusal=None, finish_reason="stop", transcript=transcript
        )
    except (AnalysisInvalidOutput, UnicodeDecodeError):
        return None
    work.log.skipped(Stage.ANALYZED, provider="llm", reason="stored_output_reused")
    return {"reused": True, "action_items": _save_action_items(ports, work, analysis, transcript)}


def _save_action_items(
    ports: CallPorts, work: CallWork, analysis: Analysis, transcript: NormalizedTranscript
) -> int | None:
    """ACTION_ITEMS_EXTRACTED (soft): the call's AI action items and sentiment replaced; how many items,
    or None when that failed (the transcript and the analysis still ship)."""
    call = work.call
    with work.log.stage(Stage.ACTION_ITEMS_EXTRACTED) as items_stage:
        try:
            drafts = build_action_item_drafts(analysis, transcript, recorded_at=call.recorded_at)
            ports.db.replace_ai_outputs(
                call.id,
                call.user_id,
                recorded_at=call.recorded_at,
                action_items=drafts,
                sentiment=build_sentiment_summary(analysis),
            )
        except Exception:
            items_stage.soft_failure("action_items_failed")
            return None
    return len(drafts)


def _stored_transcript(ports: CallPorts, work: CallWork) -> NormalizedTranscript:
    raw = ports.read_artifact(work, ArtifactType.NORMALIZED_TRANSCRIPT_JSON)
    if raw is None:
        raise StageFailure(ErrorCode.ARTIFACT_MISSING)
    try:
        return NormalizedTranscript.parse(raw)
    except TranscriptFormatError:
        raise StageFailure(ErrorCode.NORMALIZATION_FAILED) from None
