"""End to end: `dagster dev` (webserver, daemon, code server) on PostgreSQL-backed Dagster storage, the
call database, the S3-compatible server and the provider simulator. Calls are queued the way intake
queues them; the QUEUED sensor must carry every one to COMPLETED or to FAILED with the expected code."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import httpx
import pytest

from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.domain.calls import TERMINAL_STATUSES, CallStatus
from scryon_dagster.simulator import SimulatorServer
from tests.fixtures.pipeline import Enqueue, sample_by_slug
from tests.fixtures.postgres import create_database, drop_database

pytestmark = pytest.mark.e2e

DEADLINE_SECONDS = 300
PRIVATE_WORDS = ["Praveen", "Raman", "Jimmy", "DocuSign", "warehouse", "renewal", "2025550143", "Alex Morgan"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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
def dagster_dev(pipeline_env: dict[str, str], dagster_home: Path) -> Iterator[str]:
    port = _free_port()
    env = {
        **os.environ,
        **pipeline_env,
        "DAGSTER_HOME": str(dagster_home),
        "SCRYON_QUEUED_SENSOR_INTERVAL_SECONDS": "2",
    }
    log = (dagster_home / "dagster-dev.log").open("wb")
    dagster = Path(sys.executable).with_name("dagster")
    process = subprocess.Popen(
        [str(dagster), "dev", "-m", "scryon_dagster.definitions", "-p", str(port), "-h", "127.0.0.1"],
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
        os.killpg(process.pid, 15)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
        log.close()


def _wait_until_terminal(db: CallDatabase, call_ids: list[UUID]) -> dict[UUID, tuple[CallStatus, str | None]]:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        calls = db.get_calls(call_ids)
        if all(call.status in TERMINAL_STATUSES for call in calls.values()) or time.monotonic() > deadline:
            return {call_id: (call.status, call.error_reason) for call_id, call in calls.items()}
        time.sleep(1)


def test_the_daemon_processes_every_queued_call_once(
    dagster_dev: str,
    dagster_home: Path,
    db: CallDatabase,
    simulator: SimulatorServer,
    enqueue_sample: Enqueue,
) -> None:
    # faults chosen per call: the voicemail's transcription is refused, one call's analysis is refused
    simulator.admin.set_fault(
        "lemonfox", "http_400", times=-1, match_audio_seconds=sample_by_slug("voicemail").duration_seconds
    )
    healthy = [
        enqueue_sample(slug) for slug in ("greeting_by_name", "self_introduction", "answering_pattern", "no_names")
    ]
    refused_transcription = enqueue_sample("voicemail")
    refused_analysis = enqueue_sample("three_party")
    simulator.admin.set_fault("llm", "refusal", times=-1, match_call_id=str(refused_analysis))
    simulator.admin.set_fault("pyannote", "http_500", times=2)  # transient: retried, nothing fails
    everything = [*healthy, refused_transcription, refused_analysis]

    final = _wait_until_terminal(db, everything)

    assert final == {
        **{call_id: (CallStatus.COMPLETED, None) for call_id in healthy},
        refused_transcription: (CallStatus.FAILED, "transcription_4xx"),
        refused_analysis: (CallStatus.FAILED, "analysis_invalid_output"),
    }
    for call_id in everything:
        call = db.get_call(call_id)
        assert call is not None
        assert call.attempt == 1  # claimed and launched exactly once
        started = [e for e in db.list_events(call_id) if (e.stage, e.status) == ("TRANSCRIBED", "STARTED")]
        assert len(started) == 1
    for call_id in healthy:
        assert db.list_action_items(call_id) or db.get_sentiment_summary(call_id) is not None

    # privacy: nothing personal in Dagster's compute logs (stdout/stderr of every run and tick) nor in
    # what the webserver, daemon and code server printed
    compute_logs = [path for path in (dagster_home / "storage").rglob("*") if path.suffix in {".out", ".err"}]
    assert compute_logs
    printed = "\n".join(path.read_text(errors="replace") for path in [*compute_logs, dagster_home / "dagster-dev.log"])
    assert str(healthy[0]) in printed or "batch" in printed
    for word in PRIVATE_WORDS:
        assert word not in printed
