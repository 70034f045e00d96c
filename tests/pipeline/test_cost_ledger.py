"""The per-call cost ledger: every paid provider request that answered appends a row at the configured
prices, a retry or reprocess that pays again appends again, and a lost row never fails a call."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest

from scryon_dagster.adapters.db.cost_queries import CallCost, CostQueries
from scryon_dagster.adapters.db.repository import CallDatabase, DatabaseUnavailableError
from scryon_dagster.adapters.object_store import ObjectStore
from scryon_dagster.cli import main
from scryon_dagster.domain.calls import CallStatus, ErrorCode
from scryon_dagster.domain.flags import FeatureFlag
from scryon_dagster.domain.provider_spend import SpendProvider, SpendStage
from scryon_dagster.pipeline.callbacks import DeliveryOutcome
from scryon_dagster.pipeline.maintenance import delete_calls
from scryon_dagster.pipeline.runner import CallPipeline
from scryon_dagster.settings import Settings
from scryon_dagster.simulator import SimulatorServer
from tests.api.test_callback_state import PRICES, awaiting_call, deliver
from tests.fixtures.pipeline import Enqueue
from tests.pipeline.test_call_pipeline import run, status
from tests.pipeline.test_fault_tolerance import retrying_pipeline  # noqa: F401 (a fixture)

AUDIO_STAGES = [SpendStage.TRANSCRIPTION, SpendStage.DIARIZATION]


def ledger(db: CallDatabase, call_id: UUID) -> CallCost:
    return CostQueries(db).call_cost(call_id)


def stages(cost: CallCost) -> list[SpendStage]:
    return sorted(entry.stage for entry in cost.entries)


def test_a_processed_call_has_a_row_per_paid_request_at_the_configured_prices(
    pipeline: CallPipeline, db: CallDatabase, settings: Settings, enqueue_sample: Enqueue
) -> None:
    call_id = enqueue_sample("no_names")

    assert run(pipeline, [call_id])[call_id].succeeded

    call = db.get_call(call_id)
    usage = db.get_llm_usage(call_id)
    assert call is not None
    assert call.duration_seconds
    assert usage is not None
    cost = ledger(db, call_id)
    assert stages(cost) == sorted([*AUDIO_STAGES, SpendStage.ANALYSIS])
    rows = {entry.stage: entry for entry in cost.entries}
    transcription, diarization, analysis = (rows[s] for s in (*AUDIO_STAGES, SpendStage.ANALYSIS))
    assert transcription.provider is SpendProvider.LEMONFOX
    assert transcription.audio_seconds == pytest.approx(call.duration_seconds, abs=0.1)
    assert transcription.billed_audio_seconds == transcription.audio_seconds
    assert transcription.estimated_cost_usd == pytest.approx(
        transcription.audio_seconds / 3600 * settings.lemonfox_price_per_audio_hour_usd, abs=1e-6
    )
    assert diarization.provider is SpendProvider.PYANNOTE
    assert diarization.audio_seconds == transcription.audio_seconds
    billed = max(diarization.audio_seconds, settings.pyannote_min_billed_seconds)
    assert diarization.billed_audio_seconds == pytest.approx(billed)
    assert diarization.estimated_cost_usd == pytest.approx(
        billed / 3600 * settings.pyannote_price_per_audio_hour_usd, abs=1e-6
    )
    assert analysis.provider is SpendProvider.LLM
    assert (analysis.prompt_tokens, analysis.completion_tokens) == (usage.prompt_tokens, usage.completion_tokens)
    assert analysis.audio_seconds is None
    assert analysis.estimated_cost_usd == pytest.approx(
        (
            usage.prompt_tokens * settings.llm_price_input_per_mtok_usd
            + usage.completion_tokens * settings.llm_price_output_per_mtok_usd
        )
        / 1_000_000,
        abs=1e-6,
    )
    assert cost.estimated_cost_usd == pytest.approx(
        transcription.estimated_cost_usd + diarization.estimated_cost_usd + analysis.estimated_cost_usd
    )


def test_a_retry_that_pays_the_llm_again_shows_the_extra_spend(
    retrying_pipeline: CallPipeline,  # noqa: F811
    db: CallDatabase,
    simulator: SimulatorServer,
    enqueue_sample: Enqueue,
) -> None:
    call_id = enqueue_sample("no_names")
    simulator.admin.set_fault("llm", "refusal", times=1)  # billed, but no usable analysis: retried

    assert run(retrying_pipeline, [call_id])[call_id].retry_of == ErrorCode.ANALYSIS_INVALID_OUTPUT
    assert run(retrying_pipeline, [call_id])[call_id].succeeded

    cost = ledger(db, call_id)
    # the stored transcript and diarization were reused; the analysis was paid twice
    assert stages(cost) == sorted([*AUDIO_STAGES, SpendStage.ANALYSIS, SpendStage.ANALYSIS])
    assert cost.cost_by_provider()[SpendProvider.LLM] == pytest.approx(
        sum(e.estimated_cost_usd for e in cost.entries if e.stage is SpendStage.ANALYSIS)
    )


def test_a_reprocessed_call_shows_every_provider_paid_again(
    pipeline: CallPipeline, db: CallDatabase, enqueue_sample: Enqueue
) -> None:
    call_id = enqueue_sample("no_names")
    assert run(pipeline, [call_id])[call_id].succeeded
    first = ledger(db, call_id)

    assert run(pipeline, [call_id])[call_id].succeeded  # a hand-launched run reprocesses it

    again = ledger(db, call_id)
    assert stages(again) == sorted(stages(first) * 2)
    assert again.estimated_cost_usd == pytest.approx(2 * first.estimated_cost_usd, rel=0.05)


def test_a_ledger_that_cannot_be_written_never_fails_the_call(
    pipeline: CallPipeline,
    db: CallDatabase,
    enqueue_sample: Enqueue,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def refuse(*args: object) -> None:
        raise DatabaseUnavailableError("a message that must not be logged")

    monkeypatch.setattr(CostQueries, "record", refuse)
    call_id = enqueue_sample("no_names")

    with caplog.at_level(logging.WARNING, logger="scryon_dagster.pipeline.spend"):
        assert run(pipeline, [call_id])[call_id].succeeded

    assert status(db, call_id) == (CallStatus.COMPLETED, None)
    assert ledger(db, call_id).entries == []
    assert sorted(record.getMessage() for record in caplog.records) == [
        f"call {call_id}: {stage} cost not recorded (DatabaseUnavailableError)"
        for stage in ("analysis", "diarization", "transcription")
    ]


def test_a_transcript_delivered_by_callback_is_in_the_ledger_once(
    db: CallDatabase, store: ObjectStore, enqueue_sample: Enqueue
) -> None:
    call_id = enqueue_sample("no_names")
    _, _, query = awaiting_call(db, call_id)

    assert deliver(db, store, query) is DeliveryOutcome.ACCEPTED
    assert deliver(db, store, query) is DeliveryOutcome.IGNORED  # a duplicate delivery is not paid twice

    call = db.get_call(call_id)
    assert call is not None
    assert call.duration_seconds
    (entry,) = ledger(db, call_id).entries
    assert (entry.provider, entry.stage, entry.audio_seconds) == (
        SpendProvider.LEMONFOX,
        SpendStage.TRANSCRIPTION,
        call.duration_seconds,
    )
    assert entry.estimated_cost_usd == pytest.approx(
        call.duration_seconds / 3600 * PRICES.lemonfox_per_audio_hour_usd, abs=1e-6
    )


def test_the_opt_in_naming_pass_is_paid_as_its_own_llm_request(
    pipeline: CallPipeline, db: CallDatabase, enqueue_sample: Enqueue
) -> None:
    db.set_feature_flag(FeatureFlag.LLM_SPEAKER_NAMING_ENABLED, True, updated_by="test")
    call_id = enqueue_sample("no_names")  # the caller is never named: the pass asks the LLM

    assert run(pipeline, [call_id])[call_id].succeeded

    assert ("LLM_SPEAKER_NAMING", "STARTED") in {(e.stage, e.status) for e in db.list_events(call_id)}
    (naming,) = [entry for entry in ledger(db, call_id).entries if entry.stage is SpendStage.SPEAKER_NAMING]
    assert naming.provider is SpendProvider.LLM
    assert naming.prompt_tokens
    assert naming.estimated_cost_usd > 0


def test_call_cost_prints_each_paid_request_and_the_total(
    pipeline: CallPipeline, db: CallDatabase, enqueue_sample: Enqueue, capsys: pytest.CaptureFixture[str]
) -> None:
    call_id = enqueue_sample("no_names")
    assert run(pipeline, [call_id])[call_id].succeeded
    cost = ledger(db, call_id)

    assert main(["call-cost", str(call_id)]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"call {call_id}: 3 paid requests, estimated {cost.estimated_cost_usd:.6f} USD"
    assert [line.split()[1:3] for line in lines[1:]] == [[e.provider, e.stage] for e in cost.entries]
    assert main(["call-cost", str(uuid4())]) == 2


def test_a_deleted_call_leaves_its_spend_in_the_ledger_unlinked(
    pipeline: CallPipeline, db: CallDatabase, store: ObjectStore, enqueue_sample: Enqueue
) -> None:
    call_id = enqueue_sample("no_names")
    assert run(pipeline, [call_id])[call_id].succeeded
    today = datetime.now(UTC).date()
    spent = CostQueries(db).daily_spend(today, today)

    assert delete_calls(db, store, [call_id]).deleted == [call_id]

    assert ledger(db, call_id).entries == []
    after = CostQueries(db).daily_spend(today, today)
    assert [day.estimated_cost_usd for day in after] == [day.estimated_cost_usd for day in spent]
    assert {day.calls for day in after} == {0}  # the money stays spent; the link to the call is gone
