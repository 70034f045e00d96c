"""The operator commands a newcomer meets first: `db stop` really stops (or says it did not), and the
demo refuses a UI port that is taken before starting anything."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from scryon_dagster.adapters.db.embedded import is_embedded_postgres_running
from scryon_dagster.cli import main

_USE_THE_SERVER = (
    "import pathlib, sys, time\n"
    "from scryon_dagster.adapters.db.embedded import start_embedded_postgres\n"
    "print(start_embedded_postgres(pathlib.Path(sys.argv[1])), flush=True)\n"
    "time.sleep(600)\n"
)


@pytest.fixture
def data_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    # Not under pytest's basetemp: that is private to root, and the server runs as its own user.
    parent = Path(tempfile.mkdtemp(prefix="scryon-test-dbstop-"))
    parent.chmod(0o755)
    monkeypatch.setenv("SCRYON_EMBEDDED_PG_DIR", str(parent / "postgres"))
    monkeypatch.delenv("SCRYON_DATABASE_URL", raising=False)
    yield parent / "postgres"
    main(["db", "stop", "--force"])
    shutil.rmtree(parent, ignore_errors=True)


def _server_user(data_dir: Path) -> subprocess.Popen[str]:
    """A process that starts (or finds) the server and uses it, as the demo and the API do."""
    user = subprocess.Popen([sys.executable, "-c", _USE_THE_SERVER, str(data_dir)], stdout=subprocess.PIPE, text=True)
    assert user.stdout is not None
    assert user.stdout.readline().startswith("postgresql://")
    return user


def test_db_stop_stops_a_server_whose_last_user_was_killed(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    user = _server_user(data_dir)
    user.send_signal(signal.SIGTERM)  # no exit handler runs: its pid stays in pgserver's list
    user.wait(timeout=30)
    assert user.pid in json.loads((data_dir / ".handle_pids.json").read_text())

    assert main(["db", "stop"]) == 0

    assert "embedded PostgreSQL stopped" in capsys.readouterr().out
    assert not is_embedded_postgres_running(data_dir)
    assert main(["db", "stop"]) == 0
    assert "was not running" in capsys.readouterr().out


def test_db_stop_says_it_did_not_stop_a_server_in_use_and_force_stops_it(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    user = _server_user(data_dir)
    try:
        assert main(["db", "stop"]) == 1
        assert f"NOT stopped: still used by process(es) {user.pid}" in capsys.readouterr().err
        assert is_embedded_postgres_running(data_dir)

        assert main(["db", "stop", "--force"]) == 0
        assert not is_embedded_postgres_running(data_dir)
    finally:
        user.kill()
        user.wait(timeout=30)


def test_the_demo_refuses_a_taken_ui_port_before_starting_anything(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # nothing may be created in var/ either
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        assert main(["demo", "--port", str(port)]) == 2

    error = capsys.readouterr().err
    assert f"port {port} on 127.0.0.1 is already in use" in error
    assert f"./run.sh demo --port {port + 1}" in error
    assert not (tmp_path / "var").exists()
