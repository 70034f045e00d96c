"""The per-call pipeline end to end on real parts, one failure policy row at a time."""

from __future__ import annotations

import stat
import tempfile
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from scryon_dagster.adapters.audio import AudioPreprocessor, PreprocessedAudio
from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.object_store import ObjectStore
from scryon_dagster.domain.analysis import parse_analysis
from scryon_dagster.domain.calls import ArtifactType, CallStatus, ErrorCode
from scryon_dagster.domain.transcript import NORMALIZATION_VERSION
from scryon_dagster.domain.transcript.models import NormalizedTranscript
from scryon_dagster.pipeline.outcomes import CallOutcome, PipelineAsset, StageSelection
from scryon_dagster.pipeline.runner import CallPipeline
from scryon_dagster.simulator import SimulatorServer
from tests.fixtures.pipeline import Enqueue, sample_by_slug

EVERYTHING = StageSelection.everything()
REDERIVE = StageSelection.of(["normalized_transcript", "analysis"])


def run(
    pipeline: CallPipeline, call_ids: list[UUID], selection: StageSelection = EVERYTHING
) -> dict[UUID, CallOutcome]:
    return {o.call_id: o for o in pipeline.run_batch(call_ids, selection, batch_id=None, run_id=str(uuid4()))}


def provider_requests(simulator: SimulatorServer) -> dict[str, int]:
    return dict(simulator.admin.stats()["requests_total"])


def status(db: CallDatabase, call_id: UUID) -> tuple[CallStatus, str | None]:
    call = db.get_call(call_id)
    assert call is not None
    return call.status, call.error_reason


def test_a_call_goes_through_every_stage(
    pipeline: CallPipeline, db: CallDatabase, store: ObjectStore, enqueue_sample: Enqueue
) -> None:
    call_id = enqueue_sample("self_introduction")

    outcome = run(pipeline, [call_id])[call_id]

    assert outcome.succeeded, outcome.error_code
    assert set(outcome.materialized) == set(PipelineAsset)
    assert status(db, call_id) == (CallStatus.COMPLETED, None)
    artifacts = db.get_artifacts(call_id)
    assert set(artifacts) == set(ArtifactType)
    normalized = NormalizedTranscript.parse(
        store.get_bytes(artifacts[ArtifactType.NORMALIZED_TRANSCRIPT_JSON].storage_key)
    )
    assert normalized.pipeline.normalization_version == NORMALIZATION_VERSION
    assert normalized.pipeline.diarization_provider == "pyannote"
    assert artifacts[ArtifactType.NORMALIZED_TRANSCRIPT_JSON].schema_version == NORMALIZATION_VERSION
    analysis = parse_analysis(store.get_bytes(artifacts[ArtifactType.ANALYSIS_JSON].storage_key))
    assert len(db.list_action_items(call_id)) == len(analysis.action_items)
    assert db.get_sentiment_summary(call_id) is not None
    usage = db.get_llm_usage(call_id)
    assert usage is not None
    assert usage.prompt_tokens > 0
    stages = {(e.stage, e.status) for e in db.list_events(call_id)}
    for stage in ("AUDIO_PREPROCESSED", "DIARIZED", "TRANSCRIBED", "TRANSCRIPT_NORMALIZED", "ANALYZED"):
        assert (stage, "STARTED") in stages
        assert (stage, "COMPLETED") in stages


def test_a_batch_runs_every_call_and_isolates_a_failing_one(
    pipeline: CallPipeline, db: CallDatabase, simulator: SimulatorServer, enqueue_sample: Enqueue
) -> None:
    good = [enqueue_sample("greeting_by_name"), enqueue_sample("no_names")]
    bad = enqueue_sample("voicemail")
    simulator.admin.set_fault(
        "lemonfox", "http_400", times=-1, match_audio_seconds=sample_by_slug("voicemail").duration_seconds
    )

    outcomes = run(pipeline, [*good, bad])

    assert outcomes[bad].error_code == ErrorCode.TRANSCRIPTION_4XX
    assert status(db, bad) == (CallStatus.FAILED, "transcription_4xx")
    for call_id in good:
        assert outcomes[call_id].succeeded
        assert status(db, call_id) == (CallStatus.COMPLETED, None)


