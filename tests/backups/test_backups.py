"""Database backups: the tools found, the dump streamed gzipped to storage, pruning, and what the sweeps
and the restore command refuse to touch (real PostgreSQL and the S3-compatible server)."""

from __future__ import annotations

import gzip
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from uuid import uuid4

import dagster as dg
import pytest

from scryon_dagster.adapters.db import backup as pg
from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.object_store import InMemoryObjectStore, ObjectStore, validate_key
from scryon_dagster.cli import main
from scryon_dagster.definitions import defs
from scryon_dagster.pipeline import backups, maintenance
from tests.fixtures.pipeline import Enqueue
from tests.fixtures.postgres import _with_dbname, create_database, drop_database

NOW = datetime(2026, 12, 3, 2, 7, tzinfo=UTC)


def database_name(url: str) -> str:
    """The database a libpq URL names (the embedded server's URLs carry a query after it)."""
    return urlsplit(url).path.lstrip("/")


def backup_metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    (output,) = [event for event in result.all_node_events if event.event_type_value == "STEP_OUTPUT"]
    return {key: value.value for key, value in output.step_output_data.metadata.items()}


def run_backup_job(instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def("backup_database").execute_in_process(instance=instance, raise_on_error=False)


def test_backup_keys_sort_by_time_pass_the_key_rules_and_only_a_backups_keys_parse() -> None:
    key = backups.backup_key(NOW)

    assert key == "db-backups/scryon-backup-20261203T020700Z.sql.gz"
    assert validate_key(key) == key
    assert backups.backup_taken_at(key) == NOW
    assert backups.backup_key(NOW + timedelta(seconds=1)) > key
    assert backups.backup_taken_at("db-backups/notes.txt") is None
    assert backups.backup_taken_at("users/u/calls/c/scryon-backup-20261203T020700Z.sql.gz") is None


def test_the_tools_of_the_servers_major_version_are_found_and_a_missing_one_is_named(database_url: str) -> None:
    version = pg.server_version(database_url)
    major = int(version.split(".")[0])

    for name in ("pg_dump", "psql"):
        tool = pg.find_postgres_tool(name, major)  # type: ignore[arg-type]
        assert tool.major_version == major
        assert tool.path.name == name

    with pytest.raises(pg.PostgresToolError) as missing:
        pg.find_postgres_tool("pg_dump", 99)
    assert "pg_dump of PostgreSQL 99 is needed" in str(missing.value)
    assert "postgresql-client-99" in str(missing.value)


def test_the_backup_job_streams_a_gzipped_dump_and_records_key_size_and_duration_only(
    pipeline_env: dict[str, str],
    db: CallDatabase,
    store: ObjectStore,
    enqueue_sample: Enqueue,
    instance: dg.DagsterInstance,
) -> None:
    enqueue_sample("greeting_by_name")

    result = run_backup_job(instance)

    assert result.success
    metadata = backup_metadata(result)
    key = metadata["object_key"]
    assert re.fullmatch(r"db-backups/scryon-backup-\d{8}T\d{6}Z\.sql\.gz", key)
    stored = store.head(key)
    assert stored is not None
    assert stored.size == metadata["compressed_bytes"]
    dump = gzip.decompress(store.get_bytes(key))
    assert len(dump) == metadata["dump_bytes"] > metadata["compressed_bytes"]
    assert b"PostgreSQL database dump complete" in dump
    assert b"COPY public.call_records" in dump
    assert metadata["duration_seconds"] > 0
    assert metadata["pruned_count"] == 0
    # ids, versions, sizes and durations: nothing the dump holds about the call
    texts = " ".join(str(value) for value in metadata.values())
    assert "Sam" not in texts
    assert "+1" not in texts
    assert set(metadata) == {
        "object_key",
        "compressed_bytes",
        "dump_bytes",
        "duration_seconds",
        "server_version",
        "pg_dump_version",
        "pruned",
        "pruned_count",
    }


def test_the_backup_schedule_runs_the_job_nightly() -> None:
    schedule = defs.resolve_schedule_def("backup_database_schedule")

    assert schedule.job_name == "backup_database"
    assert schedule.cron_schedule == "7 2 * * *"
    assert schedule.default_status is dg.DefaultScheduleStatus.RUNNING


def test_a_failing_dump_stores_nothing(postgres_server_url: str, store: ObjectStore) -> None:
    version = pg.server_version(postgres_server_url)
    tool = pg.find_postgres_tool("pg_dump", int(version.split(".")[0]))
    missing_database = _with_dbname(postgres_server_url, f"scryon_missing_{uuid4().hex[:8]}")

    with pytest.raises(pg.PostgresToolError) as failed, pg.pg_dump_output(tool, missing_database) as dump:
        store.put_stream(backups.backup_key(NOW), dump, backups.BACKUP_CONTENT_TYPE)

    assert "pg_dump" in str(failed.value)
    assert "exit code" in str(failed.value)
    assert "scryon_missing" not in str(failed.value)  # quoted names are masked
    assert list(store.list_objects(backups.BACKUP_PREFIX)) == []


def test_pruning_deletes_dumps_past_the_retention_but_keeps_the_newest_and_foreign_objects() -> None:
    store = InMemoryObjectStore()
    days_old = [45, 31, 29, 1]
    for days in days_old:
        store.put_bytes(backups.backup_key(NOW - timedelta(days=days)), b"dump", backups.BACKUP_CONTENT_TYPE)
    store.put_bytes("db-backups/README.txt", b"notes", "text/plain")

    pruned = backups.prune_backups(store, now=NOW, retention=timedelta(days=30))

    assert pruned == [backups.backup_key(NOW - timedelta(days=45)), backups.backup_key(NOW - timedelta(days=31))]
    assert [b.key for b in backups.list_backups(store)] == [
        backups.backup_key(NOW - timedelta(days=29)),
        backups.backup_key(NOW - timedelta(days=1)),
    ]
    assert store.exists("db-backups/README.txt")

    only_old = InMemoryObjectStore()
    only_old.put_bytes(backups.backup_key(NOW - timedelta(days=90)), b"dump", backups.BACKUP_CONTENT_TYPE)
    assert backups.prune_backups(only_old, now=NOW, retention=timedelta(days=30)) == []


def test_the_storage_sweeps_never_delete_or_report_a_backup(
    pipeline_env: dict[str, str], db: CallDatabase, store: ObjectStore, enqueue_sample: Enqueue
) -> None:
    enqueue_sample("greeting_by_name")
    key = backups.backup_key(NOW - timedelta(days=3))
    store.put_bytes(key, b"dump", backups.BACKUP_CONTENT_TYPE)
    later = datetime.now(UTC) + timedelta(days=30)

    reconcile = maintenance.reconcile_storage(db, store, now=later, ttl=timedelta(hours=1))
    reaped = maintenance.reap_orphan_artifacts(db, store, now=later, min_age=timedelta(hours=1))
    swept = maintenance.sweep_temp_audio(db, store, now=later, ttl=timedelta(hours=1))

    assert key not in reconcile.orphan_objects + reconcile.untracked_objects
    assert reaped.objects_deleted == 0
    assert len(swept.deleted) == 1  # the call's audio went; the dump stays
    assert store.exists(key)


def test_restore_refuses_a_non_empty_database_and_an_unconfirmed_target(
    pipeline_env: dict[str, str],
    postgres_server_url: str,
    store: ObjectStore,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store.put_bytes(backups.backup_key(NOW), gzip.compress(b"SELECT 1;\n"), backups.BACKUP_CONTENT_TYPE)
    session_database = database_name(pipeline_env["SCRYON_DATABASE_URL"])

    assert main(["restore", "--confirm-database", session_database]) == 2
    assert "the target database is not empty" in capsys.readouterr().err

    empty = create_database(postgres_server_url, "scryon_restore_refused")
    try:
        monkeypatch.setenv("SCRYON_DATABASE_URL", empty)
        assert main(["restore", "--confirm-database", "scryon"]) == 2
        assert "type the target database's name after --confirm-database" in capsys.readouterr().err
        assert main(["restore", "--dump", "scryon-backup-20200101T000000Z.sql.gz", "--confirm-database",
                     database_name(empty)]) == 2  # fmt: skip
        assert "no dump db-backups/scryon-backup-20200101T000000Z.sql.gz" in capsys.readouterr().err
        assert pg.user_relations(empty) == []
    finally:
        drop_database(postgres_server_url, empty)


def test_a_dump_that_fails_to_load_leaves_the_database_empty_and_quotes_no_row_data(
    pipeline_env: dict[str, str],
    postgres_server_url: str,
    store: ObjectStore,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    broken = b"CREATE TABLE loaded (id int);\nINSERT INTO loaded VALUES ('Call with Sam +1 555 0100');\n"
    store.put_bytes(backups.backup_key(NOW), gzip.compress(broken), backups.BACKUP_CONTENT_TYPE)
    empty = create_database(postgres_server_url, "scryon_restore_broken")
    try:
        monkeypatch.setenv("SCRYON_DATABASE_URL", empty)
        assert main(["restore", "--confirm-database", database_name(empty)]) == 2
        error = capsys.readouterr().err
        assert "psql" in error
        assert "exit code 3" in error
        assert "invalid input syntax" in error
        assert "Sam" not in error
        assert "555" not in error
        assert pg.user_relations(empty) == []  # one transaction: nothing of the dump stayed
    finally:
        drop_database(postgres_server_url, empty)
