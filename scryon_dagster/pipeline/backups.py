"""Backups of the call database to object storage, and restoring one, without Dagster.

A backup is ``pg_dump``'s plain SQL, gzip-compressed while it streams to ``db-backups/`` in the same
bucket (or directory) as the artifacts: at most a few upload parts are in memory, never the dump. Dumps
older than the retention are pruned after a backup succeeds, always keeping the newest.

A restore loads a dump into an empty database with ``psql`` in one transaction, migrates it, hands the
calls that were in flight when the dump was taken back to the retry machinery (their runs are gone),
and reconciles the database with storage (report only; the ``reconcile_storage`` job repairs).

The dump holds everything the database holds (names, numbers, transcripts' metadata, action items): it
is as sensitive as the database. Reports carry keys, sizes, durations, counts and call ids only.
"""

from __future__ import annotations

import gzip
import logging
import re
import time
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from io import BufferedReader, BytesIO, RawIOBase
from typing import Any, BinaryIO
from uuid import UUID

from scryon_dagster.adapters.db import backup as pg
from scryon_dagster.adapters.db.migrate import upgrade_to_head
from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.object_store import ObjectStore
from scryon_dagster.domain.calls import ErrorCode
from scryon_dagster.domain.policy import RetryPolicy
from scryon_dagster.pipeline import maintenance
from scryon_dagster.pipeline.settle import Settlement, settle_failure

logger = logging.getLogger(__name__)

BACKUP_PREFIX = "db-backups/"
BACKUP_CONTENT_TYPE = "application/gzip"
_KEY_TIME_FORMAT = "%Y%m%dT%H%M%SZ"
_BACKUP_KEY = re.compile(r"db-backups/scryon-backup-(\d{8}T\d{6}Z)\.sql\.gz")
RESTORED_CALL_ERROR_CODE = ErrorCode.STALE_JOB
"""Calls in flight in a restored dump go back to the queue as a sweep would send them: their run is gone."""


class BackupError(RuntimeError):
    """A backup or restore that cannot go ahead (no dump, a non-empty target); nothing was changed."""


def backup_key(taken_at: datetime) -> str:
    """``db-backups/scryon-backup-20261203T031500Z.sql.gz``: keys sort in the order the dumps were taken."""
    return f"{BACKUP_PREFIX}scryon-backup-{taken_at.astimezone(UTC).strftime(_KEY_TIME_FORMAT)}.sql.gz"


def backup_taken_at(key: str) -> datetime | None:
    """When the dump at ``key`` was taken, or None for a key a backup did not write."""
    match = _BACKUP_KEY.fullmatch(key)
    return datetime.strptime(match[1], _KEY_TIME_FORMAT).replace(tzinfo=UTC) if match else None


@dataclass(frozen=True)
class StoredBackup:
    key: str
    taken_at: datetime
    size: int


def list_backups(store: ObjectStore) -> list[StoredBackup]:
    """The dumps a backup wrote, oldest first (anything else under ``db-backups/`` is ignored)."""
    found = [
        StoredBackup(info.key, taken_at, info.size)
        for info in store.list_objects(BACKUP_PREFIX)
        if (taken_at := backup_taken_at(info.key)) is not None
    ]
    return sorted(found, key=lambda backup: backup.taken_at)


# --- backup --------------------------------------------------------------------------------------