def test_a_calls_audio_lives_in_private_files_removed_when_it_completes_or_fails(
    pipeline: CallPipeline,
    db: CallDatabase,
    simulator: SimulatorServer,
    enqueue_sample: Enqueue,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # what TMPDIR sets
    completed, failed = enqueue_sample("greeting_by_name"), enqueue_sample("voicemail")
    simulator.admin.set_fault(
        "lemonfox", "http_400", times=-1, match_audio_seconds=sample_by_slug("voicemail").duration_seconds
    )
    modes: list[tuple[int, dict[str, int]]] = []
    preprocess = pipeline.audio.preprocess

    def inspecting_preprocess(audio: Path, directory: Path, *, diarization_variant: bool) -> PreprocessedAudio:
        prepared = preprocess(audio, directory, diarization_variant=diarization_variant)
        files = {path.name: stat.S_IMODE(path.stat().st_mode) for path in directory.iterdir()}
        modes.append((stat.S_IMODE(directory.stat().st_mode), files))
        return prepared

    monkeypatch.setattr(pipeline.audio, "preprocess", inspecting_preprocess)

    outcomes = run(pipeline, [completed, failed])

    assert outcomes[completed].succeeded
    assert outcomes[failed].error_code == ErrorCode.TRANSCRIPTION_4XX
    assert len(modes) == 2
    for directory_mode, files in modes:
        assert directory_mode == 0o700
        assert set(files) == {"original", "transcription.wav"}
        assert set(files.values()) == {0o600}
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fault", ["http_500", "job_failed", "malformed_json"])
def test_diarization_trouble_falls_back_to_lemonfox_speaker_labels(
    pipeline: CallPipeline,
    db: CallDatabase,
    store: ObjectStore,
    simulator: SimulatorServer,
    enqueue_sample: Enqueue,
    fault: str,
) -> None:
    call_id = enqueue_sample("greeting_by_name")
    simulator.admin.set_fault("pyannote", fault, times=-1)

    outcome = run(pipeline, [call_id])[call_id]

    assert outcome.succeeded
    assert PipelineAsset.DIARIZATION not in outcome.materialized
    assert status(db, call_id) == (CallStatus.COMPLETED, None)
    artifacts = db.get_artifacts(call_id)
    assert ArtifactType.DIARIZATION_JSON not in artifacts
    normalized = NormalizedTranscript.parse(
        store.get_bytes(artifacts[ArtifactType.NORMALIZED_TRANSCRIPT_JSON].storage_key)
    )
    assert normalized.pipeline.diarization_provider == "lemonfox"  # its speaker_labels stood in
    events = db.list_events(call_id)
    assert ("DIARIZED", "FAILED") in {(e.stage, e.status) for e in events}
    # the reference's marker of the fallback, with the cause
    (fallback,) = [e for e in events if e.stage == "PYANNOTE_FAILED_FALLBACK"]
    assert (fallback.status, fallback.provider) == ("COMPLETED", "pyannote")
    assert fallback.error_code == next(e.error_code for e in events if (e.stage, e.status) == ("DIARIZED", "FAILED"))


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        ("refusal", "analysis_invalid_output"),
        ("finish_length", "analysis_invalid_output"),
        ("http_400", "analysis_4xx"),
    ],
)
def test_analysis_failures_fail_the_call_after_keeping_the_transcript(
    pipeline: CallPipeline, db: CallDatabase, simulator: SimulatorServer, enqueue_sample: Enqueue, fault: str, code: str
) -> None:
    call_id = enqueue_sample("no_names")
    simulator.admin.set_fault("llm", fault, times=-1)

    outcome = run(pipeline, [call_id])[call_id]

    assert outcome.error_code == code
    assert status(db, call_id) == (CallStatus.FAILED, code)
    artifacts = db.get_artifacts(call_id)
    assert ArtifactType.NORMALIZED_TRANSCRIPT_JSON in artifacts
    assert ArtifactType.ANALYSIS_JSON not in artifacts
    assert db.list_action_items(call_id) == []


def test_missing_temp_audio_fails_with_audio_missing(
    pipeline: CallPipeline, db: CallDatabase, store: ObjectStore, enqueue_sample: Enqueue
) -> None:
    call_id = enqueue_sample("no_names")
    store.delete(db.get_artifacts(call_id)[ArtifactType.TEMP_AUDIO].storage_key)

    outcome = run(pipeline, [call_id])[call_id]

    assert outcome.error_code == ErrorCode.AUDIO_MISSING
    assert status(db, call_id) == (CallStatus.FAILED, "audio_missing")


