"""Long calls, made explicit: an analysis over the model's context is made in parts and says so; a call
over the diarization guard is transcribed and analysed without diarization and says why; audio over a
provider's upload limit is refused before it is sent (transcription: the call fails; diarization: soft)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from scryon_dagster.adapters.db.cost_queries import CostQueries
from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.object_store import ObjectStore
from scryon_dagster.domain.analysis import AnalysisPrompt, build_analysis_prompt, parse_analysis
from scryon_dagster.domain.analysis.chunking import PARTS_QUALITY_WARNING
from scryon_dagster.domain.analysis.cost import estimate_analysis_request_tokens
from scryon_dagster.domain.calls import ArtifactType, CallStatus, ErrorCode
from scryon_dagster.domain.policy import is_transient
from scryon_dagster.domain.provider_spend import SpendStage
from scryon_dagster.domain.transcript.models import NormalizedTranscript
from scryon_dagster.pipeline.outcomes import PipelineAsset
from scryon_dagster.pipeline.runner import CallPipeline, build_call_pipeline
from scryon_dagster.settings import Settings
from scryon_dagster.simulator import SimulatorServer
from tests.fixtures.pipeline import Enqueue, sample_by_slug
from tests.pipeline.test_call_pipeline import provider_requests, run, status


def pipeline_with(settings: Settings, db: CallDatabase, store: ObjectStore, **changes: object) -> CallPipeline:
    # model_copy skips validation: a prompt budget below the production floor makes a short sample "long"
    return build_call_pipeline(settings.model_copy(update=changes), db, store)


def fixed_prompt_tokens() -> int:
    """The estimated tokens of an analysis request without any transcript line (system, schema, header)."""
    empty = NormalizedTranscript(call_id="0" * 36, language="en", duration_seconds=3600.0)
    prompt: AnalysisPrompt = build_analysis_prompt(
        empty, call_id="0" * 36, recorded_at=None, duration_seconds=3600.0, title="x" * 80, part=(99, 99)
    )
    return estimate_analysis_request_tokens(prompt)


@pytest.fixture
def small_context_pipeline(settings: Settings, db: CallDatabase, store: ObjectStore) -> Iterator[CallPipeline]:
    built = pipeline_with(settings, db, store, llm_max_prompt_tokens=fixed_prompt_tokens() + 120)
    yield built
    built.close()


def test_a_transcript_over_the_prompt_budget_is_analysed_in_parts_and_says_so(
    small_context_pipeline: CallPipeline,
    db: CallDatabase,
    store: ObjectStore,
    simulator: SimulatorServer,
    enqueue_sample: Enqueue,
) -> None:
    call_id = enqueue_sample("self_introduction")

    outcome = run(small_context_pipeline, [call_id])[call_id]

    assert outcome.succeeded, outcome.error_code
    parts = outcome.materialized[PipelineAsset.ANALYSIS]["analysis_parts"]
    assert isinstance(parts, int)
    assert parts >= 2
    assert provider_requests(simulator)["llm"] == parts  # one request per part, nothing dropped
    assert status(db, call_id) == (CallStatus.COMPLETED, None)
    artifacts = db.get_artifacts(call_id)
    analysis = parse_analysis(store.get_bytes(artifacts[ArtifactType.ANALYSIS_JSON].storage_key))
    assert PARTS_QUALITY_WARNING.format(count=parts) in analysis.quality_warnings
    assert len(analysis.executive_summary_bullets) >= parts  # every part's summary sections are kept
    usage = db.get_llm_usage(call_id)
    assert usage is not None
    assert usage.prompt_tokens > 0


def test_a_call_over_the_diarization_guard_is_transcribed_and_analysed_without_diarization(
    settings: Settings, db: CallDatabase, store: ObjectStore, simulator: SimulatorServer, enqueue_sample: Enqueue
) -> None:
    sample = sample_by_slug("self_introduction")
    guard_minutes = sample.duration_seconds / 60 / 2  # the call is twice the guard
    pipeline = pipeline_with(settings, db, store, scryon_diarization_max_audio_minutes=guard_minutes)
    call_id = enqueue_sample("self_introduction")
    try:
        outcome = run(pipeline, [call_id])[call_id]
    finally:
        pipeline.close()

    assert outcome.succeeded, outcome.error_code
    assert PipelineAsset.DIARIZATION not in outcome.materialized
    assert {PipelineAsset.RAW_TRANSCRIPT, PipelineAsset.ANALYSIS} <= set(outcome.materialized)
    assert status(db, call_id) == (CallStatus.COMPLETED, None)
    skipped = [e for e in db.list_events(call_id) if e.stage == "DIARIZED"]
    assert [(e.status, e.error_message) for e in skipped] == [("SKIPPED", "audio_too_long")]
    assert "pyannote" not in provider_requests(simulator)
    assert ArtifactType.ANALYSIS_JSON in db.get_artifacts(call_id)


def test_audio_over_lemonfox_upload_limit_fails_the_call_before_paying(
    pipeline: CallPipeline, db: CallDatabase, simulator: SimulatorServer, enqueue_sample: Enqueue
) -> None:
    pipeline.lemonfox.max_upload_bytes = 1000
    call_id = enqueue_sample("self_introduction")

    outcome = run(pipeline, [call_id])[call_id]

    assert outcome.error_code == ErrorCode.AUDIO_TOO_LARGE_FOR_PROVIDER
    assert not is_transient(ErrorCode.AUDIO_TOO_LARGE_FOR_PROVIDER)  # no retry can make it fit
    assert status(db, call_id) == (CallStatus.FAILED, ErrorCode.AUDIO_TOO_LARGE_FOR_PROVIDER)
    assert "lemonfox" not in provider_requests(simulator)
    # no transcription paid (diarization, which runs beside it, may have been)
    assert SpendStage.TRANSCRIPTION not in {entry.stage for entry in CostQueries(db).call_cost(call_id).entries}


def test_audio_over_pyannote_upload_limit_keeps_lemonfox_speaker_labels(
    pipeline: CallPipeline, db: CallDatabase, enqueue_sample: Enqueue
) -> None:
    assert pipeline.pyannote is not None
    pipeline.pyannote.max_upload_bytes = 1000
    call_id = enqueue_sample("self_introduction")

    outcome = run(pipeline, [call_id])[call_id]

    assert outcome.succeeded, outcome.error_code
    assert PipelineAsset.DIARIZATION not in outcome.materialized
    diarized = [(e.status, e.error_code) for e in db.list_events(call_id) if e.stage == "DIARIZED"]
    assert ("FAILED", ErrorCode.AUDIO_TOO_LARGE_FOR_PROVIDER) in diarized


def test_a_preprocessed_wav_over_lemonfox_upload_limit_is_replaced_by_the_recording_as_uploaded(
    settings: Settings, db: CallDatabase, store: ObjectStore, enqueue_sample: Enqueue
) -> None:
    """A long call's 16-kHz WAV outgrows the limit where its compressed recording does not; here the
    limit is made tiny for the WAV (the adapter's own stays large, standing for the smaller recording)."""
    long_call = pipeline_with(settings, db, store, lemonfox_max_upload_bytes=1000)
    long_call.lemonfox.max_upload_bytes = 50 * 1024 * 1024
    call_id = enqueue_sample("no_names")
    try:
        outcome = run(long_call, [call_id])[call_id]
    finally:
        long_call.close()

    assert outcome.succeeded, outcome
    assert outcome.materialized[PipelineAsset.RAW_TRANSCRIPT]["preprocessed_audio"] is False
    fallbacks = [e for e in db.list_events(call_id) if (e.stage, e.status) == ("AUDIO_PREPROCESSED", "COMPLETED")]
    assert ErrorCode.AUDIO_TOO_LARGE_FOR_PROVIDER in {e.error_code for e in fallbacks}
