"""Dagster's PostgreSQL storage with pooled connections and batched "planned" events.

dagster-postgres opens a new connection for every statement outside the webserver (NullPool): storing one
event costs two connections, ~19 ms, and a 100-call ranged run writes 300-400 ASSET_MATERIALIZATION_PLANNED
events at creation, inside the QUEUED sensor's tick. Here every storage keeps a small connection pool
(bursts beyond it still open and close connections as before), and the planned events of a run, which
Dagster already hands over as one batch when batch writing is on, are inserted with one statement.
bench/README.md has the before/after figures.

Select it in dagster.yaml (see deploy/dagster.production.yaml):

    storage:
      custom:
        module: scryon_dagster.dagster_storage
        class: PooledPostgresStorage
        config:
          postgres_url: {env: DAGSTER_POSTGRES_URL}
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy.pool as db_pool
from dagster import DagsterEventType, EventLogEntry
from dagster_postgres import (
    DagsterPostgresStorage,
    PostgresEventLogStorage,
    PostgresRunStorage,
    PostgresScheduleStorage,
)
from dagster_postgres.utils import create_pg_engine, get_token_provider_from_config, pg_url_from_config

from scryon_dagster.dagster_private import ConfigurableClassData, SqlEventLogStorageTable

# Connections each storage keeps open per process (three storages per process); bursts above it open
# short-lived connections as dagster-postgres always does.
POOL_SIZE = 1
POOL_OVERFLOW = 20
# Dagster writes events that come with batch metadata (a run's planned events) in batches of this many
# when the variable is set; it is read on every write.
EVENT_BATCH_SIZE_VARIABLE = "DAGSTER_EVENT_BATCH_SIZE"
EVENT_BATCH_SIZE = "1000"


def _pooled_engine(storage: Any) -> Any:
    return create_pg_engine(
        storage.postgres_url,
        storage._token_provider,
        isolation_level="AUTOCOMMIT",
        poolclass=db_pool.QueuePool,
        pool_size=POOL_SIZE,
        max_overflow=POOL_OVERFLOW,
        # a pooled connection may outlive a database restart or an idle timeout
        pool_pre_ping=True,
        pool_recycle=3600,
    )


class PooledPostgresRunStorage(PostgresRunStorage):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._engine = _pooled_engine(self)


class PooledPostgresScheduleStorage(PostgresScheduleStorage):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._engine = _pooled_engine(self)


class PooledPostgresEventLogStorage(PostgresEventLogStorage):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._engine = _pooled_engine(self)

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        if {event.get_dagster_event().event_type for event in events} != {
            DagsterEventType.ASSET_MATERIALIZATION_PLANNED
        }:
            super().store_event_batch(events)
            return
        # What store_event does per event, once for the batch: insert the rows, then point each asset's
        # record at its newest planned event.
        with self._connect() as conn:
            inserted = conn.execute(self.prepare_insert_event_batch(events).returning(SqlEventLogStorageTable.c.id))
            event_ids = [int(row[0]) for row in inserted.fetchall()]
        newest_by_asset = {
            event.get_dagster_event().asset_key: (event, event_id)
            for event, event_id in zip(events, event_ids, strict=True)
        }
        with self.index_transaction() as conn:
            for event, event_id in newest_by_asset.values():
                self._store_asset_event(conn, event, event_id)


class PooledPostgresStorage(DagsterPostgresStorage):
    """DagsterPostgresStorage whose run, event log and schedule storages pool their connections."""

    def __init__(
        self,
        postgres_url: str,
        should_autocreate_tables: bool = True,
        inst_data: ConfigurableClassData | None = None,
        token_provider: Any = None,
    ) -> None:
        # Batch writing is what hands a run's planned events to store_event_batch in one piece.
        os.environ.setdefault(EVENT_BATCH_SIZE_VARIABLE, EVENT_BATCH_SIZE)
        self.postgres_url = postgres_url
        self.should_autocreate_tables = should_autocreate_tables
        self._inst_data = inst_data
        self._run_storage = PooledPostgresRunStorage(
            postgres_url, should_autocreate_tables, token_provider=token_provider
        )
        self._event_log_storage = PooledPostgresEventLogStorage(
            postgres_url, should_autocreate_tables, token_provider=token_provider
        )
        self._schedule_storage = PooledPostgresScheduleStorage(
            postgres_url, should_autocreate_tables, token_provider=token_provider
        )
        super(DagsterPostgresStorage, self).__init__()

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> PooledPostgresStorage:
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
        )