def test_rederiving_uses_stored_raw_outputs_without_any_provider_audio_call(
    pipeline: CallPipeline, db: CallDatabase, store: ObjectStore, simulator: SimulatorServer, enqueue_sample: Enqueue
) -> None:
    call_id = enqueue_sample("greeting_by_name")
    run(pipeline, [call_id])
    store.delete(db.get_artifacts(call_id)[ArtifactType.TEMP_AUDIO].storage_key)  # audio gone: must not matter
    simulator.admin.reset_stats()

    outcome = run(pipeline, [call_id], REDERIVE)[call_id]

    assert outcome.succeeded
    assert set(outcome.materialized) == {PipelineAsset.NORMALIZED_TRANSCRIPT, PipelineAsset.ANALYSIS}
    assert status(db, call_id) == (CallStatus.COMPLETED, None)
    assert provider_requests(simulator) == {"llm": 1}


def test_analysis_switched_off_completes_with_transcript_only(
    pipeline: CallPipeline, db: CallDatabase, enqueue_sample: Enqueue
) -> None:
    db.set_feature_flag("SCRYON_ANALYSIS_ENABLED", False, updated_by="test")
    call_id = enqueue_sample("no_names")

    outcome = run(pipeline, [call_id])[call_id]

    assert outcome.succeeded
    assert PipelineAsset.ANALYSIS not in outcome.materialized
    assert status(db, call_id) == (CallStatus.COMPLETED, None)
    assert ArtifactType.ANALYSIS_JSON not in db.get_artifacts(call_id)


def test_pyannote_switched_off_by_flag_skips_diarization(
    pipeline: CallPipeline,
    db: CallDatabase,
    simulator: SimulatorServer,
    enqueue_sample: Enqueue,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db.set_feature_flag("PYANNOTE_ENABLED", False, updated_by="test")
    call_id = enqueue_sample("no_names")
    variants_asked: list[bool] = []
    preprocess = pipeline.audio.preprocess

    def recording_preprocess(audio: Path, directory: Path, *, diarization_variant: bool) -> PreprocessedAudio:
        variants_asked.append(diarization_variant)
        return preprocess(audio, directory, diarization_variant=diarization_variant)

    monkeypatch.setattr(pipeline.audio, "preprocess", recording_preprocess)

    outcome = run(pipeline, [call_id])[call_id]

    assert outcome.succeeded
    assert variants_asked == [False]  # no loudnorm pass for a variant nobody uses
    assert ("DIARIZED", "SKIPPED") in {(e.stage, e.status) for e in db.list_events(call_id)}
    assert "pyannote" not in provider_requests(simulator)


def test_a_call_held_by_another_run_is_left_alone(
    pipeline: CallPipeline, db: CallDatabase, enqueue_sample: Enqueue
) -> None:
    call_id = enqueue_sample("no_names")
    db.begin_processing([call_id], batch_id=uuid4())  # another run holds it

    outcome = run(pipeline, [call_id])[call_id]

    assert outcome.error_code == "call_busy"
    assert status(db, call_id) == (CallStatus.TRANSCRIBING, None)
    assert run(pipeline, [uuid4()]) != {}


def test_preprocessing_switched_off_sends_the_upload_itself(
    pipeline: CallPipeline, db: CallDatabase, enqueue_sample: Enqueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline.settings, "scryon_audio_preprocessing_enabled", False)
    call_id = enqueue_sample("no_names")

    outcome = run(pipeline, [call_id])[call_id]

    assert outcome.succeeded
    assert outcome.materialized[PipelineAsset.RAW_TRANSCRIPT]["preprocessed_audio"] is False
    assert ("AUDIO_PREPROCESSED", "SKIPPED") in {(e.stage, e.status) for e in db.list_events(call_id)}


def test_failed_preprocessing_is_soft_the_call_goes_on_with_the_original_audio(
    pipeline: CallPipeline, db: CallDatabase, enqueue_sample: Enqueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline, "audio", AudioPreprocessor(None))  # no ffmpeg on this machine
    call_id = enqueue_sample("no_names")

    outcome = run(pipeline, [call_id])[call_id]

    assert outcome.succeeded
    assert outcome.materialized[PipelineAsset.RAW_TRANSCRIPT]["preprocessed_audio"] is False
    preprocessing = [e for e in db.list_events(call_id) if e.stage == "AUDIO_PREPROCESSED"]
    assert [(e.status, e.error_code) for e in preprocessing] == [
        ("STARTED", None),
        ("FAILED", "audio_preprocessing_failed"),
    ]
