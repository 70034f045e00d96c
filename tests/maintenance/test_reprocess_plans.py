"""Reprocess plans: which calls run, which cannot, and what the providers will charge."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID, uuid4

import pytest

from scryon_dagster.adapters.db.records import LlmUsage
from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.object_store import S3ObjectStore
from scryon_dagster.domain.analysis.cost import estimate_analysis_prompt_tokens
from scryon_dagster.domain.calls import ArtifactType, CallStatus
from scryon_dagster.domain.flags import FeatureFlag
from scryon_dagster.domain.transcript.models import NormalizedTranscript
from scryon_dagster.pipeline.maintenance import (
    ANALYSIS_COMPLETION_TOKENS_ESTIMATE,
    MaintenanceError,
    ReprocessPlan,
    plan_call_reprocess,
    plan_user_reprocess,
)
from scryon_dagster.pipeline.outcomes import StageSelection
from scryon_dagster.settings import Settings, load_settings
from tests.maintenance.conftest import Calls, ago

EVERYTHING = StageSelection.everything()
NORMALIZATION = StageSelection.of(["normalized_transcript", "analysis"])
RAW_AND_NORMALIZED = (ArtifactType.RAW_TRANSCRIPT_JSON, ArtifactType.NORMALIZED_TRANSCRIPT_JSON)
EMPTY = NormalizedTranscript(call_id="")
PROMPT_OVERHEAD = estimate_analysis_prompt_tokens(EMPTY)


@pytest.fixture
def settings() -> Settings:
    # Round prices: 0.001 USD per transcribed second, 0.002 per diarized second, 1 and 2 USD per Mtok.
    return load_settings(
        lemonfox_price_per_audio_hour_usd=3.6,
        pyannote_price_per_audio_hour_usd=7.2,
        pyannote_min_billed_seconds=20,
        pyannote_enabled=True,
        pyannote_api_key="pyannote-test-key",
        llm_price_input_per_mtok_usd=1.0,
        llm_price_output_per_mtok_usd=2.0,
        scryon_analysis_enabled=True,
    )


def llm_usd(prompt_tokens: int, completion_tokens: int) -> float:
    return (prompt_tokens * 1.0 + completion_tokens * 2.0) / 1_000_000


def test_a_full_reprocess_plan_prices_audio_diarization_and_analysis(
    calls: Calls, db: CallDatabase, settings: Settings
) -> None:
    measured = calls.create(status=CallStatus.COMPLETED, duration_seconds=600, artifacts=RAW_AND_NORMALIZED)
    db.record_llm_usage(measured.id, LlmUsage("gpt-4o-mini", 5000, 1000, 0, 0.0, None))
    unknown_length = calls.create(status=CallStatus.COMPLETED, duration_seconds=None)  # 64,000 bytes of m4a
    audio_gone = calls.create(status=CallStatus.COMPLETED, audio=None, artifacts=RAW_AND_NORMALIZED)
    calls.create(status=CallStatus.FAILED)
    too_old = calls.create(status=CallStatus.COMPLETED)
    calls.rewind(too_old.id, created_at=ago(days=8))
    calls.create(user="someone-else", status=CallStatus.COMPLETED)

    plan = plan_user_reprocess(
        db,
        settings,
        user_id=measured.user_id,
        since=ago(days=7),
        statuses=[CallStatus.COMPLETED],
        selection=EVERYTHING,
    )

    assert plan.call_ids == [measured.id, unknown_length.id]
    assert plan.calls_missing_audio == [audio_gone.id]
    assert plan.calls_missing_artifacts == []
    assert plan.audio_seconds == pytest.approx(616)  # 600 recorded + 64,000 bytes at 4,000 bytes/s
    assert plan.transcription_usd == pytest.approx(0.616)
    assert plan.diarization_usd == pytest.approx(1.2 + 0.04)  # the short call is billed pyannote's 20 s minimum
    estimated = llm_usd(PROMPT_OVERHEAD + 16 * 6, ANALYSIS_COMPLETION_TOKENS_ESTIMATE)
    assert plan.llm_usd == pytest.approx(llm_usd(5000, 1000) + estimated)
    assert plan.total_usd == pytest.approx(plan.transcription_usd + plan.diarization_usd + plan.llm_usd)

    db.set_feature_flag(FeatureFlag.PYANNOTE_ENABLED.value, False, updated_by="test")  # the kill switch
    switched_off = plan_user_reprocess(
        db, settings, user_id=measured.user_id, since=ago(days=7), statuses=[CallStatus.COMPLETED], selection=EVERYTHING
    )
    assert switched_off.diarization_usd == 0
    assert switched_off.transcription_usd == pytest.approx(0.616)


def test_a_normalization_plan_spends_nothing_on_audio_and_needs_the_raw_transcript(
    calls: Calls, db: CallDatabase, settings: Settings
) -> None:
    sized = calls.create(status=CallStatus.COMPLETED, duration_seconds=600, audio=None, artifacts=RAW_AND_NORMALIZED)
    transcript_bytes = len(EMPTY.to_json_bytes()) + 16 * 1000  # 1,000 prompt tokens of transcript
    calls.sql(
        "UPDATE call_artifacts SET byte_size = %s WHERE call_id = %s AND artifact_type = 'NORMALIZED_TRANSCRIPT_JSON'",
        transcript_bytes,
        sized.id,
    )
    raw_object_gone = calls.create(status=CallStatus.COMPLETED, artifacts=RAW_AND_NORMALIZED)
    calls.store.delete(calls.key(raw_object_gone, ArtifactType.RAW_TRANSCRIPT_JSON))
    never_transcribed = calls.create(status=CallStatus.FAILED)

    def plan(store: S3ObjectStore | None) -> ReprocessPlan:
        return plan_user_reprocess(
            db,
            settings,
            user_id=sized.user_id,
            since=ago(days=7),
            statuses=["COMPLETED", CallStatus.FAILED],  # launch config gives values
            selection=NORMALIZATION,
            store=store,
        )

    from_rows = plan(None)
    checked = plan(calls.store)

    assert from_rows.call_ids == [sized.id, raw_object_gone.id]
    assert from_rows.calls_missing_artifacts == [never_transcribed.id]
    assert (checked.call_ids, checked.calls_missing_artifacts) == (
        [sized.id],
        [raw_object_gone.id, never_transcribed.id],
    )
    assert checked.calls_missing_audio == []
    assert (checked.audio_seconds, checked.transcription_usd, checked.diarization_usd) == (0, 0, 0)
    assert checked.llm_usd == pytest.approx(llm_usd(PROMPT_OVERHEAD + 1000, ANALYSIS_COMPLETION_TOKENS_ESTIMATE))


@pytest.mark.parametrize(
    ("arguments", "code"),
    [
        ({"user_id": uuid4()}, "unknown_user"),
        ({"statuses": []}, "invalid_argument"),
        ({"statuses": ["COMPLETED", "ARCHIVED"]}, "invalid_argument"),
        ({"statuses": [CallStatus.COMPLETED, CallStatus.TRANSCRIBING]}, "invalid_argument"),
        ({"since": datetime.now() - timedelta(days=7)}, "invalid_argument"),  # naive on purpose
        ({"selection": StageSelection(frozenset())}, "invalid_argument"),
    ],
)
def test_a_user_plan_refuses_bad_arguments(
    calls: Calls, db: CallDatabase, settings: Settings, arguments: dict[str, object], code: str
) -> None:
    call = calls.create(status=CallStatus.COMPLETED)
    valid: dict[str, object] = {
        "user_id": call.user_id,
        "since": ago(days=7),
        "statuses": [CallStatus.COMPLETED],
        "selection": EVERYTHING,
    }

    with pytest.raises(MaintenanceError) as refused:
        plan_user_reprocess(db, settings, **{**valid, **arguments})  # type: ignore[arg-type]

    assert refused.value.code == code


def test_a_single_call_plan_refuses_what_would_fail_and_prices_what_runs(
    calls: Calls, db: CallDatabase, settings: Settings
) -> None:
    swept = calls.create(status=CallStatus.COMPLETED, audio=None, artifacts=RAW_AND_NORMALIZED)
    object_gone = calls.create(status=CallStatus.COMPLETED, artifacts=RAW_AND_NORMALIZED)
    calls.store.delete(calls.key(object_gone, ArtifactType.TEMP_AUDIO))
    busy = calls.create()
    db.begin_processing([busy.id], batch_id=uuid4())

    def refusal(call_id: UUID, selection: StageSelection = EVERYTHING) -> str:
        with pytest.raises(MaintenanceError) as refused:
            plan_call_reprocess(db, calls.store, call_id=call_id, selection=selection, settings=settings)
        return refused.value.code

    assert refusal(uuid4()) == "unknown_call"
    assert refusal(swept.id) == "audio_missing"
    assert refusal(object_gone.id) == "audio_missing"
    assert refusal(busy.id) == "call_busy"
    assert refusal(swept.id, StageSelection(frozenset())) == "invalid_argument"
    assert calls.status(swept.id) == (CallStatus.COMPLETED, None)

    plan = plan_call_reprocess(db, calls.store, call_id=swept.id, selection=NORMALIZATION, settings=settings)
    assert plan.call_ids == [swept.id]
    assert (plan.transcription_usd, plan.diarization_usd) == (0, 0)
    assert plan.llm_usd > 0
    assert calls.status(swept.id) == (CallStatus.COMPLETED, None)
