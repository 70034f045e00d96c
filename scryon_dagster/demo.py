"""The main command on the embedded default: a local PostgreSQL, local artifact storage, the provider
SIMULATOR (unless real provider keys are set), the sample calls queued, and Dagster (UI + daemon)
picking them up through the QUEUED sensor."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from uuid import UUID

from scryon_dagster.adapters.audio_probe import AudioProbe
from scryon_dagster.adapters.db.embedded import is_embedded_postgres_running, resolve_database_url
from scryon_dagster.adapters.db.migrate import upgrade_to_head
from scryon_dagster.adapters.db.records import NewCall
from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.object_store import build_object_store
from scryon_dagster.dagster_cli import COMMAND_MODULE as DAGSTER_CLI
from scryon_dagster.dagster_cli import dagster_daemon_command
from scryon_dagster.domain.calls import TERMINAL_STATUSES, Direction
from scryon_dagster.pipeline.intake import enqueue_call
from scryon_dagster.settings import Settings, load_settings

VAR_DIR = Path("var")
DEFINITIONS_MODULE = "scryon_dagster.definitions"
DAEMON_ARGUMENTS = ("run", "-m", DEFINITIONS_MODULE, "--log-level", "warning")
_LOCAL_INSTANCE_YAML = Path(__file__).with_name("deploy") / "dagster.local.yaml"
_SIMULATOR_KEY = "simulator-not-a-real-key"


class DemoError(RuntimeError):
    """The demo cannot start; the message says what to do."""


def run_demo(settings: Settings, *, ui_port: int, open_ui: bool, wait_seconds: float = 600) -> None:
    if open_ui:
        ensure_port_free(ui_port)
    try:
        _run_demo(settings, ui_port=ui_port, open_ui=open_ui, wait_seconds=wait_seconds)
    finally:
        print(_what_stays_running(settings))


def ensure_port_free(port: int, host: str = "127.0.0.1") -> None:
    """Fail before starting anything when the UI's port is taken: `dagster dev` would only log the error
    and keep running without a UI."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            raise DemoError(
                f"port {port} on {host} is already in use (another demo or `dagster dev`?): stop it, "
                f"or choose another port with `./run.sh demo --port {port + 1}`"
            ) from None


def _what_stays_running(settings: Settings) -> str:
    if settings.scryon_database_url:
        return "demo stopped (Dagster and the SIMULATOR); the database of SCRYON_DATABASE_URL is not the demo's"
    data_dir = settings.scryon_embedded_pg_dir.resolve()
    if not is_embedded_postgres_running(data_dir):
        return "demo stopped: nothing of it is left running"
    return (
        f"demo stopped (Dagster and the SIMULATOR); the embedded PostgreSQL ({data_dir}) stays running for the "
        "next demo, the API and the CLI: `.venv/bin/scryon-dagster db stop` stops it"
    )


def _run_demo(settings: Settings, *, ui_port: int, open_ui: bool, wait_seconds: float) -> None:
    # The demo's children (webserver, daemon, run workers) inherit this process's environment.
    database_url = resolve_database_url(settings.scryon_database_url, settings.scryon_embedded_pg_dir)
    upgrade_to_head(database_url)
    os.environ["SCRYON_DATABASE_URL"] = database_url
    os.environ["DAGSTER_HOME"] = str(_prepare_dagster_home(settings))
    # every process must find the same artifact directory, whatever its working directory
    os.environ.setdefault("OBJECT_STORAGE_LOCAL_PATH", str(settings.object_storage_local_path.resolve()))
    if shutil.which(settings.scryon_ffmpeg_path) is None:
        # the documented fallback, chosen once here rather than warned about by every run
        os.environ["SCRYON_FFMPEG_PATH"] = _bundled_ffmpeg()
        print("ffmpeg: the binary of the imageio-ffmpeg wheel (no ffmpeg on PATH)")

    with ExitStack() as stack:
        if not _real_providers_configured(settings):
            from scryon_dagster.simulator import SimulatorServer

            simulator = stack.enter_context(SimulatorServer(profile="fast"))
            for name, value in _simulator_env(simulator.base_url).items():
                os.environ.setdefault(name, value)
            print(f"provider SIMULATOR at {simulator.base_url} (no real provider keys set)")
        call_ids = _enqueue_samples(load_settings(), database_url)
        if open_ui:
            print(f"Dagster UI: http://127.0.0.1:{ui_port}  (Ctrl-C stops Dagster and the SIMULATOR)")
            _run_until_interrupted(_dagster_dev_command(ui_port))
        else:
            daemon = subprocess.Popen(dagster_daemon_command(*DAEMON_ARGUMENTS))
            try:
                _wait_for_terminal(database_url, call_ids, wait_seconds)
            finally:
                daemon.terminate()
                daemon.wait(timeout=30)


