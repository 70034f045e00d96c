"""`python -m scryon_dagster.dagster_cli`: Dagster's code server started through it (`code-server start`, a
proxy that starts the server running the code, as `dagster dev` and production do) runs each run in a
worker forked from a process that imported the code location before the run, runs it to success, still
terminates it, and forks from the new code after a reload; the warm process of the real code location
hands down no thread and no connection; with SCRYON_RUN_WORKER_START=spawn it is Dagster's stock spawned
worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import psutil
import pytest
from dagster._grpc.client import DagsterGrpcClient  # the reload the UI asks for; no public client has it

from scryon_dagster.dagster_cli import dagster_command, run_worker_start_method
from tests.e2e.harness import free_port, stop_process_group
from tests.fixtures.postgres import create_database, drop_database

LOCATION = """
import json
import os
import time
from pathlib import Path

import dagster as dg

IMPORTED_IN_PID = os.getpid()
VERSION = 1
REPORTS = Path(os.environ["WARM_LOCATION_REPORTS"])


@dg.op
def report_process() -> None:
    report = {"pid": os.getpid(), "location_imported_in_pid": IMPORTED_IN_PID, "version": VERSION}
    (REPORTS / "report.json").write_text(json.dumps(report))


@dg.op
def wait_to_be_terminated() -> None:
    (REPORTS / "waiting").write_text(str(os.getpid()))
    time.sleep(300)


@dg.job
def report_job() -> None:
    report_process()


@dg.job
def waiting_job() -> None:
    wait_to_be_terminated()


defs = dg.Definitions(jobs=[report_job, waiting_job], executor=dg.in_process_executor)
"""

# runs launched at once, through the code server (no daemon to dequeue them)
INSTANCE_YAML = """
run_coordinator:
  module: dagster._core.run_coordinator
  class: DefaultRunCoordinator
telemetry:
  enabled: false
