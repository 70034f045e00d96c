"""Helpers of the end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from uuid import UUID

from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.domain.calls import TERMINAL_STATUSES, CallStatus

DEADLINE_SECONDS = 300
# the code location, as Dagster's command line takes it
LOCATION = ("-m", "scryon_dagster.definitions")


def wait_until_terminal(db: CallDatabase, call_ids: list[UUID]) -> dict[UUID, tuple[CallStatus, str | None]]:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        calls = db.get_calls(call_ids)
        if all(call.status in TERMINAL_STATUSES for call in calls.values()) or time.monotonic() > deadline:
            return {call_id: (call.status, call.error_reason) for call_id, call in calls.items()}
        time.sleep(1)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def stop_process_group(process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Stop a Dagster process started in a session of its own and everything it started: SIGTERM, then
    SIGKILL after ``timeout``."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