def _dagster_dev_command(ui_port: int) -> list[str]:
    """`dagster dev`, quiet: its daemon logs two lines per sensor tick at INFO (every 5 s), and the
    command warns that `dg dev` supersedes it (`dg` is not installed here). Warnings and errors still show.
    Through `scryon_dagster.dagster_cli`: each run's worker is forked from a process that has already
    imported Dagster and the code location (SCRYON_RUN_WORKER_START=spawn for Dagster's own)."""
    return [
        sys.executable,
        "-W",
        "ignore:Function `dev_command` is superseded",
        "-m",
        DAGSTER_CLI,
        "dev",
        "-m",
        DEFINITIONS_MODULE,
        "-p",
        str(ui_port),
        "-h",
        "127.0.0.1",
        "--log-level",
        "warning",
    ]


def _bundled_ffmpeg() -> str:
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def _prepare_dagster_home(settings: Settings) -> Path:
    home = (settings.dagster_home or VAR_DIR / "dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copyfile(_LOCAL_INSTANCE_YAML, home / "dagster.yaml")
    return home


def _real_providers_configured(settings: Settings) -> bool:
    return settings.lemonfox_api_key is not None or settings.llm_api_key is not None


def _simulator_env(base_url: str) -> dict[str, str]:
    return {
        "LEMONFOX_BASE_URL": f"{base_url}/v1",
        "LEMONFOX_API_KEY": _SIMULATOR_KEY,
        "PYANNOTE_BASE_URL": base_url,
        "PYANNOTE_API_KEY": _SIMULATOR_KEY,
        "PYANNOTE_ENABLED": "true",
        "SCRYON_DIARIZATION_POLL_INTERVAL_SECONDS": "0.5",
        # One sample is a three-party call: the two-speaker cap for phone calls would merge two of its
        # voices (pyannoteAI's maxSpeakers does the same), so the samples are diarized uncapped.
        "SCRYON_DIARIZATION_HINT_TWO_SPEAKERS": "false",
        "LLM_BASE_URL": f"{base_url}/v1",
        "LLM_API_KEY": _SIMULATOR_KEY,
    }


def _enqueue_samples(settings: Settings, database_url: str) -> list[UUID]:
    """Queue each sample call once per fresh var/ directory; later demos show the same calls."""
    from scryon_dagster.simulator.samples import generate_sample_audio

    samples_dir = VAR_DIR / "samples"
    ledger = samples_dir / "enqueued.json"
    if ledger.exists():
        call_ids = [UUID(value) for value in json.loads(ledger.read_text()).values()]
        print(f"{len(call_ids)} sample calls were queued by an earlier demo (delete var/ to start afresh)")
        return call_ids
    store = build_object_store(settings)
    audio_probe = AudioProbe.from_settings(settings)
    queued: dict[str, str] = {}
    with CallDatabase(database_url) as db:
        for sample_path in generate_sample_audio(samples_dir):
            sample = sample_path.sample
            with sample_path.path.open("rb") as audio:
                record = enqueue_call(
                    db,
                    store,
                    audio=audio,
                    filename=sample_path.path.name,
                    user_reference=f"demo-{sample.slug}",
                    user_display_name=sample.user_display_name,
                    call=NewCall(
                        title=sample.title,
                        direction=Direction(sample.direction),
                        contact_name=sample.contact_name,
                        phone_number=sample.phone_number,
                    ),
                    max_bytes=settings.max_file_size,
                    audio_probe=audio_probe,
                )
            queued[sample.slug] = str(record.id)
            print(f"queued sample call {record.id} ({sample.slug})")
    ledger.write_text(json.dumps(queued, indent=2))
    return [UUID(value) for value in queued.values()]


def _run_until_interrupted(command: list[str]) -> None:
    process = subprocess.Popen(command)
    try:
        process.wait()
    except KeyboardInterrupt:
        process.terminate()
        process.wait(timeout=60)


def _wait_for_terminal(database_url: str, call_ids: list[UUID], wait_seconds: float) -> None:
    deadline = time.monotonic() + wait_seconds
    with CallDatabase(database_url) as db:
        while True:
            calls = db.get_calls(call_ids)
            finished = all(call.status in TERMINAL_STATUSES for call in calls.values())
            if finished or time.monotonic() > deadline:
                break
            time.sleep(1)
    for call_id, call in calls.items():
        print(f"{call_id}  {call.status}" + (f" ({call.error_reason})" if call.error_reason else ""))
    if not finished:
        raise SystemExit("some sample calls did not finish in time")
