"""Bounded history: processing events, upload idempotency keys, the finished calls whose partition keys
may be dropped."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from uuid import UUID

from scryon_dagster.adapters.db import maintenance as maintenance_sql
from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.pipeline.maintenance._checks import require_aware, require_positive

logger = logging.getLogger(__name__)


def prune_events(db: CallDatabase, *, now: datetime, retention: timedelta) -> int:
    """Delete call_processing_events created before ``now - retention``; how many."""
    require_aware(now=now)
    require_positive(retention=retention)
    deleted = maintenance_sql.delete_events_before(db, now - retention)
    logger.info("event pruning: %d events deleted", deleted)
    return deleted


def finished_calls_before(db: CallDatabase, before: datetime) -> list[UUID]:
    """COMPLETED and FAILED calls last updated before ``before`` (their Dagster partition keys may be
    dropped: a call processed again gets its key back)."""
    require_aware(before=before)
    return maintenance_sql.finished_calls_updated_before(db, before)


def prune_idempotency_keys(db: CallDatabase, *, now: datetime, retention: timedelta) -> int:
    """Forget upload idempotency keys bound before ``now - retention`` (a retry after that creates a
    new call, as in the reference, which keeps them 24 h); how many."""
    require_aware(now=now)
    require_positive(retention=retention)
    deleted = maintenance_sql.delete_idempotency_keys_before(db, now - retention)
    logger.info("idempotency key pruning: %d keys deleted", deleted)
    return deleted
