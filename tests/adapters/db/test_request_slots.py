"""The fleet-wide request budget on a real PostgreSQL: pacers in different processes share one row."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.db.request_slots import SharedRequestPacer


def test_two_processes_draw_from_one_budget(db: CallDatabase, database_url: str) -> None:
    # a second CallDatabase stands in for another run worker's process
    with CallDatabase(database_url).open() as other:
        first = SharedRequestPacer(db, "pyannote", per_minute=60)
        second = SharedRequestPacer(other, "pyannote", per_minute=60)

        waits = [pacer.reserve(max_wait_seconds=30) for pacer in (first, second, first, second)]

    assert all(wait is not None for wait in waits)
    # about one slot per second across both (61 s / 60): 0, 1, 2, 3 s from now, less the time the statements took
    for index, wait in enumerate(waits):
        assert wait == pytest.approx(index, abs=0.2)


def test_concurrent_reservations_never_share_a_slot(db: CallDatabase) -> None:
    pacer = SharedRequestPacer(db, "pyannote", per_minute=60)  # about one slot per second
    slots: list[float] = []
    lock = threading.Lock()

    def reserve() -> None:
        for _ in range(2):
            wait = pacer.reserve(max_wait_seconds=60)
            assert wait is not None
            with lock:
                slots.append(time.monotonic() + wait)

    threads = [threading.Thread(target=reserve) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # 8 distinct slots about a second apart (give or take how long each statement took to return)
    ordered = sorted(slots)
    assert len(ordered) == 8
    assert all(0.5 < later - earlier < 1.5 for earlier, later in itertools.pairwise(ordered))


def test_a_slot_beyond_the_deadline_is_not_taken(db: CallDatabase) -> None:
    pacer = SharedRequestPacer(db, "pyannote", per_minute=6)  # a slot about every 10 s
    assert pacer.reserve(max_wait_seconds=1) == pytest.approx(0, abs=0.2)

    assert pacer.reserve(max_wait_seconds=1) is None  # the next slot is ~10 s away
    assert pacer.reserve(max_wait_seconds=30) == pytest.approx(10, abs=0.5)  # so it is still free


def test_providers_have_separate_budgets(db: CallDatabase) -> None:
    SharedRequestPacer(db, "pyannote", per_minute=1).reserve(max_wait_seconds=0)

    assert SharedRequestPacer(db, "other", per_minute=1).reserve(max_wait_seconds=0) == pytest.approx(0, abs=0.2)


def test_a_budget_below_one_request_per_minute_is_refused(db: CallDatabase) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        SharedRequestPacer(db, "pyannote", per_minute=0)
