"""Shared parts of the system benchmarks: scratch databases, the call system's local parts (call
database, local object storage, provider simulator), bulk enqueueing, process-tree CPU/RSS metering,
`dagster dev` on dagster-postgres storage, and the statistics read back from the call database.

Everything listens on 127.0.0.1 and is torn down by the context managers, on Ctrl-C and SIGTERM too.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
import wave
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

import httpx
import psutil
import psycopg
from psycopg import sql

from scryon_dagster.adapters.db.migrate import upgrade_to_head
from scryon_dagster.adapters.db.records import NewCall
from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.object_store import ObjectStore, build_object_store
from scryon_dagster.dagster_cli import dagster_command, dagster_daemon_command
from scryon_dagster.domain.calls import TERMINAL_STATUSES, Direction
from scryon_dagster.pipeline.intake import enqueue_call
from scryon_dagster.settings import load_settings
from scryon_dagster.simulator import SimulatorServer
from scryon_dagster.simulator.samples import SamplePath, generate_sample_audio

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SERVER_URL = os.environ.get("SCRYON_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PRODUCTION_INSTANCE_YAML = REPO_ROOT / "scryon_dagster" / "deploy" / "dagster.production.yaml"
SIMULATOR_KEY = "sk-simulator-bench-key-0000"
BENCH_USERS = 20


def exit_cleanly_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so that every context manager tears down what it started."""

    def terminate(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)


