"""provider_spend as an operator reads it: per UTC day and provider, the calls, billed audio hours and
estimated USD summed from the cost ledger, within the configured window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import pytest

from scryon_dagster.adapters.db.cost_queries import CostQueries
from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.object_store import ObjectStore
from scryon_dagster.definitions import defs
from scryon_dagster.domain.calls import CallStatus
from scryon_dagster.domain.provider_spend import (
    AudioPrices,
    SpendStage,
    diarization_charge,
    llm_charge,
    transcription_charge,
)
from tests.dagster.test_prune_history import finished_call

PRICES = AudioPrices(lemonfox_per_audio_hour_usd=0.17, pyannote_per_audio_hour_usd=0.12, pyannote_min_billed_seconds=20)


def materialize(instance: dg.DagsterInstance, days: int) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def("provider_spend_job").execute_in_process(
        instance=instance, run_config={"ops": {"provider_spend": {"config": {"days": days}}}}, raise_on_error=False
    )


def backdate_everything(db: CallDatabase, days: int) -> None:
    """Move the rows written so far (the ones of today) ``days`` back."""
    db.query(
        "UPDATE call_provider_costs SET created_at = created_at - make_interval(days => %s) "
        "WHERE created_at > now() - interval '1 day'",
        (days,),
    )


def test_provider_spend_sums_the_ledger_per_day_and_provider(
    pipeline_env: dict[str, str], db: CallDatabase, store: ObjectStore, instance: dg.DagsterInstance
) -> None:
    first, second = (finished_call(db, store, CallStatus.COMPLETED) for _ in range(2))
    ledger = CostQueries(db)
    ledger.record(second, None, transcription_charge(3600, PRICES))
    backdate_everything(db, 40)  # outside the window
    ledger.record(first, None, transcription_charge(1800, PRICES))
    backdate_everything(db, 2)  # a reprocess two days ago
    ledger.record(first, None, transcription_charge(1800, PRICES))
    ledger.record(first, None, diarization_charge(1800, PRICES, voice_identification=False))
    ledger.record(
        first,
        None,
        llm_charge(SpendStage.ANALYSIS, prompt_tokens=1000, completion_tokens=500, estimated_cost_usd=0.00045),
    )
    ledger.record(second, None, transcription_charge(3600, PRICES))

    result = materialize(instance, days=30)

    assert result.success
    (materialization,) = result.asset_materializations_for_node("provider_spend")
    metadata: dict[str, Any] = {key: value.value for key, value in materialization.metadata.items()}
    today = datetime.now(UTC).date()
    two_days_ago = (today - timedelta(days=2)).isoformat()
    rows = [record.data for record in metadata["daily_spend"].records]
    assert rows == [
        {"day": two_days_ago, "provider": "lemonfox", "calls": 1, "requests": 1, "audio_hours": 0.5,
         "estimated_usd": 0.085},
        {"day": today.isoformat(), "provider": "lemonfox", "calls": 2, "requests": 2, "audio_hours": 1.5,
         "estimated_usd": 0.255},
        {"day": today.isoformat(), "provider": "llm", "calls": 1, "requests": 1, "audio_hours": 0.0,
         "estimated_usd": 0.00045},
        {"day": today.isoformat(), "provider": "pyannote", "calls": 1, "requests": 1, "audio_hours": 0.5,
         "estimated_usd": 0.06},
    ]  # fmt: skip
    assert metadata["total_estimated_usd"] == pytest.approx(0.085 + 0.255 + 0.00045 + 0.06)
    assert metadata["days"] == 30

    only_today = materialize(instance, days=1)
    (materialization,) = only_today.asset_materializations_for_node("provider_spend")
    assert materialization.metadata["total_estimated_usd"].value == pytest.approx(0.255 + 0.00045 + 0.06)


def test_provider_spend_refuses_an_empty_window(pipeline_env: dict[str, str], instance: dg.DagsterInstance) -> None:
    assert not materialize(instance, days=0).success


def test_provider_spend_runs_every_night() -> None:
    schedule = defs.resolve_schedule_def("provider_spend_schedule")
    assert (schedule.job_name, schedule.execution_timezone) == ("provider_spend_job", "UTC")
    assert schedule.default_status is dg.DefaultScheduleStatus.RUNNING
