"""The stale-job sweeper: fails what stopped, spares what is alive or progressing, and only once."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import psycopg
import pytest

from scryon_dagster.adapters.db.callback_queries import CallbackQueries
from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.domain.calls import CallStatus, ErrorCode, EventStatus, Stage
from scryon_dagster.pipeline.maintenance import MaintenanceError, SweepReport, sweep_stale_calls
from tests.maintenance.conftest import Calls, ago

STALE_AFTER = timedelta(minutes=15)


def sweep(
    db: CallDatabase, code: ErrorCode = ErrorCode.STALE_JOB, *, callback_timeout: timedelta | None = None
) -> SweepReport:
    return sweep_stale_calls(
        db, now=datetime.now(UTC), stale_after=STALE_AFTER, error_code=code, callback_timeout=callback_timeout
    )


def running(calls: Calls, db: CallDatabase, *, silent_for: timedelta) -> tuple[UUID, int]:
    """A call a run has taken (TRANSCRIBING), last updated ``silent_for`` ago."""
    call = calls.create()
    (claim,) = db.begin_processing([call.id], batch_id=uuid4())
    calls.rewind(call.id, updated_at=datetime.now(UTC) - silent_for, claimed_at=ago(hours=2))
    return call.id, claim.attempt


def test_a_silent_run_fails_and_a_heartbeating_long_run_is_spared(calls: Calls, db: CallDatabase) -> None:
    silent, _ = running(calls, db, silent_for=timedelta(minutes=20))
    long_call, _ = running(calls, db, silent_for=timedelta(minutes=20))
    db.heartbeat([long_call])  # what the runner's heartbeat thread does every minute
    fresh = calls.create()

    report = sweep(db)

    assert report.failed == [silent]
    assert calls.status(silent) == (CallStatus.FAILED, "stale_job")
    assert calls.status(long_call) == (CallStatus.TRANSCRIBING, None)
    assert calls.status(fresh.id) == (CallStatus.QUEUED, None)
    last_event = db.list_events(silent)[-1]
    assert (last_event.stage, last_event.status, last_event.error_code) == (
        Stage.STATUS,
        EventStatus.FAILED,
        "stale_job",
    )
    events_before = len(db.list_events(silent))
    again = sweep(db)
    assert again.failed == []
    assert len(db.list_events(silent)) == events_before


def test_a_progressing_backlog_is_spared_and_a_stuck_one_fails(calls: Calls, db: CallDatabase) -> None:
    waiting = calls.create()
    calls.rewind(waiting.id, updated_at=ago(minutes=40))
    picked_up = calls.create(status=CallStatus.COMPLETED)
    calls.rewind(picked_up.id, claimed_at=ago(minutes=3))

    report = sweep(db)

    assert (report.failed, report.spared_queued) == ([], 1)
    assert calls.status(waiting.id) == (CallStatus.QUEUED, None)

    calls.rewind(picked_up.id, claimed_at=ago(minutes=16))  # nothing claimed for the whole window
    report = sweep(db, ErrorCode.MANUAL_SWEEP)

    assert (report.failed, report.spared_queued) == ([waiting.id], 0)
    assert calls.status(waiting.id) == (CallStatus.FAILED, "manual_sweep")
    assert calls.status(picked_up.id) == (CallStatus.COMPLETED, None)


def test_a_heartbeat_landing_while_the_sweep_waits_spares_the_call(
    calls: Calls, db: CallDatabase, database_url: str
) -> None:
    call_id, _ = running(calls, db, silent_for=timedelta(minutes=20))
    with psycopg.connect(database_url) as heartbeat:
        # The heartbeat's statement, not yet committed: it holds the row.
        heartbeat.execute("UPDATE call_records SET updated_at = now() WHERE id = %s", (call_id,))
        outcome: list[SweepReport] = []
        sweeper = threading.Thread(target=lambda: outcome.append(sweep(db)))
        sweeper.start()
        _wait_until_blocked_on_a_lock(database_url)
        heartbeat.commit()
    sweeper.join(timeout=30)

    (report,) = outcome
    assert report.failed == []
    assert calls.status(call_id) == (CallStatus.TRANSCRIBING, None)


def _wait_until_blocked_on_a_lock(database_url: str) -> None:
    deadline = time.monotonic() + 20
    with psycopg.connect(database_url, autocommit=True) as observer:
        while time.monotonic() < deadline:
            row = observer.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s",
                ("%WITH moved AS%",),
            ).fetchone()
            if row and row[0]:
                return
            time.sleep(0.02)
    raise AssertionError("the sweep never waited on the heartbeat's row lock")


def test_callback_calls_wait_for_their_own_timeout(calls: Calls, db: CallDatabase) -> None:
    callbacks = CallbackQueries(db)
    overdue, overdue_attempt = running(calls, db, silent_for=timedelta(minutes=40))
    waiting, waiting_attempt = running(calls, db, silent_for=timedelta(minutes=20))
    for call_id, attempt in ((overdue, overdue_attempt), (waiting, waiting_attempt)):
        assert callbacks.await_callback(call_id, attempt=attempt, expires_at=datetime.now(UTC) + timedelta(hours=1))
    calls.rewind(overdue, updated_at=ago(minutes=40), callback_requested_at=ago(minutes=40))
    calls.rewind(waiting, updated_at=ago(minutes=20), callback_requested_at=ago(minutes=20))

    report = sweep(db, callback_timeout=timedelta(minutes=30))

    assert (report.failed, report.callback_timeouts) == ([], [overdue])
    assert calls.status(overdue) == (CallStatus.FAILED, "callback_timeout")
    assert calls.status(waiting) == (CallStatus.TRANSCRIBING, None)  # past stale_after, within its own timeout
    assert sweep(db, callback_timeout=timedelta(minutes=30)).callback_timeouts == []


def test_a_delivered_callback_waits_for_the_pickup_like_a_queued_call(calls: Calls, db: CallDatabase) -> None:
    delivered, _ = running(calls, db, silent_for=timedelta(minutes=20))
    calls.sql("UPDATE call_records SET callback_state = 'RECEIVED' WHERE id = %s", delivered)
    calls.rewind(delivered, updated_at=ago(minutes=20), claim_id=None, claimed_at=None)
    picked_up = calls.create(status=CallStatus.COMPLETED)
    calls.rewind(picked_up.id, claimed_at=ago(minutes=1))

    assert sweep(db).spared_queued == 1
    calls.rewind(picked_up.id, claimed_at=ago(minutes=30))
    assert sweep(db).failed == [delivered]
    assert calls.status(delivered) == (CallStatus.FAILED, "stale_job")


@pytest.mark.parametrize(
    "arguments",
    [
        {"stale_after": timedelta(minutes=-15)},
        {"stale_after": timedelta(0)},
        {"callback_timeout": timedelta(minutes=-1)},
        {"now": datetime.now()},  # naive: which zone?
        {"error_code": ErrorCode.TRANSCRIPTION_4XX},
    ],
)
def test_bad_arguments_are_refused_before_any_change(
    calls: Calls, db: CallDatabase, arguments: dict[str, object]
) -> None:
    stale, _ = running(calls, db, silent_for=timedelta(hours=1))
    call_arguments: dict[str, object] = {
        "now": datetime.now(UTC),
        "stale_after": STALE_AFTER,
        "error_code": ErrorCode.STALE_JOB,
        **arguments,
    }

    with pytest.raises(MaintenanceError):
        sweep_stale_calls(db, **call_arguments)  # type: ignore[arg-type]

    assert calls.status(stale) == (CallStatus.TRANSCRIBING, None)
