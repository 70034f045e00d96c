"""Deleting calls for good: objects first, then the row (its children cascade)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.object_store import ObjectStore
from scryon_dagster.domain.storage_keys import call_prefix

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeleteReport:
    deleted: list[UUID]
    unknown: list[UUID]
    """Ids with no call row (never existed, or already deleted)."""
    objects_deleted: int


def delete_calls(db: CallDatabase, store: ObjectStore, call_ids: Sequence[UUID]) -> DeleteReport:
    """Delete each call: its objects first (everything under its prefix), then its row, whose
    artifacts, action items, events, sentiment and usage rows cascade.

    One call at a time, so a storage failure leaves every call either whole or gone (its row stays
    until its objects are). Objects a late worker writes after the prefix delete are reaped later.
    """
    unique = list(dict.fromkeys(call_ids))
    calls = db.get_calls(unique)
    deleted: list[UUID] = []
    unknown: list[UUID] = []
    objects = 0
    for call_id in unique:
        call = calls.get(call_id)
        if call is None:
            unknown.append(call_id)
            continue
        objects += store.delete_prefix(call_prefix(call.user_id, call.id))
        (deleted if db.delete_call(call_id) else unknown).append(call_id)
    logger.info("call deletion: %d deleted, %d unknown, %d objects", len(deleted), len(unknown), objects)
    return DeleteReport(deleted=deleted, unknown=unknown, objects_deleted=objects)
