"""The embedded default: a PostgreSQL server in a local data directory, for a laptop with only Python.

The server ships inside the ``pgserver`` wheel, so nothing is installed system-wide (run as root, it
runs the server as a dedicated system user, as PostgreSQL requires).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any


class EmbeddedPostgresError(RuntimeError):
    """The embedded PostgreSQL server could not be started."""


class EmbeddedPostgres:
    """A running embedded server. ``keep_running`` servers outlive this process until ``stop``."""

    def __init__(self, data_dir: Path, *, keep_running: bool = True) -> None:
        self.data_dir = data_dir.expanduser().resolve()
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        pgserver = _import_pgserver()
        try:
            self._server: Any = pgserver.get_server(self.data_dir, cleanup_mode=None if keep_running else "delete")
        except Exception as exc:
            raise EmbeddedPostgresError(f"embedded PostgreSQL failed to start in {self.data_dir}: {exc}") from exc
        self.url: str = str(self._server.get_uri())

    def stop(self) -> None:
        """Stop the server (a throwaway one also loses its data directory)."""
        self._server.cleanup()


def _import_pgserver() -> Any:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI): harmless here
        warnings.simplefilter("ignore")
        import pgserver

    return pgserver


def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or find) the long-lived server whose data lives in ``data_dir``; return its libpq URL."""
    return EmbeddedPostgres(data_dir, keep_running=True).url


def stop_embedded_postgres(data_dir: Path, *, force: bool = False) -> bool:
    """Stop the long-lived server of ``data_dir``; its data stays. False when it was not running.

    pgserver stops a server only when its last user lets go, counting users in ``.handle_pids.json``:
    a user that died without its exit handler (SIGTERM, SIGKILL) stays there for ever, so the pids of
    dead processes are dropped first. A live user (the demo, the API) keeps the server running unless
    ``force``: stopping it under them would fail their work.
    """
    data_dir = data_dir.expanduser().resolve()
    if not is_embedded_postgres_running(data_dir):
        return False
    server = _import_pgserver().get_server(data_dir, cleanup_mode="stop")  # registers this process
    users = server.global_process_id_list
    live = [pid for pid in users.get() if pid != os.getpid() and _alive(pid)]
    if live and not force:
        users.get_and_remove(os.getpid())
        raise EmbeddedPostgresError(
            f"embedded PostgreSQL in {data_dir} NOT stopped: still used by process(es) "
            f"{', '.join(map(str, live))} (a demo or API?); stop them first, or use `db stop --force`"
        )
    users.put([os.getpid()])  # this process is now its last user: cleanup stops it
    server.cleanup()
    if is_embedded_postgres_running(data_dir):
        raise EmbeddedPostgresError(f"embedded PostgreSQL in {data_dir} is still running after pg_ctl stop")
    return True


def is_embedded_postgres_running(data_dir: Path) -> bool:
    """Whether the server's postmaster (first line of ``postmaster.pid``) is alive."""
    try:
        first_line = (data_dir.expanduser().resolve() / "postmaster.pid").read_text().split("\n", 1)[0]
    except FileNotFoundError:
        return False
    return first_line.strip().isdigit() and _alive(int(first_line))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's (the server runs as `pgserver` under root)
        return True
    return True


def resolve_database_url(configured_url: str | None, embedded_data_dir: Path) -> str:
    """The configured SCRYON_DATABASE_URL, or the embedded default server's URL."""
    return configured_url or start_embedded_postgres(embedded_data_dir)