class _GzipReader(RawIOBase):
    """Reads ``source`` gzip-compressed, a chunk at a time."""

    def __init__(self, source: BinaryIO, chunk_bytes: int = 1024 * 1024) -> None:
        super().__init__()
        self._source = source
        self._chunk_bytes = chunk_bytes
        self._compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # 16+: gzip framing
        self._pending = b""
        self._finished = False
        self.uncompressed_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while not self._pending and not self._finished:
            chunk = self._source.read(self._chunk_bytes)
            if chunk:
                self.uncompressed_bytes += len(chunk)
                self._pending = self._compressor.compress(chunk)
            else:
                self._pending = self._compressor.flush()
                self._finished = True
        size = min(len(view), len(self._pending))
        view[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


@dataclass(frozen=True)
class BackupReport:
    key: str
    compressed_bytes: int
    dump_bytes: int
    duration_seconds: float
    server_version: str
    pg_dump_version: str
    pruned: list[str]


def back_up_database(database_url: str, store: ObjectStore, *, now: datetime, retention: timedelta) -> BackupReport:
    """Dump the database to ``db-backups/scryon-backup-<now>.sql.gz``, then prune the dumps taken
    more than ``retention`` before ``now``. A failed dump or upload stores nothing and prunes nothing."""
    if retention <= timedelta(0):
        raise BackupError("the retention must be positive")
    version = pg.server_version(database_url)
    tool = pg.find_postgres_tool("pg_dump", int(version.split(".")[0]))
    key = backup_key(now)
    started = time.monotonic()
    with pg.pg_dump_output(tool, database_url) as dump:
        compressed = _GzipReader(dump)
        size = store.put_stream(key, BufferedReader(compressed), BACKUP_CONTENT_TYPE)
    duration = time.monotonic() - started
    pruned = prune_backups(store, now=now, retention=retention)
    logger.info(
        "database backup %s: %d bytes (%d uncompressed) in %.1f s with pg_dump %s; %d old dumps pruned",
        key,
        size,
        compressed.uncompressed_bytes,
        duration,
        tool.version,
        len(pruned),
    )
    return BackupReport(
        key=key,
        compressed_bytes=size,
        dump_bytes=compressed.uncompressed_bytes,
        duration_seconds=duration,
        server_version=version,
        pg_dump_version=tool.version,
        pruned=pruned,
    )


def prune_backups(store: ObjectStore, *, now: datetime, retention: timedelta) -> list[str]:
    """Delete the dumps taken before ``now - retention``, but never the newest: a backup that has been
    failing for longer than the retention must not leave no dump at all. Returns the deleted keys."""
    backups = list_backups(store)
    doomed = [backup.key for backup in backups[:-1] if backup.taken_at < now - retention]
    for key in doomed:
        store.delete(key)
    return doomed


# --- restore -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RestoreReport:
    key: str
    compressed_bytes: int
    duration_seconds: float
    psql_version: str
    schema_revision: str
    requeued: list[UUID]
    """Calls in flight in the dump, back in the queue for an automatic retry."""
    failed: list[UUID]
    """Calls in flight in the dump with no automatic retry left: FAILED stale_job."""
    released: list[UUID]
    """Calls waiting for the pickup, handed back to it unclaimed."""
    reconcile: maintenance.ReconcileReport


def choose_backup(store: ObjectStore, key: str | None) -> StoredBackup:
    """The named dump (its key, or the bare file name), or the newest; BackupError when there is none."""
    backups = list_backups(store)
    if key is None:
        if not backups:
            raise BackupError(f"no dump under {BACKUP_PREFIX} in this storage")
        return backups[-1]
    wanted = key if key.startswith(BACKUP_PREFIX) else BACKUP_PREFIX + key
    for backup in backups:
        if backup.key == wanted:
            return backup
    raise BackupError(f"no dump {wanted} in this storage (list them: scryon-dagster restore --list)")


def restore_database(
    database_url: str,
    store: ObjectStore,
    backup: StoredBackup,
    *,
    retry_policy: RetryPolicy,
    temp_audio_ttl: timedelta,
) -> RestoreReport:
    """Load ``backup`` into the empty database at ``database_url``, migrate it, settle the calls its
    dump caught mid-flight and reconcile it with storage (report only).

    Refuses (BackupError, nothing changed) a database with any table, view or sequence of its own.
    """
    existing = pg.user_relations(database_url)
    if existing:
        raise BackupError(
            f"the target database is not empty ({len(existing)} tables, views or sequences, e.g. "
            f"{existing[0]}): restore only into a new, empty database"
        )
    tool = pg.find_postgres_tool("psql", int(pg.server_version(database_url).split(".")[0]))
    started = time.monotonic()
    # The compressed dump is read whole (the object store has no streaming read); the SQL is
    # decompressed a chunk at a time on its way to psql.
    compressed = store.get_bytes(backup.key)
    with gzip.GzipFile(fileobj=BytesIO(compressed)) as sql:
        pg.run_psql_script(tool, database_url, pg.chunks_of(sql))
    revision = upgrade_to_head(database_url)
    with CallDatabase(database_url) as db:
        requeued, failed = _settle_in_flight(db, retry_policy)
        released = pg.release_waiting_calls(db)
        reconcile = maintenance.reconcile_storage(db, store, now=datetime.now(UTC), ttl=temp_audio_ttl)
    duration = time.monotonic() - started
    logger.info(
        "database restore from %s: %d bytes in %.1f s with psql %s; %d in-flight calls re-queued, %d failed, "
        "%d waiting calls released",
        backup.key,
        len(compressed),
        duration,
        tool.version,
        len(requeued),
        len(failed),
        len(released),
    )
    return RestoreReport(
        key=backup.key,
        compressed_bytes=len(compressed),
        duration_seconds=duration,
        psql_version=tool.version,
        schema_revision=revision,
        requeued=requeued,
        failed=failed,
        released=released,
        reconcile=reconcile,
    )


def _settle_in_flight(db: CallDatabase, retry_policy: RetryPolicy) -> tuple[list[UUID], list[UUID]]:
    """Calls a run was working on when the dump was taken: no run holds them now. Each goes back to the
    queue for an automatic retry (reusing what it stored before the dump) or, with no retry left, fails."""
    settled: dict[Settlement, list[UUID]] = {Settlement.RETRY: [], Settlement.FAILED: []}
    for call in pg.calls_in_flight(db):
        outcome = settle_failure(
            db,
            retry_policy,
            call_id=call.call_id,
            attempt=call.attempt,
            retry_count=call.retry_count,
            code=RESTORED_CALL_ERROR_CODE,
        )
        settled.setdefault(outcome, []).append(call.call_id)
    return settled[Settlement.RETRY], settled[Settlement.FAILED]
