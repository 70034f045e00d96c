"""Reconcile after a restore: where the database and the bucket disagree, and what can be rebuilt."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

from scryon_dagster.adapters.db import maintenance as maintenance_sql
from scryon_dagster.adapters.db.maintenance import PAGE_SIZE
from scryon_dagster.adapters.db.records import ArtifactRecord
from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.object_store import ObjectInfo, ObjectStore, loggable_key
from scryon_dagster.domain.calls import ArtifactType, CallStatus
from scryon_dagster.domain.storage_keys import artifact_key, parse_call_prefix
from scryon_dagster.pipeline.maintenance._checks import require_aware, require_positive

logger = logging.getLogger(__name__)

_AUDIO_DERIVED = frozenset({ArtifactType.RAW_TRANSCRIPT_JSON, ArtifactType.DIARIZATION_JSON})
_TRANSCRIPT_DERIVED = frozenset({ArtifactType.NORMALIZED_TRANSCRIPT_JSON, ArtifactType.ANALYSIS_JSON})


@dataclass(frozen=True)
class ReconcileReport:
    """Where the database and the bucket disagree, and what can be rebuilt.

    The three derivation lists cover COMPLETED calls only (active calls are being rebuilt by their run;
    FAILED ones are reprocessed by hand). A call may be both ``rederivable`` (its transcript can be
    rebuilt from the raw one) and ``underivable`` (its diarization is lost with the audio).
    """

    missing_artifacts: list[tuple[UUID, ArtifactType]]
    """Row present, object gone."""
    orphan_objects: list[str]
    """Keys under users/ whose call row is gone (any age); names outside the key layout masked."""
    expired_temp_audio: list[UUID]
    """TEMP_AUDIO past its TTL whose object is still present."""
    rederivable: list[UUID]
    """Normalized transcript or analysis lost, raw transcript present: a normalization re-run."""
    reprocessable: list[UUID]
    """Raw transcript or diarization lost, TEMP_AUDIO present: a full run."""
    underivable: list[UUID]
    """Raw transcript or diarization lost and the audio gone."""
    untracked_objects: list[str] = field(default_factory=list)
    """Keys of existing calls that no artifact row points at, written before the reconcile started
    (e.g. audio the restored database already swept): no sweep will ever delete them. Masked likewise."""


def reconcile_storage(db: CallDatabase, store: ObjectStore, *, now: datetime, ttl: timedelta) -> ReconcileReport:
    """Compare every artifact row with every object, in one ordered pass over both (rows streamed from
    one snapshot in key order, merged with the bucket listing), and classify what disagrees.

    ``now`` is when the reconcile starts; ``ttl`` is TEMP_AUDIO's lifetime. Report only: nothing changes.
    Findings that concurrent work explains (a row deleted after the snapshot, an object written while
    the listing ran) are re-checked against the database at the end and dropped.
    """
    require_aware(now=now)
    require_positive(ttl=ttl)
    expiry = now - ttl
    missing: list[ArtifactRecord] = []
    expired: list[UUID] = []
    unrowed = _UnrowedObjects(db, written_before=now)
    with maintenance_sql.artifacts_in_key_order(db) as rows:
        for row, found in _merge_by_key(rows, store.list_objects()):
            if found is None:
                assert row is not None
                missing.append(row)
            elif row is None:
                unrowed.add(found)
            elif row.artifact_type is ArtifactType.TEMP_AUDIO and row.created_at < expiry:
                expired.append(row.call_id)
    unrowed.flush()
    lost = _still_missing(db, missing)
    rederivable, reprocessable, underivable = _classify(db, lost)
    report = ReconcileReport(
        missing_artifacts=[(call_id, kind) for call_id, kinds in lost.items() for kind in sorted(kinds)],
        orphan_objects=[_reportable_key(key) for key in unrowed.orphans],
        expired_temp_audio=expired,
        rederivable=rederivable,
        reprocessable=reprocessable,
        underivable=underivable,
        untracked_objects=[_reportable_key(key) for key in unrowed.confirmed_untracked()],
    )
    logger.info(
        "reconcile: %d missing artifacts, %d orphan objects, %d untracked objects, %d expired temp audio, "
        "%d rederivable, %d reprocessable, %d underivable",
        len(report.missing_artifacts),
        len(report.orphan_objects),
        len(report.untracked_objects),
        len(expired),
        len(rederivable),
        len(reprocessable),
        len(underivable),
    )
    return report


def forget_missing_artifacts(db: CallDatabase, missing: Sequence[tuple[UUID, ArtifactType]]) -> int:
    """Delete the artifact rows whose objects are gone (before re-deriving them); how many existed."""
    return maintenance_sql.forget_artifacts(db, missing)


def _merge_by_key(
    rows: Iterator[ArtifactRecord], objects: Iterator[ObjectInfo]
) -> Iterator[tuple[ArtifactRecord | None, ObjectInfo | None]]:
    """Pair rows and objects, both sorted by key in byte order: (row, object), (row, None) for a row without
    its object, (None, object) for an object no row points at."""
    row, found = next(rows, None), next(objects, None)
    matched = False  # whether ``found`` has been paired with a row already
    while row is not None or found is not None:
        if found is None or (row is not None and row.storage_key < found.key):
            assert row is not None
            yield row, None
            row = next(rows, None)
        elif row is None or found.key < row.storage_key:
            if not matched:
                yield None, found
            found, matched = next(objects, None), False
        else:
            yield row, found
            matched = True
            row = next(rows, None)


class _UnrowedObjects:
    """Objects no row pointed at, sorted a page at a time into orphans (call gone) and untracked
    candidates (call exists). Keys outside the call layout are ignored."""

    def __init__(self, db: CallDatabase, *, written_before: datetime) -> None:
        self._db = db
        self._written_before = written_before
        self._pending: list[tuple[ObjectInfo, UUID]] = []
        self.orphans: list[str] = []
        self._untracked: list[tuple[ObjectInfo, UUID]] = []

    def add(self, info: ObjectInfo) -> None:
        owner = parse_call_prefix(info.key)
        if owner is None:
            return
        self._pending.append((info, owner[1]))
        if len(self._pending) >= PAGE_SIZE:
            self.flush()

    def flush(self) -> None:
        existing = maintenance_sql.existing_call_ids(self._db, (call_id for _, call_id in self._pending))
        for info, call_id in self._pending:
            if call_id not in existing:
                self.orphans.append(info.key)
            elif info.last_modified < self._written_before:
                self._untracked.append((info, call_id))
        self._pending = []

    def confirmed_untracked(self) -> list[str]:
        """Untracked candidates that still have no row (a writer may have registered one since)."""
        keys = maintenance_sql.artifact_keys_of(self._db, {call_id for _, call_id in self._untracked})
        return [info.key for info, _ in self._untracked if info.key not in keys]


def _reportable_key(key: str) -> str:
    """The key as it is when the storage layout derived it (UUIDs and fixed names only), else with every
    segment but UUIDs and plain words masked: a reference-era upload name may hold a contact's name."""
    owner = parse_call_prefix(key)
    if owner is not None:
        extension = key.rpartition(".")[2]
        for artifact_type in ArtifactType:
            try:
                if key == artifact_key(*owner, artifact_type, extension):
                    return key
            except ValueError:  # not an audio extension the layout writes
                continue
    return loggable_key(key)


