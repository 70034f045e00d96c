"""prune_history as an operator launches it: the partition keys of calls finished (COMPLETED or FAILED)
past the retention are dropped, and upload idempotency keys older than 24 h are forgotten."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import dagster as dg
import psycopg
from psycopg import sql

from scryon_dagster.adapters.db.api_queries import ApiQueries
from scryon_dagster.adapters.db.records import NewCall
from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.object_store import ObjectStore
from scryon_dagster.domain.calls import CallStatus
from scryon_dagster.partitions import CALLS_PARTITIONS
from scryon_dagster.pipeline.intake import enqueue_call
from tests.api.conftest import wav_bytes
from tests.dagster.test_runbook_jobs import launch, summary


def finished_call(db: CallDatabase, store: ObjectStore, status: CallStatus) -> UUID:
    audio = wav_bytes(1.0)
    call = enqueue_call(
        db, store, audio=io.BytesIO(audio), filename="c.wav", user_reference="user-p", call=NewCall(), max_bytes=10**6
    )
    db.begin_processing([call.id], batch_id=uuid4())
    assert db.transition(call.id, CallStatus.TRANSCRIBING, status)
    return call.id


def age(database_url: str, table: str, column: str, key: str, value: object, when: datetime) -> None:
    """Backdate a row (with call_records' touch trigger off, which would stamp now())."""
    with psycopg.connect(database_url) as conn:
        conn.execute("ALTER TABLE call_records DISABLE TRIGGER call_records_touch")
        statement = sql.SQL("UPDATE {} SET {} = %s WHERE {} = %s").format(
            sql.Identifier(table), sql.Identifier(column), sql.Identifier(key)
        )
        conn.execute(statement, (when, value))
        conn.execute("ALTER TABLE call_records ENABLE TRIGGER call_records_touch")


def test_prune_history_drops_old_finished_partitions_and_day_old_idempotency_keys(
    pipeline_env: dict[str, str],
    database_url: str,
    db: CallDatabase,
    store: ObjectStore,
    instance: dg.DagsterInstance,
) -> None:
    long_ago = datetime.now(UTC) - timedelta(days=40)
    old_completed, old_failed, recent_failed = (
        finished_call(db, store, status) for status in (CallStatus.COMPLETED, CallStatus.FAILED, CallStatus.FAILED)
    )
    for call_id in (old_completed, old_failed):
        age(database_url, "call_records", "updated_at", "id", call_id, long_ago)
    keys = [str(call_id) for call_id in (old_completed, old_failed, recent_failed)]
    instance.add_dynamic_partitions(CALLS_PARTITIONS, keys)
    call = db.get_call(recent_failed)
    assert call is not None
    queries = ApiQueries(db)
    queries.remember_idempotency_key(call.user_id, "day-old", old_completed)
    queries.remember_idempotency_key(call.user_id, "fresh", recent_failed)
    age(
        database_url,
        "upload_idempotency_keys",
        "created_at",
        "idempotency_key",
        "day-old",
        datetime.now(UTC) - timedelta(hours=25),
    )

    result = launch(instance, "prune_history", {})

    assert result.success
    report = summary(result)
    assert (report["partition_keys_dropped"], report["idempotency_keys_deleted"]) == (2, 1)
    assert instance.get_dynamic_partitions(CALLS_PARTITIONS) == [str(recent_failed)]
    assert queries.call_for_idempotency_key(call.user_id, "day-old") is None
    assert queries.call_for_idempotency_key(call.user_id, "fresh") == recent_failed
    assert db.get_call(old_failed) is not None  # the calls themselves stay
