"""The embedded default: a PostgreSQL server in a local data directory, for a laptop with only Python.

The server ships inside the ``pgserver`` wheel, so nothing is installed system-wide. It keeps
running after this process exits (the next start finds it) until ``stop_embedded_postgres``.
"""

from __future__ import annotations

import warnings
from pathlib import Path


class EmbeddedPostgresError(RuntimeError):
    """The embedded PostgreSQL server could not be started."""


def start_embedded_postgres(data_dir: Path, *, keep_running: bool = True) -> str:
    """Start (or find) the server whose data lives in ``data_dir``; return its libpq URL."""
    data_dir = data_dir.expanduser().resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI): harmless here
        warnings.simplefilter("ignore")
        import pgserver

        try:
            server = pgserver.get_server(data_dir, cleanup_mode=None if keep_running else "stop")
        except Exception as exc:
            raise EmbeddedPostgresError(f"embedded PostgreSQL failed to start in {data_dir}: {exc}") from exc
    return str(server.get_uri())


def stop_embedded_postgres(data_dir: Path) -> None:
    """Stop the server of ``data_dir`` if it runs; its data stays."""
    data_dir = data_dir.expanduser().resolve()
    if not (data_dir / "postmaster.pid").exists():
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        pgserver.get_server(data_dir, cleanup_mode="stop").cleanup()


def resolve_database_url(configured_url: str | None, embedded_data_dir: Path) -> str:
    """The configured SCRYON_DATABASE_URL, or the embedded default server's URL."""
    return configured_url or start_embedded_postgres(embedded_data_dir)
