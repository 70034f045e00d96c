"""The production instance configuration loads against a real PostgreSQL."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest

from tests.fixtures.postgres import create_database, drop_database

PRODUCTION_YAML = Path(__file__).parents[2] / "scryon_dagster" / "deploy" / "dagster.production.yaml"
LOCAL_YAML = Path(__file__).parents[2] / "scryon_dagster" / "deploy" / "dagster.local.yaml"


def test_production_instance_loads_on_postgres(
    tmp_path: Path, postgres_server_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = create_database(postgres_server_url, "scryon_dagster_prod")
    try:
        monkeypatch.setenv("DAGSTER_POSTGRES_URL", url.replace("postgresql://", "postgresql+psycopg2://", 1))
        shutil.copyfile(PRODUCTION_YAML, tmp_path / "dagster.yaml")
        with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
            assert type(instance.event_log_storage).__name__ == "PooledPostgresEventLogStorage"
            assert type(instance.run_storage).__name__ == "PooledPostgresRunStorage"
            assert type(instance.schedule_storage).__name__ == "PooledPostgresScheduleStorage"
            assert instance.run_coordinator.dequeue_interval_seconds == 1  # type: ignore[attr-defined]
            # a relaunched batch would race the crash recovery, which re-queues a dead run's calls itself
            assert not instance.run_retries_enabled
            assert instance.run_monitoring_enabled
            assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 8
            assert instance.get_runs() == []
    finally:
        drop_database(postgres_server_url, url)


def test_local_instance_loads(tmp_path: Path) -> None:
    shutil.copyfile(LOCAL_YAML, tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.run_monitoring_enabled
