"""Why a planned asset has no materialization for a call: the reason codes Dagster shows per partition."""

from __future__ import annotations

from uuid import uuid4

from scryon_dagster.domain.calls import Stage
from scryon_dagster.pipeline.outcomes import CallOutcome, PipelineAsset

EVERYTHING = frozenset(PipelineAsset)


def test_a_succeeded_call_names_the_skip_or_soft_failure_of_each_missing_asset() -> None:
    outcome = CallOutcome(
        uuid4(),
        materialized={PipelineAsset.RAW_TRANSCRIPT: {}, PipelineAsset.NORMALIZED_TRANSCRIPT: {}},
        stage_reasons={Stage.DIARIZED: "diarization_rate_limited", Stage.ANALYZED: "disabled"},
    )

    assert outcome.not_materialized(EVERYTHING) == {
        PipelineAsset.DIARIZATION: "diarization_rate_limited",
        PipelineAsset.ANALYSIS: "disabled",
    }
    assert outcome.not_materialized({PipelineAsset.RAW_TRANSCRIPT}) == {}  # only what the run planned


def test_a_call_failing_in_analysis_records_nothing_and_says_so_per_asset() -> None:
    outcome = CallOutcome(uuid4(), error_code="analysis_4xx", stage_reasons={Stage.ANALYZED: "analysis_4xx"})

    assert outcome.not_materialized(EVERYTHING) == {
        PipelineAsset.DIARIZATION: "call_failed",
        PipelineAsset.RAW_TRANSCRIPT: "call_failed",
        PipelineAsset.NORMALIZED_TRANSCRIPT: "call_failed",
        PipelineAsset.ANALYSIS: "analysis_4xx",
    }


def test_what_derives_from_a_failed_stage_failed_upstream() -> None:
    outcome = CallOutcome(uuid4(), retry_of="transcription_5xx", stage_reasons={Stage.TRANSCRIBED: "transcription_5xx"})

    assert outcome.not_materialized(EVERYTHING) == {
        PipelineAsset.DIARIZATION: "retry_pending",
        PipelineAsset.RAW_TRANSCRIPT: "transcription_5xx",
        PipelineAsset.NORMALIZED_TRANSCRIPT: "upstream_failed",
        PipelineAsset.ANALYSIS: "upstream_failed",
    }


def test_a_call_the_run_left_alone_gives_its_reason_for_every_planned_asset() -> None:
    outcome = CallOutcome(uuid4(), left_alone="completed_not_taken")

    assert set(outcome.not_materialized(EVERYTHING).values()) == {"completed_not_taken"}
