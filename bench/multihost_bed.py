"""A test bed of separate hosts on one machine: Linux network namespaces joined by veth pairs on a
bridge — one host for the Dagster daemon and webserver, N worker hosts running Celery batch workers
(``SCRYON_BATCH_EXECUTOR=celery``) — and the shared services reachable only over that network.

In the root namespace, on the bridge's address (the "services host"): a PostgreSQL cluster of the bed's
own (call database and Dagster's storage), the S3 server (moto), the provider simulator, and a TCP
relay (socat) to the machine's RabbitMQ, which listens on loopback only and admits ``guest`` only
from loopback; the bed uses a vhost of its own there. Each host has its own DAGSTER_HOME and TMPDIR;
object storage and the step logs are in S3 — no directory is shared between hosts by design (the
namespaces isolate the network, not the filesystem).

Needs root (``ip netns``). Everything is torn down on exit, Ctrl-C and SIGTERM
(``exit_cleanly_on_sigterm``).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

import httpx
import psycopg
import yaml
from _harness import (
    REPO_ROOT,
    SIMULATOR_KEY,
    CallSystem,
    postgres_bin_dir,
    stop_process_group,
)

from scryon_dagster.adapters.db.migrate import upgrade_to_head
from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.object_store import build_object_store
from scryon_dagster.dagster_cli import dagster_daemon_command
from scryon_dagster.partitions import BATCH_TAG
from scryon_dagster.settings import load_settings
from scryon_dagster.simulator import SimulatorServer
from scryon_dagster.simulator.samples import generate_sample_audio

MULTIHOST_INSTANCE_YAML = REPO_ROOT / "deploy" / "dagster.multihost.yaml"
WEBSERVER_PORT = 3000
DEFINITIONS = ("-m", "scryon_dagster.definitions")
S3_REGION = "us-east-1"
S3_ACCESS_KEY = "bed-access-key"
S3_SECRET_KEY = "bed-secret-key"
RABBITMQ_LOCAL = ("127.0.0.1", 5672)


def netns_available() -> str | None:
    """None when this process may create network namespaces, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None or shutil.which("socat") is None or shutil.which("rabbitmqctl") is None:
        return "the bed needs ip (iproute2), socat and rabbitmqctl"
    probe = f"scryon-probe-{uuid.uuid4().hex[:6]}"
    created = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if created.returncode != 0:
        return f"ip netns add is not permitted here: {created.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def write_instance_yaml(home: Path, *, batch_runs: int) -> None:
    """deploy/dagster.multihost.yaml with room for ``batch_runs`` batch runs at once: one per Celery
    worker process of the bed, as docs/deployment.md tells an operator to size it."""
    config = yaml.safe_load(MULTIHOST_INSTANCE_YAML.read_text())
    runs = config["concurrency"]["runs"]
    for limit in runs["tag_concurrency_limits"]:
        if limit["key"] == BATCH_TAG:
            limit["limit"] = batch_runs
    runs["max_concurrent_runs"] = max(runs["max_concurrent_runs"], batch_runs + 2)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))


def _ip(*arguments: str, netns: str | None = None) -> None:
    command = ["ip", *(["-n", netns] if netns else []), *arguments]
    subprocess.run(command, check=True, capture_output=True, text=True)