"""
TIMEOUT_SECONDS = 120
DAGSTER = [sys.executable, "-m", "dagster"]
FORKSERVER = "multiprocessing.forkserver"
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


@dataclass
class CodeServer:
    port: int
    env: dict[str, str]
    instance: dg.DagsterInstance
    reports: Path
    process: psutil.Process

    def launch(self, job_name: str) -> str:
        run_id = str(uuid.uuid4())
        subprocess.run(
            [*DAGSTER, "job", "launch", "--grpc-port", str(self.port), "-j", job_name, "--run-id", run_id],
            env=self.env,
            check=True,
            capture_output=True,
            timeout=TIMEOUT_SECONDS,
        )
        return run_id

    def run_report(self) -> dict[str, int]:
        """Run ``report_job`` to success; what its op reported about its process."""
        run_id = self.launch("report_job")
        assert self.wait_for_status(run_id, FINISHED) == dg.DagsterRunStatus.SUCCESS
        report: dict[str, int] = json.loads((self.reports / "report.json").read_text())
        return report

    def wait_for_status(self, run_id: str, statuses: set[dg.DagsterRunStatus]) -> dg.DagsterRunStatus:
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            run = self.instance.get_run_by_id(run_id)
            if run is not None and run.status in statuses:
                return run.status
            time.sleep(0.5)
        pytest.fail(f"run {run_id} did not reach {statuses}")


@contextmanager
def code_server(
    tmp_path: Path, module: str, start_method: str, instance_yaml: str = INSTANCE_YAML, **env: str
) -> Iterator[CodeServer]:
    """``code-server start`` of ``module`` through the command (a proxy and the server it starts)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(instance_yaml)
    reports = tmp_path / "reports"
    reports.mkdir()
    env = {
        **os.environ,
        **env,
        "DAGSTER_HOME": str(home),
        "WARM_LOCATION_REPORTS": str(reports),
        "SCRYON_RUN_WORKER_START": start_method,
    }
    port = free_port()
    server = subprocess.Popen(
        dagster_command("code-server", "start", "-p", str(port), "-m", module),
        env=env,
        cwd=tmp_path,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + TIMEOUT_SECONDS
        health_check = [*DAGSTER, "api", "grpc-health-check", "-p", str(port)]
        while subprocess.run(health_check, env=env, capture_output=True).returncode != 0:
            assert server.poll() is None, "the code server exited"
            assert time.monotonic() < deadline, "the code server did not come up"
            time.sleep(0.5)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            yield CodeServer(port, env, instance, reports, psutil.Process(server.pid))
    finally:
        stop_process_group(server)


@pytest.fixture
def warm_code_server(tmp_path: Path) -> Iterator[CodeServer]:
    (tmp_path / "warm_location.py").write_text(LOCATION)
    with code_server(tmp_path, "warm_location", "forkserver") as server:
        yield server


@pytest.fixture
def stock_code_server(tmp_path: Path) -> Iterator[CodeServer]:
    (tmp_path / "warm_location.py").write_text(LOCATION)
    with code_server(tmp_path, "warm_location", "spawn") as server:
        yield server


def forkserver_of(server: CodeServer) -> psutil.Process:
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while True:
        for process in server.process.children(recursive=True):
            if FORKSERVER in " ".join(process.cmdline()):
                return process
        assert time.monotonic() < deadline, "no forkserver"
        time.sleep(0.2)


def wait_until_idle(process: psutil.Process, quiet_seconds: float = 2) -> None:
    deadline = time.monotonic() + TIMEOUT_SECONDS
    used = sum(process.cpu_times()[:2])
    while True:
        time.sleep(quiet_seconds)
        used, before = sum(process.cpu_times()[:2]), used
        if used == before:
            return
        assert time.monotonic() < deadline, "the forkserver is still busy"


def test_the_warm_process_of_the_code_location_has_no_thread_and_no_connection_to_hand_down(
    tmp_path: Path, pipeline_env: dict[str, str], postgres_server_url: str
) -> None:
    """What a fork inherits: the code location and production's storage classes, imported, and nothing
    running (a thread) or open (a database or HTTP connection) that the forks would share."""
    storage_url = create_database(postgres_server_url, "scryon_dagster_forkserver")
    instance_yaml = f"""
storage:
  custom:
    module: scryon_dagster.dagster_storage
    class: PooledPostgresStorage
    config:
      postgres_url: "{storage_url.replace("postgresql://", "postgresql+psycopg2://", 1)}"
{INSTANCE_YAML}"""
    try:
        with code_server(tmp_path, "scryon_dagster.definitions", "forkserver", instance_yaml) as server:
            forkserver = forkserver_of(server)
            wait_until_idle(forkserver)  # its imports done, it waits for requests
            preloaded = " ".join(forkserver.cmdline())
            threads = forkserver.num_threads()
            connections = forkserver.net_connections(kind="inet")
    finally:
        drop_database(postgres_server_url, storage_url)

    assert "'scryon_dagster.definitions'" in preloaded
    assert "'scryon_dagster.dagster_storage'" in preloaded
    assert threads == 1
    assert connections == []


def test_a_run_executes_in_a_worker_forked_from_a_process_that_had_imported_the_code(
    warm_code_server: CodeServer,
) -> None:
    report = warm_code_server.run_report()

    assert report["location_imported_in_pid"] != report["pid"]


def test_a_reloaded_location_runs_its_new_code_in_forked_workers(tmp_path: Path, warm_code_server: CodeServer) -> None:
    """A reload restarts the server that runs the code (``code-server start`` is a proxy), and with it the
    forkserver: the next run forks from a process that imported the new code."""
    before = warm_code_server.run_report()
    location = tmp_path / "warm_location.py"
    location.write_text(location.read_text().replace("VERSION = 1", "VERSION = 2"))

    DagsterGrpcClient(port=warm_code_server.port, host="localhost").reload_code(timeout=TIMEOUT_SECONDS)
    after = warm_code_server.run_report()

    assert before["version"] == 1
    assert after["version"] == 2
    assert after["location_imported_in_pid"] not in (after["pid"], before["location_imported_in_pid"])


def test_a_run_in_a_forked_worker_can_be_terminated(warm_code_server: CodeServer) -> None:
    run_id = warm_code_server.launch("waiting_job")
    waiting = warm_code_server.reports / "waiting"
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while not waiting.exists():
        assert time.monotonic() < deadline, "the waiting op did not start"
        time.sleep(0.2)

    assert warm_code_server.instance.run_launcher.terminate(run_id)

    assert warm_code_server.wait_for_status(run_id, FINISHED) == dg.DagsterRunStatus.CANCELED
    worker_pid = int(waiting.read_text())
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while not has_ended(worker_pid):
        assert time.monotonic() < deadline, "the terminated run's worker is still running"
        time.sleep(0.2)


def has_ended(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_spawn_keeps_dagsters_stock_fresh_worker(stock_code_server: CodeServer) -> None:
    report = stock_code_server.run_report()

    assert report["location_imported_in_pid"] == report["pid"]


def test_an_unknown_start_method_stops_the_command_with_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCRYON_RUN_WORKER_START", "fork")

    with pytest.raises(SystemExit, match="SCRYON_RUN_WORKER_START: Input should be 'forkserver' or 'spawn'"):
        run_worker_start_method()
