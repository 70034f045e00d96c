"""A run worker's memory budget: calls wait for room rather than holding more together."""

from __future__ import annotations

import threading
import time

import pytest

from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.object_store import ObjectStore
from scryon_dagster.pipeline.memory import RUN_WORKER_BASE_MB, MemoryBudget, call_footprint
from scryon_dagster.pipeline.runner import build_call_pipeline
from scryon_dagster.settings import load_settings
from tests.fixtures.pipeline import Enqueue
from tests.pipeline.test_call_pipeline import run


def test_holders_stay_within_the_budget_and_one_oversized_holder_goes_alone() -> None:
    budget = MemoryBudget(100)
    inside: list[int] = []
    most = [0]
    lock = threading.Lock()

    def hold(size: int) -> None:
        with budget.hold(size):
            with lock:
                inside.append(size)
                most[0] = max(most[0], sum(inside))
            time.sleep(0.05)
            with lock:
                inside.remove(size)

    threads = [threading.Thread(target=hold, args=(size,)) for size in (60, 60, 30, 250, 40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert not any(thread.is_alive() for thread in threads)
    assert most[0] <= 250  # the oversized holder went in alone; the others never passed 100 together
    assert budget.peak == 250


def test_a_budget_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        MemoryBudget(0)


def test_a_calls_footprint_grows_with_its_transcript_not_with_its_audio() -> None:
    assert call_footprint(3600.0) > call_footprint(60.0) > call_footprint(None) == call_footprint(0.0) > 0
    # an hour's transcript and analysis, not its 115 MB of decoded audio (that stays in files)
    assert call_footprint(3600.0) < 16 * 1024 * 1024


def test_a_batch_over_the_budget_completes_with_its_audio_held_within_it(
    monkeypatch: pytest.MonkeyPatch,
    pipeline_env: dict[str, str],
    db: CallDatabase,
    store: ObjectStore,
    enqueue_sample: Enqueue,
) -> None:
    call_ids = [enqueue_sample(slug) for slug in ("no_names", "greeting_by_name", "self_introduction", "voicemail")]
    calls = db.get_calls(call_ids)
    footprints = [call_footprint(calls[call_id].duration_seconds) for call_id in call_ids]
    # room for two sample calls at a time beside what the worker holds before any call
    monkeypatch.setenv("SCRYON_RUN_WORKER_MEMORY_MB", str(RUN_WORKER_BASE_MB + 9))
    pipeline = build_call_pipeline(load_settings(), db, store)
    try:
        outcomes = run(pipeline, call_ids)
    finally:
        pipeline.close()

    assert all(outcome.succeeded for outcome in outcomes.values())
    assert pipeline.memory.peak <= max(pipeline.memory.capacity, max(footprints))
    assert sum(footprints) > pipeline.memory.capacity  # the budget did hold calls back