@dataclass
class Host:
    """One network namespace with its address, its own directory and the process groups it runs."""

    name: str
    netns: str
    address: str
    home: Path
    sessions: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, role: str, command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.home / f"{role}.log").open("ab")
        process = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, *command],
            env={**env, "DAGSTER_HOME": str(self.home / "dagster_home"), "TMPDIR": str(self.home / "tmp")},
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.sessions.append(process)
        return process

    def pids(self) -> list[int]:
        listed = subprocess.run(["ip", "netns", "pids", self.netns], capture_output=True, text=True)
        return [int(pid) for pid in listed.stdout.split()]

    def kill(self) -> None:
        """SIGKILL every process of the host at once, as a power loss would (no goodbye to the broker
        beyond the kernel closing the sockets)."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for process in self.sessions:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)

    def stop(self) -> None:
        for process in self.sessions:
            if process.poll() is None:
                stop_process_group(process)
        self.kill()


@dataclass
class Bed:
    """The running bed: the services host's address, the hosts, and the environment they share."""

    gateway: str
    control: Host
    workers: list[Host]
    env: dict[str, str]
    system: CallSystem
    storage_url: str
    worker_concurrency: int

    @property
    def webserver_url(self) -> str:
        return f"http://{self.control.address}:{WEBSERVER_PORT}"

    def worker_names(self) -> list[str]:
        return [host.name for host in self.workers]

    def start(self) -> None:
        """Start the daemon and webserver on the control host and a Celery worker on each worker host;
        return once the webserver answers (the calls can be queued before, to be picked up at once)."""
        bin_dir = Path(sys.executable).parent
        self.control.start("daemon", dagster_daemon_command("run", *DEFINITIONS), self.env)
        self.control.start(
            "webserver",
            [str(bin_dir / "dagster-webserver"), "-h", self.control.address, "-p", str(WEBSERVER_PORT), *DEFINITIONS],
            self.env,
        )
        for host in self.workers:
            host.start(
                "celery-worker",
                [
                    *(str(bin_dir / "celery"), "-A", "scryon_dagster.celery_worker", "worker", "-Q", "dagster"),
                    *("--prefetch-multiplier=1", f"--concurrency={self.worker_concurrency}", "-n", f"{host.name}@%h"),
                    *("--loglevel=INFO", "--without-gossip", "--without-mingle"),
                ],
                self.env,
            )
        _wait_for_webserver(self, timeout_seconds=180)

    def kill_worker_host(self, host: Host) -> None:
        """Take a worker host off the network for good: kill its processes, delete its namespace."""
        host.kill()
        subprocess.run(["ip", "netns", "del", host.netns], capture_output=True)


class _Network:
    """The bridge, its address in the root namespace, and one veth-joined namespace per host."""

    def __init__(self) -> None:
        self.tag = uuid.uuid4().hex[:5]
        self.subnet = self._free_subnet()
        self.bridge = f"scb{self.tag}"
        self.gateway = f"{self.subnet}.1"
        self.namespaces: list[str] = []

    @staticmethod
    def _free_subnet() -> str:
        routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True).stdout
        for _ in range(50):
            subnet = f"10.{random.randint(200, 250)}.{random.randint(0, 255)}"
            if f"{subnet}.0/24" not in routes:
                return subnet
        raise RuntimeError("no free 10.x.y.0/24 subnet for the bed")

    def create(self) -> None:
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    def add_host(self, index: int) -> tuple[str, str]:
        netns = f"scryon-{self.tag}-h{index}"
        outside = f"scv{self.tag}h{index}"
        _ip("netns", "add", netns)
        self.namespaces.append(netns)
        _ip("link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", netns)
        _ip("link", "set", outside, "master", self.bridge, "up")
        address = f"{self.subnet}.{10 + index}"
        _ip("addr", "add", f"{address}/24", "dev", "eth0", netns=netns)
        _ip("link", "set", "eth0", "up", netns=netns)
        _ip("link", "set", "lo", "up", netns=netns)
        return netns, address

    def destroy(self) -> None:
        for netns in self.namespaces:
            subprocess.run(["ip", "netns", "del", netns], capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)


