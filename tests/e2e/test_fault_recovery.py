"""End to end under the faults an operator does not cause: a run worker SIGKILLed mid-batch, the daemon
SIGKILLed and started again. Every call ends COMPLETED, none is transcribed twice, and Dagster's view of
each call agrees with the call database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import dagster as dg
import pytest

from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.dagster_cli import dagster_command, dagster_daemon_command
from scryon_dagster.domain.calls import CallStatus
from scryon_dagster.simulator import SimulatorServer
from tests.e2e.harness import LOCATION, free_port, stop_process_group, wait_until_terminal
from tests.fixtures.pipeline import Enqueue

pytestmark = pytest.mark.e2e

SLUGS = ("greeting_by_name", "self_introduction", "answering_pattern", "no_names", "voicemail", "three_party")


@pytest.fixture
def dagster_env_overrides() -> dict[str, str]:
    # automatic retries on, due within a second or two
    return {"SCRYON_CALL_MAX_RETRIES": "3", "SCRYON_CALL_RETRY_BASE_SECONDS": "1"}


# Not the shared ephemeral `instance`: this test reads what the `dagster dev` daemon wrote to its own
# PostgreSQL-backed instance.
@pytest.fixture
def instance(dagster_home: Path, dagster_env: dict[str, str]) -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.from_config(str(dagster_home)) as opened:
        yield opened


def _wait_for(condition: object, what: str, timeout_seconds: float = 120) -> None:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def _run_worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        event = record.dagster_event
        if event is None or event.engine_event_data is None:
            continue
        pid = event.engine_event_data.metadata.get("pid")
        if pid is not None:
            return int(str(pid.value))
    return None


def _transcriptions_started(db: CallDatabase, call_id: UUID) -> int:
    return sum((e.stage, e.status) == ("TRANSCRIBED", "STARTED") for e in db.list_events(call_id))


def _materialized(instance: dg.DagsterInstance, asset: str) -> set[str]:
    return set(instance.get_materialized_partitions(dg.AssetKey(asset)))


def test_a_killed_run_worker_loses_no_call_and_pays_for_no_finished_stage_twice(
    dagster_dev: str,
    instance: dg.DagsterInstance,
    db: CallDatabase,
    simulator: SimulatorServer,
    enqueue_sample: Enqueue,
) -> None:
    simulator.admin.set_latency("llm", 3.0)  # the batch sits in analysis, its transcripts stored
    call_ids = [enqueue_sample(slug) for slug in SLUGS]

    def analyzing() -> list[UUID]:
        calls = db.get_calls(call_ids).values()
        return [call.id for call in calls if call.status is CallStatus.ANALYZING and call.claim_id is not None]

    _wait_for(lambda: len(analyzing()) >= 2, "calls in analysis")
    victim = db.get_call(analyzing()[0])
    assert victim is not None
    run_id = str(victim.claim_id)  # a run holds its calls under its own id
    pid = _run_worker_pid(instance, run_id)
    assert pid is not None, "no run worker pid in the run's events"
    os.kill(pid, signal.SIGKILL)
    simulator.admin.set_latency("llm", 0)

    final = wait_until_terminal(db, call_ids)

    assert final == {call_id: (CallStatus.COMPLETED, None) for call_id in call_ids}
    run = instance.get_run_by_id(run_id)
    assert run is not None
    assert run.status is dg.DagsterRunStatus.FAILURE
    for call_id in call_ids:
        assert _transcriptions_started(db, call_id) == 1  # a stored transcript is never paid for again
    requeued = [
        call_id
        for call_id in call_ids
        if any(
            e.error_code == "run_crashed" and (e.error_message or "").startswith("status -> QUEUED")
            for e in db.list_events(call_id)
        )
    ]
    assert victim.id in requeued
    # Dagster agrees with the call database: every call's normalized transcript and analysis are materialized
    _wait_for(
        lambda: {str(c) for c in call_ids} <= _materialized(instance, "analysis"), "materializations in Dagster", 60
    )
    assert {str(c) for c in call_ids} <= _materialized(instance, "normalized_transcript")


@pytest.fixture
def code_server(dagster_env: dict[str, str], dagster_home: Path) -> Iterator[Path]:
    """A standalone code server (as in production, where runs outlive the daemon); yields its workspace."""
    port = free_port()
    log = (dagster_home / "code-server.log").open("wb")
    process = subprocess.Popen(
        dagster_command("api", "grpc", *LOCATION, "-h", "127.0.0.1", "-p", str(port)),
        env=dagster_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    workspace = dagster_home / "workspace.yaml"
    workspace.write_text(
        f"load_from:\n  - grpc_server:\n      host: 127.0.0.1\n      port: {port}\n      location_name: scryon\n"
    )
    try:
        _wait_for(lambda: _listening(port), "the code server", 120)
        yield workspace
    finally:
        stop_process_group(process)
        log.close()


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _start_daemon(workspace: Path, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        return subprocess.Popen(
            dagster_daemon_command("run", "-w", str(workspace)),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def test_a_killed_daemon_restarted_loses_no_call_and_launches_none_twice(
    code_server: Path,
    dagster_env: dict[str, str],
    dagster_home: Path,
    db: CallDatabase,
    simulator: SimulatorServer,
    enqueue_sample: Enqueue,
) -> None:
    simulator.admin.set_latency("llm", 2.0)
    first = [enqueue_sample(slug) for slug in SLUGS[:3]]
    log_path = dagster_home / "daemon.log"
    daemon = _start_daemon(code_server, dagster_env, log_path)
    restarted = None
    try:
        _wait_for(
            lambda: any(call.status is not CallStatus.QUEUED for call in db.get_calls(first).values()),
            "a started call",
        )
        os.killpg(daemon.pid, signal.SIGKILL)  # the daemon and anything it started itself
        daemon.wait(timeout=30)
        later = [enqueue_sample(slug) for slug in SLUGS[3:]]  # queued while no daemon runs
        restarted = _start_daemon(code_server, dagster_env, log_path)
        simulator.admin.set_latency("llm", 0)
        final = wait_until_terminal(db, first + later)
    finally:
        for process in (daemon, restarted):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=60)

    assert final == {call_id: (CallStatus.COMPLETED, None) for call_id in first + later}
    for call_id in first + later:
        call = db.get_call(call_id)
        assert call is not None
        assert call.attempt == 1  # claimed and launched exactly once
        assert _transcriptions_started(db, call_id) == 1