def _still_missing(db: CallDatabase, candidates: list[ArtifactRecord]) -> dict[UUID, set[ArtifactType]]:
    """The candidates whose row still points at the same key now (a sweep or delete that removed the
    object after the snapshot also removed the row)."""
    current = maintenance_sql.artifacts_of(db, {record.call_id for record in candidates})
    lost: dict[UUID, set[ArtifactType]] = {}
    for record in candidates:
        now_stored = current.get(record.call_id, {}).get(record.artifact_type)
        if now_stored is not None and now_stored.storage_key == record.storage_key:
            lost.setdefault(record.call_id, set()).add(record.artifact_type)
    return lost


def _classify(db: CallDatabase, lost: dict[UUID, set[ArtifactType]]) -> tuple[list[UUID], list[UUID], list[UUID]]:
    """(rederivable, reprocessable, underivable) among the COMPLETED calls with lost artifacts."""
    calls = db.get_calls(lost)
    rows = maintenance_sql.artifacts_of(db, list(lost))
    rederivable: list[UUID] = []
    reprocessable: list[UUID] = []
    underivable: list[UUID] = []
    for call_id, kinds in lost.items():
        call = calls.get(call_id)
        if call is None or call.status is not CallStatus.COMPLETED:
            continue
        stored = rows.get(call_id, {})
        has_audio = ArtifactType.TEMP_AUDIO in stored and ArtifactType.TEMP_AUDIO not in kinds
        needs_audio = bool(kinds & _AUDIO_DERIVED)
        if needs_audio and has_audio:
            reprocessable.append(call_id)
            continue
        if needs_audio:
            underivable.append(call_id)
        has_raw = ArtifactType.RAW_TRANSCRIPT_JSON in stored and ArtifactType.RAW_TRANSCRIPT_JSON not in kinds
        if kinds & _TRANSCRIPT_DERIVED and has_raw:
            rederivable.append(call_id)
    return rederivable, reprocessable, underivable