@contextlib.contextmanager
def _postgres_on(address: str, subnet: str, workdir: Path) -> Iterator[str]:
    """A PostgreSQL cluster of the bed's own listening on ``address`` only, trusting the bed's subnet;
    yields its maintenance URL. Runs as the ``postgres`` user (it refuses root)."""
    bin_dir = postgres_bin_dir()
    data_dir = workdir / "postgres"
    data_dir.mkdir()
    shutil.chown(data_dir, "postgres", "postgres")
    run_as = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*run_as, str(bin_dir / "initdb"), "-D", str(data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    with (data_dir / "pg_hba.conf").open("a") as hba:
        hba.write(f"host all all {subnet}.0/24 trust\n")
    options = (
        f"-p 5432 -c listen_addresses={address} -c unix_socket_directories={data_dir} -c max_connections=400 "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
    pg_ctl = [*run_as, str(bin_dir / "pg_ctl"), "-D", str(data_dir)]
    subprocess.run([*pg_ctl, "start", "-w", "-o", options, "-l", str(data_dir / "server.log")], check=True, timeout=120)
    try:
        yield f"postgresql://postgres@{address}:5432/postgres"
    finally:
        subprocess.run([*pg_ctl, "stop", "-m", "immediate", "-w"], capture_output=True, timeout=60)


def _create_database(server_url: str, name: str) -> str:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
    return server_url.rsplit("/", 1)[0] + f"/{name}"


@contextlib.contextmanager
def _s3_on(address: str) -> Iterator[tuple[str, str]]:
    """moto's S3 server on ``address`` with one bucket; yields (endpoint, bucket)."""
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    with _listening_socket_port(address) as port:
        server = ThreadedMotoServer(ip_address=address, port=port, verbose=False)
    server.start()
    endpoint = f"http://{address}:{port}"
    bucket = f"scryon-bed-{uuid.uuid4().hex[:10]}"
    try:
        boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint,
            region_name=S3_REGION,
            aws_access_key_id=S3_ACCESS_KEY,
            aws_secret_access_key=S3_SECRET_KEY,
        ).create_bucket(Bucket=bucket)
        yield endpoint, bucket
    finally:
        server.stop()


@contextlib.contextmanager
def _listening_socket_port(address: str) -> Iterator[int]:
    import socket

    with socket.socket() as probe:
        probe.bind((address, 0))
        yield int(probe.getsockname()[1])


@contextlib.contextmanager
def _rabbitmq_relay(address: str) -> Iterator[str]:
    """A vhost of the bed's own on the machine's RabbitMQ, relayed to ``address``:5672; yields the
    broker URL the hosts use."""
    vhost = f"scryon-bed-{uuid.uuid4().hex[:8]}"
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True, capture_output=True, timeout=60)
    subprocess.run(
        ["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    relay = subprocess.Popen(
        [
            "socat",
            f"TCP-LISTEN:5672,bind={address},fork,reuseaddr",
            f"TCP:{RABBITMQ_LOCAL[0]}:{RABBITMQ_LOCAL[1]}",
        ],
        start_new_session=True,
    )
    try:
        yield f"pyamqp://guest:guest@{address}:5672/{vhost}"
    finally:
        stop_process_group(relay)
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True, timeout=60)