# --- databases -----------------------------------------------------------------------------------
def with_dbname(url: str, dbname: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{dbname}"))


@contextmanager
def scratch_database(server_url: str, prefix: str) -> Iterator[str]:
    """A new, empty database on ``server_url``, dropped afterwards; yields its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_dbname(server_url, name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# --- the call system's local parts ---------------------------------------------------------------
@dataclass
class CallSystem:
    database_url: str
    workdir: Path
    simulator: SimulatorServer
    env: dict[str, str]
    db: CallDatabase
    store: ObjectStore
    samples: list[SamplePath]


def pipeline_environment(simulator: SimulatorServer, database_url: str, storage_dir: Path) -> dict[str, str]:
    """What a run worker (or the bare worker) needs, pointed at the local parts."""
    return {
        "SCRYON_DATABASE_URL": database_url,
        "LEMONFOX_BASE_URL": simulator.lemonfox_base_url,
        "LEMONFOX_API_KEY": SIMULATOR_KEY,
        "PYANNOTE_BASE_URL": simulator.pyannote_base_url,
        "PYANNOTE_API_KEY": SIMULATOR_KEY,
        "PYANNOTE_ENABLED": "false",
        "SCRYON_DIARIZATION_POLL_INTERVAL_SECONDS": "0.2",
        "LLM_BASE_URL": simulator.llm_base_url,
        "LLM_API_KEY": SIMULATOR_KEY,
        "OBJECT_STORAGE_PROVIDER": "local",
        "OBJECT_STORAGE_LOCAL_PATH": str(storage_dir),
    }


@contextmanager
def call_system(
    server_url: str, *, profile: str = "fast", overrides: dict[str, str] | None = None
) -> Iterator[CallSystem]:
    """A migrated call database, local object storage and a simulator; the environment is also
    applied to this process (so ``load_settings`` here sees what the workers see)."""
    workdir = Path(tempfile.mkdtemp(prefix="scryon-bench-"))
    saved = dict(os.environ)
    try:
        with (
            scratch_database(server_url, "scryon_bench_calls") as database_url,
            SimulatorServer(profile=profile) as simulator,
        ):
            upgrade_to_head(database_url)
            env = {**pipeline_environment(simulator, database_url, workdir / "storage"), **(overrides or {})}
            os.environ.update(env)
            settings = load_settings()
            samples = generate_sample_audio(workdir / "samples")
            with CallDatabase(database_url, max_connections=8) as db:
                yield CallSystem(database_url, workdir, simulator, env, db, build_object_store(settings), samples)
    finally:
        os.environ.clear()
        os.environ.update(saved)
        shutil.rmtree(workdir, ignore_errors=True)


def preprocessing_overrides(enabled: bool) -> dict[str, str]:
    """Audio preprocessing on or off (the first round's figures were taken before the pipeline read
    the switch, with ffmpeg pointed at /bin/false instead: one process spawn per call more)."""
    return {"SCRYON_AUDIO_PREPROCESSING_ENABLED": "true" if enabled else "false"}


def enqueue_one(system: CallSystem, index: int) -> UUID:
    """Queue call ``index`` as the intake would: the six samples in turn, users in turn."""
    sample = system.samples[index % len(system.samples)]
    return enqueue_audio(system, sample.path.read_bytes(), index, sample.path.name)


def enqueue_many(system: CallSystem, count: int) -> list[UUID]:
    return [enqueue_one(system, index) for index in range(count)]


def status_counts(db: CallDatabase, call_ids: Sequence[UUID]) -> dict[str, int]:
    rows = db.query(
        "SELECT status, coalesce(error_reason, '') AS reason, count(*) AS n FROM call_records "
        "WHERE id = ANY(%s) GROUP BY status, reason",
        (list(call_ids),),
    )
    return {f"{row['status']}{':' + row['reason'] if row['reason'] else ''}": int(row["n"]) for row in rows}


def wait_until_terminal(db: CallDatabase, call_ids: Sequence[UUID], timeout_seconds: float) -> bool:
    """Poll until every call is COMPLETED or FAILED (True) or the timeout passes (False)."""
    terminal = [status.value for status in TERMINAL_STATUSES]
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        rows = db.query(
            "SELECT count(*) AS n FROM call_records WHERE id = ANY(%s) AND status <> ALL(%s)",
            (list(call_ids), terminal),
        )
        if rows[0]["n"] == 0:
            return True
        time.sleep(0.5)
    return False


def wait_for_first_claim(db: CallDatabase, call_ids: Sequence[UUID], timeout_seconds: float) -> bool:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if db.query(
            "SELECT 1 FROM call_records WHERE id = ANY(%s) AND claim_id IS NOT NULL LIMIT 1", (list(call_ids),)
        ):
            return True
        time.sleep(0.05)
    return False


# --- statistics ----------------------------------------------------------------------------------
def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (no interpolation), as is usual for latency figures."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary(values: Sequence[float]) -> dict[str, float | int]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "mean": round(statistics.fmean(values), 3),
        "p50": round(percentile(values, 0.50), 3),
        "p95": round(percentile(values, 0.95), 3),
        "p99": round(percentile(values, 0.99), 3),
        "max": round(max(values), 3),
    }


def processing_window(db: CallDatabase, call_ids: Sequence[UUID]) -> tuple[datetime, datetime]:
    """First claim to last terminal status change, from the database's own clock."""
    row = db.query(
        """
        SELECT (SELECT min(claimed_at) FROM call_records WHERE id = ANY(%(ids)s)) AS first_claim,
               (SELECT max(created_at) FROM call_processing_events
                 WHERE call_id = ANY(%(ids)s) AND stage = 'STATUS'
                   AND error_message IN ('status -> COMPLETED', 'status -> FAILED')) AS last_done
        """,
        {"ids": list(call_ids)},
    )[0]
    return row["first_claim"], row["last_done"]


def stage_durations(db: CallDatabase, call_ids: Sequence[UUID]) -> dict[str, dict[str, float | int]]:
    """Per stage: the distribution of its recorded durations (seconds) over the calls."""
    rows = db.query(
        "SELECT stage, duration_ms FROM call_processing_events "
        "WHERE call_id = ANY(%s) AND status IN ('COMPLETED', 'FAILED') AND duration_ms IS NOT NULL",
        (list(call_ids),),
    )
    by_stage: dict[str, list[float]] = {}
    for row in rows:
        by_stage.setdefault(row["stage"], []).append(row["duration_ms"] / 1000)
    return {stage: {**summary(values), "sum_s": round(sum(values), 1)} for stage, values in sorted(by_stage.items())}


def call_latencies(db: CallDatabase, call_ids: Sequence[UUID]) -> dict[str, dict[str, float | int]]:
    """Enqueue → processing start (status TRANSCRIBING, the run picked the call up) and enqueue →
    COMPLETED, in seconds, from the database's clock."""
    rows = db.query(
        """
        SELECT c.created_at,
               min(e.created_at) FILTER (WHERE e.error_message = 'status -> TRANSCRIBING') AS started,
               max(e.created_at) FILTER (WHERE e.error_message = 'status -> COMPLETED') AS completed
        FROM call_records c JOIN call_processing_events e ON e.call_id = c.id AND e.stage = 'STATUS'
        WHERE c.id = ANY(%s) GROUP BY c.id, c.created_at
        """,
        (list(call_ids),),
    )
    started = [(r["started"] - r["created_at"]).total_seconds() for r in rows if r["started"]]
    completed = [(r["completed"] - r["created_at"]).total_seconds() for r in rows if r["completed"]]
    return {"enqueue_to_processing_start_s": summary(started), "enqueue_to_completed_s": summary(completed)}


# --- process metering ----------------------------------------------------------------------------
def tree_cpu_and_rss(root_pid: int, *, descendants: bool = True) -> tuple[float, int]:
    """CPU seconds (user + system) used so far by a process tree, reaped children included, and the
    tree's current resident memory; ``descendants=False`` counts the process alone."""
    try:
        root = psutil.Process(root_pid)
        processes = [root, *root.children(recursive=True)] if descendants else [root]
    except psutil.NoSuchProcess:
        return 0.0, 0
    cpu = 0.0
    rss = 0
    for process in processes:
        try:
            times = process.cpu_times()
            cpu += times.user + times.system
            if descendants:
                cpu += times.children_user + times.children_system
            rss += process.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return cpu, rss


def system_busy_seconds() -> float:
    """Busy CPU seconds of the whole machine since boot (all processes, ours and others')."""
    fields = [float(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


_ROLES = (
    ("ffmpeg", "ffmpeg"),
    # the code server starts each run in a spawned multiprocessing child, or in a child of its forkserver
    ("spawn_main", "run_worker"),
    ("execute_run", "run_worker"),
    ("resource_tracker", "code_server"),
    ("dagster_webserver", "webserver"),
    ("dagster._daemon", "daemon"),
    ("code-server start", "code_server"),
    ("api grpc", "code_server"),
    ("watch_orphans", "compute_log_watchers"),
    ("tail -F", "compute_log_watchers"),
    ("dagster dev", "dev_supervisor"),
)


_FORKSERVER = "multiprocessing.forkserver"


def process_role(process: psutil.Process) -> str:
    """What a process of the `dagster dev` tree is, from its command line."""
    command = " ".join(process.cmdline())
    if _FORKSERVER in command:
        # a forked run worker has its forkserver's command line
        parent = process.parent()
        return "run_worker" if parent is not None and _FORKSERVER in " ".join(parent.cmdline()) else "forkserver"
    return next((role for marker, role in _ROLES if marker in command), "other")


@dataclass
class _Seen:
    role: str
    baseline: float
    own: float


@dataclass
class Meter:
    """Samples process trees every ``interval`` seconds: the peak RSS sum per tree, and each
    process's own CPU by role (processes that end between samples lose at most one interval)."""

    roots: dict[str, int]
    interval: float = 0.5
    peak_rss: dict[str, int] = field(default_factory=dict)
    peak_rss_by_role: dict[str, int] = field(default_factory=dict)
    """The peak, over the samples, of the RSS summed over a role's live processes (e.g. ``run_worker``)."""
    _seen: dict[int, _Seen] = field(default_factory=dict)
    _started: bool = False
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> None:
        rss_by_role: dict[str, int] = {}
        for name, pid in self.roots.items():
            self.peak_rss[name] = max(self.peak_rss.get(name, 0), tree_cpu_and_rss(pid)[1])
            try:
                processes = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for process in processes:
                try:
                    times = process.cpu_times()
                    own = times.user + times.system
                    if process.pid not in self._seen:
                        # processes already running when metering starts count from then on
                        self._seen[process.pid] = _Seen(process_role(process), own if not self._started else 0.0, own)
                    self._seen[process.pid].own = own
                    role = self._seen[process.pid].role
                    rss_by_role[role] = rss_by_role.get(role, 0) + process.memory_info().rss
                except psutil.NoSuchProcess:
                    continue
        for role, rss in rss_by_role.items():
            self.peak_rss_by_role[role] = max(self.peak_rss_by_role.get(role, 0), rss)
        self._started = True

    def cpu_by_role(self) -> dict[str, float]:
        roles: dict[str, float] = {}
        for seen in self._seen.values():
            roles[seen.role] = round(roles.get(seen.role, 0.0) + seen.own - seen.baseline, 2)
        return dict(sorted(roles.items()))

    def start(self) -> Meter:
        self.sample()
        self._thread = threading.Thread(target=self._loop, name="bench-meter", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def has_role(self, role: str) -> bool:
        """Whether a live process of ``role`` is in any tree now."""
        for pid in self.roots.values():
            try:
                if any(process_role(child) == role for child in psutil.Process(pid).children(recursive=True)):
                    return True
            except psutil.NoSuchProcess:
                continue
        return False


def wait_for_runs_to_exit(meter: Meter, timeout_seconds: float) -> None:
    """After the last call, let the run workers finish their bookkeeping (their cost counts)."""
    deadline = time.monotonic() + timeout_seconds
    while meter.has_role("run_worker") and time.monotonic() < deadline:
        time.sleep(0.5)


def postgres_postmaster_pid(port: int = 5432) -> int | None:
    """The PostgreSQL server listening on ``port`` (its backends' CPU rolls up into it)."""
    for connection in psutil.net_connections("tcp"):
        if connection.status == psutil.CONN_LISTEN and connection.laddr and connection.laddr.port == port:
            return connection.pid
    return None


@contextmanager
def cost_window(trees: dict[str, int], alone: dict[str, int] | None = None) -> Iterator[dict[str, float]]:
    """CPU seconds spent inside the block by each process tree in ``trees``, each single process in
    ``alone``, and the whole machine (ours and everyone else's)."""
    alone = alone or {}

    def reading() -> dict[str, float]:
        return {
            **{name: tree_cpu_and_rss(pid)[0] for name, pid in trees.items()},
            **{name: tree_cpu_and_rss(pid, descendants=False)[0] for name, pid in alone.items()},
        }

    before = reading()
    busy_before = system_busy_seconds()
    result: dict[str, float] = {}
    yield result
    after = reading()
    result.update({name: round(after[name] - before[name], 2) for name in before})
    result["machine_busy"] = round(system_busy_seconds() - busy_before, 2)


# --- Dagster -------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_instance_yaml(home: Path) -> None:
    """The production instance config (QueuedRunCoordinator, limits, monitoring) as shipped."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(PRODUCTION_INSTANCE_YAML, home / "dagster.yaml")


def dagster_postgres_url(url: str) -> str:
    # SQLAlchemy 2.1 needs the explicit driver in dagster-postgres URLs
    return url.replace("postgresql://", "postgresql+psycopg2://", 1)


@dataclass
class DagsterDev:
    process: subprocess.Popen[bytes]
    home: Path
    url: str


@contextmanager
def dagster_dev(
    env: dict[str, str], home: Path, storage_url: str, startup_timeout: float = 180
) -> Iterator[DagsterDev]:
    """`dagster dev` (webserver, daemon, code server) of the scryon_dagster code location."""
    write_instance_yaml(home)
    port = free_port()
    full_env = {
        **os.environ,
        **env,
        "DAGSTER_HOME": str(home),
        "DAGSTER_POSTGRES_URL": dagster_postgres_url(storage_url),
    }
    log = (home / "dagster-dev.log").open("wb")
    # as the demo runs it: run workers forked from a warm process unless SCRYON_RUN_WORKER_START=spawn
    process = subprocess.Popen(
        dagster_command("dev", "-m", "scryon_dagster.definitions", "-p", str(port), "-h", "127.0.0.1"),
        env=full_env,
        cwd=REPO_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"dagster dev exited early; see {home / 'dagster-dev.log'}")
            try:
                if httpx.get(f"{url}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the Dagster webserver did not come up")
            time.sleep(1)
        yield DagsterDev(process, home, url)
    finally:
        stop_process_group(process)
        log.close()
        # kept for a look after the scratch directory is gone (var/ is not versioned)
        kept = REPO_ROOT / "var" / "bench" / "dagster-dev.last.log"
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(home / "dagster-dev.log", kept)


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def instance_statistics(home: Path, storage_url: str, since: float) -> dict[str, Any]:
    """Sensor tick and run durations (seconds) after ``since`` (epoch), from the instance's records."""
    import dagster as dg
    from dagster._core.scheduler.instigation import InstigatorType

    os.environ["DAGSTER_POSTGRES_URL"] = dagster_postgres_url(storage_url)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        ticks: list[float] = []
        runs_per_tick: list[int] = []
        for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
            if state.instigator_name != "queued_calls_sensor":
                continue
            for tick in instance.get_ticks(state.instigator_origin_id, state.selector_id, after=since):
                if tick.end_timestamp is not None:
                    ticks.append(tick.end_timestamp - tick.timestamp)
                    runs_per_tick.append(len(tick.run_ids))
        records = instance.get_run_records(dg.RunsFilter(updated_after=datetime.fromtimestamp(since, UTC)))
        queued_to_start = [r.start_time - r.create_timestamp.timestamp() for r in records if r.start_time]
        durations = [r.end_time - r.start_time for r in records if r.start_time and r.end_time]
        statuses: dict[str, int] = {}
        failures: list[str] = []
        for record in records:
            statuses[record.dagster_run.status.value] = statuses.get(record.dagster_run.status.value, 0) + 1
            if record.dagster_run.status is dg.DagsterRunStatus.FAILURE and len(failures) < 3:
                failures.extend(_failure_messages(instance, record.dagster_run.run_id))
    with psycopg.connect(storage_url) as conn:
        event_counts = {
            str(kind): int(count)
            for kind, count in conn.execute(
                "SELECT dagster_event_type, count(*) FROM event_logs GROUP BY 1 ORDER BY 2 DESC LIMIT 12"
            ).fetchall()
        }
    return {
        "event_log_rows_by_type": event_counts,
        "sensor_ticks": {**summary(ticks), "with_runs": sum(1 for n in runs_per_tick if n)},
        "runs": statuses,
        "run_failures": failures[:3],
        "run_create_to_start_s": summary(queued_to_start),
        "run_duration_s": summary(durations),
    }


def _failure_messages(instance: Any, run_id: str) -> list[str]:
    """The first lines of a failed run's step and run failure messages (ids and codes only)."""
    import dagster as dg

    messages = []
    for entry in instance.all_logs(run_id, of_type={dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE}):
        event = entry.dagster_event
        error = getattr(event.event_specific_data, "error", None) if event else None
        text = error.message if error is not None else (event.message if event else "") or ""
        messages.append(f"{run_id[:8]} {event.event_type_value if event else ''}: {text.strip()[:300]}")
    return messages


def print_json(result: dict[str, Any]) -> None:
    print(json.dumps(result, indent=2, default=str))


# --- additions for the fault matrix (bench/faults.py) ---------------------------------------------
def distinct_call_audio(sample: SamplePath, extra_milliseconds: int) -> tuple[bytes, float]:
    """A sample's WAV lengthened by ``extra_milliseconds`` of silence, and its exact duration.

    The simulator recognises a sample within 0.25 s, and counts a transcription under its audio's
    duration to the millisecond: calls with distinct extras stay the same conversation yet are told
    apart in its per-subject statistics (the transcription request names no call)."""
    with wave.open(str(sample.path), "rb") as reader:
        params = reader.getparams()
        frames = reader.readframes(params.nframes)
    padding = bytes(params.sampwidth * params.nchannels * (params.framerate * extra_milliseconds // 1000))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setparams(params)
        writer.writeframes(frames + padding)
    total_frames = (len(frames) + len(padding)) // (params.sampwidth * params.nchannels)
    return buffer.getvalue(), total_frames / params.framerate


def enqueue_audio(system: CallSystem, audio: bytes, index: int, filename: str = "call.wav") -> UUID:
    """Queue one recording given as bytes, with the title, direction and user of call ``index``."""
    sample = system.samples[index % len(system.samples)].sample
    record = enqueue_call(
        system.db,
        system.store,
        audio=io.BytesIO(audio),
        filename=filename,
        user_reference=f"bench-user-{index % BENCH_USERS}",
        user_display_name=sample.user_display_name,
        call=NewCall(title=sample.title, direction=Direction(sample.direction)),
        max_bytes=50 * 1024 * 1024,
    )
    return record.id


def postgres_bin_dir() -> Path:
    """The machine's PostgreSQL binaries (newest major version), else the pgserver wheel's."""
    installed = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda path: int(path.parent.name))
    if installed:
        return installed[-1]
    import pgserver

    return Path(pgserver.__file__).parent / "pginstall" / "bin"


@dataclass
class ThrowawayPostgres:
    """A PostgreSQL cluster of our own (own data directory, own loopback port), safe to restart."""

    bin_dir: Path
    data_dir: Path
    port: int
    run_as: list[str]

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def pg_ctl(self, *arguments: str, timeout: float = 120) -> None:
        subprocess.run(
            [*self.run_as, str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), *arguments],
            check=True,
            capture_output=True,
            timeout=timeout,
        )

    def restart(self) -> float:
        """``pg_ctl restart -m fast``: every connection is cut; returns the seconds it took."""
        started = time.monotonic()
        self.pg_ctl("restart", "-m", "fast", "-w", "-l", str(self.data_dir / "server.log"))
        return time.monotonic() - started

    def postmaster_pid(self) -> int | None:
        pid_file = self.data_dir / "postmaster.pid"
        try:
            return int(pid_file.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None


@contextmanager
def throwaway_postgres(max_connections: int = 400) -> Iterator[ThrowawayPostgres]:
    """initdb + start a scratch cluster on a free port; stopped and deleted afterwards. PostgreSQL
    refuses to run as root, so as root it runs as the ``postgres`` system user."""
    parent = Path(tempfile.mkdtemp(prefix="scryon-bench-pg-"))
    parent.chmod(0o755)
    data_dir = parent / "data"
    run_as: list[str] = []
    if os.geteuid() == 0:
        run_as = ["runuser", "-u", "postgres", "--"]
        data_dir.mkdir()
        shutil.chown(data_dir, "postgres", "postgres")
    cluster = ThrowawayPostgres(postgres_bin_dir(), data_dir, free_port(), run_as)
    subprocess.run(
        [*run_as, str(cluster.bin_dir / "initdb"), "-D", str(data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    options = (
        f"-p {cluster.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={data_dir} "
        f"-c max_connections={max_connections} -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
    try:
        cluster.pg_ctl("start", "-w", "-o", options, "-l", str(data_dir / "server.log"))
        yield cluster
    finally:
        try:
            cluster.pg_ctl("stop", "-m", "immediate", "-w", timeout=60)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            if (pid := cluster.postmaster_pid()) is not None:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(parent, ignore_errors=True)


@dataclass
class MotoS3:
    """moto's S3 server in this process on a fixed loopback port; its objects live in this process,
    so stopping and starting the server again keeps them (an outage, not data loss)."""

    port: int
    bucket: str
    server: Any = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def environment(self) -> dict[str, str]:
        return {
            "OBJECT_STORAGE_PROVIDER": "s3",
            "OBJECT_STORAGE_BUCKET": self.bucket,
            "OBJECT_STORAGE_ENDPOINT": self.endpoint,
            "OBJECT_STORAGE_REGION": "us-east-1",
            "OBJECT_STORAGE_ACCESS_KEY": "bench-access-key",
            "OBJECT_STORAGE_SECRET_KEY": "bench-secret-key",
            "OBJECT_STORAGE_PATH_STYLE_ACCESS": "true",
        }


@contextmanager
def moto_s3() -> Iterator[MotoS3]:
    """An S3-compatible server with one empty bucket, stopped afterwards."""
    import logging

    import boto3

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    s3 = MotoS3(free_port(), f"scryon-bench-{uuid.uuid4().hex[:12]}")
    s3.start()
    try:
        env = s3.environment()
        boto3.session.Session().client(
            "s3",
            endpoint_url=s3.endpoint,
            region_name=env["OBJECT_STORAGE_REGION"],
            aws_access_key_id=env["OBJECT_STORAGE_ACCESS_KEY"],
            aws_secret_access_key=env["OBJECT_STORAGE_SECRET_KEY"],
        ).create_bucket(Bucket=s3.bucket)
        yield s3
    finally:
        s3.stop()


@dataclass
class DagsterDaemon:
    """``dagster-daemon run`` for the code location (it starts its own code server, which starts the
    run workers), killable and restartable. Every process it ever started is in one of its sessions."""

    env: dict[str, str]
    home: Path
    process: subprocess.Popen[bytes] | None = None
    sessions: list[int] = field(default_factory=list)
    starts: int = 0

    @property
    def log_path(self) -> Path:
        return self.home / "dagster-daemon.log"

    def start(self) -> None:
        self.starts += 1
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                dagster_daemon_command("run", "-m", "scryon_dagster.definitions"),
                env=self.env,
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.sessions.append(self.process.pid)

    def kill(self) -> None:
        """SIGKILL the daemon process alone, as a crash would: its code server and runs live on."""
        if self.process is not None:
            with suppress(ProcessLookupError):
                self.process.kill()
            self.process.wait(timeout=10)

    def processes(self) -> list[psutil.Process]:
        """Every live process of every session this daemon handle started."""
        found = []
        for process in psutil.process_iter():
            try:
                if os.getpgid(process.pid) in self.sessions:
                    found.append(process)
            except (ProcessLookupError, psutil.NoSuchProcess):
                continue
        return found

    def run_worker_pids(self) -> list[int]:
        pids = []
        for process in self.processes():
            with suppress(psutil.NoSuchProcess):
                if process_role(process) == "run_worker":
                    pids.append(process.pid)
        return pids

    def stop(self, grace_seconds: float = 30) -> None:
        """SIGTERM every session, then SIGKILL whatever is left after ``grace_seconds``."""
        for session in self.sessions:
            with suppress(ProcessLookupError):
                os.killpg(session, signal.SIGTERM)
        deadline = time.monotonic() + grace_seconds
        while self.processes() and time.monotonic() < deadline:
            time.sleep(0.5)
        for session in self.sessions:
            with suppress(ProcessLookupError):
                os.killpg(session, signal.SIGKILL)
        if self.process is not None:
            with suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)


@contextmanager
def dagster_daemon(env: dict[str, str], home: Path, storage_url: str) -> Iterator[DagsterDaemon]:
    """The daemon (sensors, run queue, run monitoring) on the production instance config and
    dagster-postgres storage at ``storage_url``; no webserver."""
    write_instance_yaml(home)
    full_env = {
        **os.environ,
        **env,
        "DAGSTER_HOME": str(home),
        "DAGSTER_POSTGRES_URL": dagster_postgres_url(storage_url),
    }
    daemon = DagsterDaemon(full_env, home)
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()
        kept = REPO_ROOT / "var" / "bench" / "dagster-daemon.last.log"
        kept.parent.mkdir(parents=True, exist_ok=True)
        with suppress(OSError):
            shutil.copy(daemon.log_path, kept)
