"""Dagster's storage as production configures it (PooledPostgresStorage) on a real PostgreSQL: planned
events and materializations written in batches leave the same records single writes would (that failed
calls still show as failed is tested with the other storages in test_call_assets.py)."""

from __future__ import annotations

import dagster as dg
import pytest

from scryon_dagster.assets.calls import MATERIALIZATION_FLUSH_CALLS
from scryon_dagster.dagster_private import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from scryon_dagster.dagster_storage import PooledPostgresEventLogStorage
from tests.dagster.test_call_assets import ALL_ASSETS, _job, _keys


def _planned_events(instance: dg.DagsterInstance, run_id: str) -> list[dg.EventLogEntry]:
    return [
        entry
        for entry in instance.all_logs(run_id)
        if entry.dagster_event is not None and entry.dagster_event.is_asset_materialization_planned
    ]


def test_planned_events_are_written_as_one_batch_per_partition_and_asset(
    pooled_instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = pooled_instance.event_log_storage
    assert isinstance(storage, PooledPostgresEventLogStorage)
    batches: list[int] = []
    original = PooledPostgresEventLogStorage.store_event_batch

    def counting_store_event_batch(self: PooledPostgresEventLogStorage, events: list[dg.EventLogEntry]) -> None:
        if events[0].dagster_event is not None and events[0].dagster_event.is_asset_materialization_planned:
            batches.append(len(events))
        original(self, events)

    monkeypatch.setattr(PooledPostgresEventLogStorage, "store_event_batch", counting_store_event_batch)
    keys = _keys(pooled_instance, 5)

    result = _job("process_calls").execute_in_process(
        instance=pooled_instance,
        tags={ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]},
    )

    assert result.success
    assert batches == [len(ALL_ASSETS) * len(keys)]
    planned = _planned_events(pooled_instance, result.run_id)
    assert sorted((e.dagster_event.asset_key.to_user_string(), e.dagster_event.partition) for e in planned) == sorted(  # type: ignore[union-attr]
        (asset, key) for asset in ALL_ASSETS for key in keys
    )
    # each asset's record points at the run, as a single-event write would leave it
    for asset in ALL_ASSETS:
        record = storage.get_asset_records([dg.AssetKey(asset)])[0]
        assert record.asset_entry.last_run_id == result.run_id


def test_materializations_reach_storage_in_batches_one_per_asset(
    pooled_instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    materialization_batches: list[set[str]] = []
    original = PooledPostgresEventLogStorage.store_event_batch

    def recording_store_event_batch(self: PooledPostgresEventLogStorage, events: list[dg.EventLogEntry]) -> None:
        if events[0].dagster_event is not None and events[0].dagster_event.is_step_materialization:
            materialization_batches.append({e.dagster_event.asset_key.to_user_string() for e in events})  # type: ignore[union-attr]
        original(self, events)

    monkeypatch.setattr(PooledPostgresEventLogStorage, "store_event_batch", recording_store_event_batch)
    keys = _keys(pooled_instance, MATERIALIZATION_FLUSH_CALLS + 5)

    result = _job("process_calls").execute_in_process(
        instance=pooled_instance,
        tags={ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]},
    )

    assert result.success
    # two flushes (after 25 calls, then the rest), each one batch per asset
    assert len(materialization_batches) == 2 * len(ALL_ASSETS)
    assert all(len(assets) == 1 for assets in materialization_batches)
    for asset in ALL_ASSETS:
        assert pooled_instance.get_materialized_partitions(dg.AssetKey(asset)) == set(keys)
        latest = pooled_instance.get_latest_materialization_event(dg.AssetKey(asset))
        assert latest is not None
        assert latest.dagster_event is not None
        assert latest.dagster_event.partition == keys[-1]


def test_connections_are_kept_between_statements(pooled_instance: dg.DagsterInstance) -> None:
    engine = pooled_instance.event_log_storage._engine  # type: ignore[attr-defined]

    def backend() -> int:
        with engine.connect() as conn:
            return int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())

    assert backend() == backend()
