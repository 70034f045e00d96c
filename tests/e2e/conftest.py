"""`dagster dev` (webserver, daemon, code server) on PostgreSQL-backed Dagster storage, with the
environment of a run worker pointed at the real local parts."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from scryon_dagster.dagster_cli import dagster_command
from tests.e2e.harness import LOCATION, free_port, stop_process_group
from tests.fixtures.postgres import create_database, drop_database


@pytest.fixture
def dagster_home(tmp_path: Path, postgres_server_url: str) -> Iterator[Path]:
    """A Dagster instance on PostgreSQL in its own database, with production's storage class."""
    storage_url = create_database(postgres_server_url, "scryon_dagster_storage")
    home = tmp_path / "dagster_home"
    home.mkdir()
    # SQLAlchemy 2.1 needs the explicit driver in dagster-postgres URLs
    driver_url = storage_url.replace("postgresql://", "postgresql+psycopg2://", 1)
    (home / "dagster.yaml").write_text(
        f"""
storage:
  custom:
    module: scryon_dagster.dagster_storage
    class: PooledPostgresStorage
    config:
      postgres_url: "{driver_url}"
run_coordinator:
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: 4
    dequeue_interval_seconds: 1
run_monitoring:
  enabled: true
  max_runtime_seconds: 900
  poll_interval_seconds: 5
sensors:
  use_threads: true
  num_workers: 2
telemetry:
  enabled: false
"""
    )
    yield home
    drop_database(postgres_server_url, storage_url)


@pytest.fixture
def dagster_env_overrides() -> dict[str, str]:
    """Settings a test module gives its `dagster dev` on top of the pipeline's (override the fixture)."""
    return {}


@pytest.fixture
def dagster_env(
    pipeline_env: dict[str, str], dagster_home: Path, dagster_env_overrides: dict[str, str]
) -> dict[str, str]:
    return {
        **os.environ,
        **pipeline_env,
        "DAGSTER_HOME": str(dagster_home),
        "SCRYON_QUEUED_SENSOR_INTERVAL_SECONDS": "2",
        **dagster_env_overrides,
    }


@pytest.fixture
def dagster_dev(dagster_env: dict[str, str], dagster_home: Path) -> Iterator[str]:
    port = free_port()
    env = dagster_env
    log = (dagster_home / "dagster-dev.log").open("wb")
    # as the demo runs it (run workers forked from a warm process)
    process = subprocess.Popen(
        dagster_command("dev", *LOCATION, "-p", str(port), "-h", "127.0.0.1"),
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert process.poll() is None, "dagster dev exited early; see dagster-dev.log"
            try:
                if httpx.get(f"{url}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(1)
        else:
            pytest.fail("the Dagster webserver did not come up")
        yield url
    finally:
        stop_process_group(process)
        log.close()
