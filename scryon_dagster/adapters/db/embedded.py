"""The embedded default: a PostgreSQL server in a local data directory, for a laptop with only Python.

The server ships inside the ``pgserver`` wheel, so nothing is installed system-wide (run as root, it
runs the server as a dedicated system user, as PostgreSQL requires).
"""

from __future__ import annotations

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


def stop_embedded_postgres(data_dir: Path) -> None:
    """Stop the long-lived server of ``data_dir`` if it runs; its data stays."""
    data_dir = data_dir.expanduser().resolve()
    if not (data_dir / "postmaster.pid").exists():
        return
    server = _import_pgserver().get_server(data_dir, cleanup_mode="stop")
    server.cleanup()


def resolve_database_url(configured_url: str | None, embedded_data_dir: Path) -> str:
    """The configured SCRYON_DATABASE_URL, or the embedded default server's URL."""
    return configured_url or start_embedded_postgres(embedded_data_dir)