def host_environment(
    *,
    gateway: str,
    calls_url: str,
    storage_url: str,
    broker_url: str,
    simulator_base: str,
    s3_endpoint: str,
    bucket: str,
    overrides: dict[str, str],
) -> dict[str, str]:
    """What every host gets: the services host's addresses only (no loopback service)."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "HOME": os.environ.get("HOME", "/root"),
        "PYTHONPATH": str(REPO_ROOT),
        "SCRYON_DATABASE_URL": calls_url,
        "DAGSTER_POSTGRES_URL": storage_url.replace("postgresql://", "postgresql+psycopg2://", 1),
        "SCRYON_BATCH_EXECUTOR": "celery",
        "SCRYON_CELERY_BROKER_URL": broker_url,
        "LEMONFOX_BASE_URL": f"{simulator_base}/v1",
        "LEMONFOX_API_KEY": SIMULATOR_KEY,
        "PYANNOTE_BASE_URL": simulator_base,
        "PYANNOTE_API_KEY": SIMULATOR_KEY,
        "PYANNOTE_ENABLED": "true",
        "LLM_BASE_URL": f"{simulator_base}/v1",
        "LLM_API_KEY": SIMULATOR_KEY,
        "OBJECT_STORAGE_PROVIDER": "s3",
        "OBJECT_STORAGE_BUCKET": bucket,
        "OBJECT_STORAGE_ENDPOINT": s3_endpoint,
        "OBJECT_STORAGE_REGION": S3_REGION,
        "OBJECT_STORAGE_ACCESS_KEY": S3_ACCESS_KEY,
        "OBJECT_STORAGE_SECRET_KEY": S3_SECRET_KEY,
        "OBJECT_STORAGE_PATH_STYLE_ACCESS": "true",
        # Dagster's step logs (S3ComputeLogManager in deploy/dagster.multihost.yaml) in the same server
        "DAGSTER_COMPUTE_LOGS_BUCKET": bucket,
        "AWS_ENDPOINT_URL_S3": s3_endpoint,
        "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY,
        "AWS_DEFAULT_REGION": S3_REGION,
        "SCRYON_DIARIZATION_POLL_INTERVAL_SECONDS": "1",
        **overrides,
    }


def _wait_for_webserver(bed: Bed, timeout_seconds: float) -> None:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{bed.webserver_url}/server_info", timeout=2).status_code == 200:
                return
        time.sleep(1)
    raise RuntimeError(f"the webserver on {bed.control.address} did not come up; see {bed.control.home}")


@contextlib.contextmanager
def multihost_bed(
    *,
    worker_hosts: int,
    worker_concurrency: int = 2,
    profile: str = "fast",
    overrides: dict[str, str] | None = None,
    keep_logs_in: Path | None = None,
) -> Iterator[Bed]:
    """Create the network, start the services, and set up the control host (daemon + webserver) and
    ``worker_hosts`` worker hosts, whose processes ``Bed.start`` starts; tear everything down afterwards.
    The calling process gets the hosts' environment too (so ``load_settings`` here sees what the hosts
    see) and enqueues through it."""
    workdir = Path(tempfile.mkdtemp(prefix="scryon-multihost-"))
    workdir.chmod(0o755)
    network = _Network()
    saved_environ = dict(os.environ)
    hosts: list[Host] = []
    try:
        network.create()
        with (
            _postgres_on(network.gateway, network.subnet, workdir) as server_url,
            _s3_on(network.gateway) as (s3_endpoint, bucket),
            _rabbitmq_relay(network.gateway) as broker_url,
            SimulatorServer(host=network.gateway, profile=profile) as simulator,
        ):
            calls_url = _create_database(server_url, "scryon_calls")
            storage_url = _create_database(server_url, "dagster")
            upgrade_to_head(calls_url)
            env = host_environment(
                gateway=network.gateway,
                calls_url=calls_url,
                storage_url=storage_url,
                broker_url=broker_url,
                simulator_base=simulator.base_url,
                s3_endpoint=s3_endpoint,
                bucket=bucket,
                overrides=overrides or {},
            )
            for index, name in enumerate(["control", *(f"worker{n}" for n in range(1, worker_hosts + 1))]):
                netns, address = network.add_host(index)
                home = workdir / name
                for directory in (home / "dagster_home", home / "tmp"):
                    directory.mkdir(parents=True)
                write_instance_yaml(home / "dagster_home", batch_runs=worker_hosts * worker_concurrency)
                hosts.append(Host(name, netns, address, home))
            control, workers = hosts[0], hosts[1:]
            os.environ.update(env)
            settings = load_settings()
            samples = generate_sample_audio(workdir / "samples")
            with CallDatabase(calls_url, max_connections=8) as db:
                system = CallSystem(calls_url, workdir, simulator, env, db, build_object_store(settings), samples)
                yield Bed(network.gateway, control, workers, env, system, storage_url, worker_concurrency)
    finally:
        for host in reversed(hosts):
            host.stop()
        if keep_logs_in is not None:
            for host in hosts:
                for log in host.home.glob("*.log"):
                    keep_logs_in.mkdir(parents=True, exist_ok=True)
                    shutil.copy(log, keep_logs_in / f"{host.name}-{log.name}")
        network.destroy()
        os.environ.clear()
        os.environ.update(saved_environ)
        shutil.rmtree(workdir, ignore_errors=True)


def celery_workers_of_runs(bed: Bed) -> dict[str, str]:
    """Per run id: the Celery worker (``<host>@<machine>``) that executed its step, from Dagster's
    engine events — which host each batch ran on. A step redelivered after a lost host shows the
    last worker."""
    import dagster as dg

    workers: dict[str, str] = {}
    with dg.DagsterInstance.from_config(str(bed.control.home / "dagster_home")) as instance:
        for record in instance.get_run_records():
            run_id = record.dagster_run.run_id
            for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
                event = entry.dagster_event
                data = event.engine_event_data if event is not None else None
                worker = data.metadata.get("Celery worker") if data is not None else None
                if isinstance(worker, dg.TextMetadataValue) and worker.text:
                    workers[run_id] = worker.text
    return workers


def completions_per_call(db: CallDatabase, call_ids: list[UUID]) -> dict[UUID, int]:
    """How often each call became COMPLETED (a call processed twice shows 2)."""
    rows = db.query(
        "SELECT call_id, count(*) AS n FROM call_processing_events WHERE call_id = ANY(%s) AND stage = 'STATUS' "
        "AND error_message = 'status -> COMPLETED' GROUP BY call_id",
        (call_ids,),
    )
    counts = {row["call_id"]: int(row["n"]) for row in rows}
    return {call_id: counts.get(call_id, 0) for call_id in call_ids}
