"""Long calls, made explicit: an analysis over the model's context is made in parts and says so; a call
over the diarization guard is transcribed and analysed without diarization and says why; audio over a
provider's upload limit is refused before it is sent (transcription: the call fails; diarization: soft)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import imageio_ffmpeg
import pytest

from scryon_dagster.adapters.db.cost_queries import CostQueries
from scryon_dagster.adapters.db.records import NewCall
from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.object_store import ObjectStore
from scryon_dagster.domain.analysis import AnalysisPrompt, build_analysis_prompt, parse_analysis
from scryon_dagster.domain.analysis.chunking import PARTS_QUALITY_WARNING
from scryon_dagster.domain.analysis.cost import estimate_analysis_request_tokens
from scryon_dagster.domain.calls import ArtifactType, CallStatus, ErrorCode
from scryon_dagster.domain.policy import is_transient
from scryon_dagster.domain.transcript.models import NormalizedTranscript
from scryon_dagster.pipeline.intake import enqueue_call
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


def test_audio_over_lemonfox_upload_limit_fails_the_call_before_any_provider_is_paid(
    settings: Settings, db: CallDatabase, store: ObjectStore, simulator: SimulatorServer, enqueue_sample: Enqueue
) -> None:
    """Neither the preprocessed WAV nor the recording as uploaded fits: diarization is not started either."""
    oversized = pipeline_with(settings, db, store, lemonfox_max_upload_bytes=1000)
    call_id = enqueue_sample("self_introduction")
    try:
        outcome = run(oversized, [call_id])[call_id]
    finally:
        oversized.close()

    assert outcome.error_code == ErrorCode.AUDIO_TOO_LARGE_FOR_PROVIDER
    assert not is_transient(ErrorCode.AUDIO_TOO_LARGE_FOR_PROVIDER)  # no retry can make it fit
    assert status(db, call_id) == (CallStatus.FAILED, ErrorCode.AUDIO_TOO_LARGE_FOR_PROVIDER)
    assert provider_requests(simulator) == {}
    assert CostQueries(db).call_cost(call_id).entries == []
    transcribed = [(e.status, e.error_code) for e in db.list_events(call_id) if e.stage == "TRANSCRIBED"]
    assert transcribed[-1] == ("FAILED", ErrorCode.AUDIO_TOO_LARGE_FOR_PROVIDER)
    assert not [e for e in db.list_events(call_id) if e.stage == "DIARIZED"]


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
    settings: Settings, db: CallDatabase, store: ObjectStore, sample_audio: dict[str, Path], tmp_path: Path
) -> None:
    """A long call's 16-kHz WAV outgrows the limit where its compressed recording does not; here the limit
    is an AAC recording's own size, a fraction of its WAV's."""
    recording = tmp_path / "call.m4a"
    ffmpeg = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(sample_audio["no_names"])]
    subprocess.run([*ffmpeg, "-c:a", "aac", "-b:a", "32k", str(recording)], check=True)
    with recording.open("rb") as audio:
        call_id = enqueue_call(
            db, store, audio=audio, filename=recording.name, user_reference="user-long", call=NewCall(), max_bytes=10**8
        ).id
    long_call = pipeline_with(settings, db, store, lemonfox_max_upload_bytes=recording.stat().st_size)
    try:
        outcome = run(long_call, [call_id])[call_id]
    finally:
        long_call.close()

    assert outcome.succeeded, outcome
    assert outcome.materialized[PipelineAsset.RAW_TRANSCRIPT]["preprocessed_audio"] is False
    assert PipelineAsset.DIARIZATION in outcome.materialized  # from the preprocessed variant
    fallbacks = [e for e in db.list_events(call_id) if (e.stage, e.status) == ("AUDIO_PREPROCESSED", "COMPLETED")]
    assert ErrorCode.AUDIO_TOO_LARGE_FOR_PROVIDER in {e.error_code for e in fallbacks}
