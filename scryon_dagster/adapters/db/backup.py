"""PostgreSQL's own client tools for backups: ``pg_dump`` out, ``psql`` in, and the SQL a restore needs.

A plain-SQL dump is only as good as the ``pg_dump`` that wrote it: it must be of the server's major
version (an older one refuses to dump a newer server; a newer one may write SQL an older server cannot
run), and the ``psql`` that loads it must be of the target server's. The tools are looked for on PATH,
in Debian's ``/usr/lib/postgresql/<major>/bin`` and among the binaries of the ``pgserver`` wheel that runs
the embedded default server.

Passwords never reach a command line (``ps`` shows those to every local user): they go through
``PGPASSWORD``. The tools' error output can quote row data (a failing COPY line) or connection details,
so only its error lines reach an exception, with every quoted value masked.
"""

from __future__ import annotations

import importlib.util
import io
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, Literal
from uuid import UUID

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from scryon_dagster.adapters.db.repository import CallDatabase

PostgresToolName = Literal["pg_dump", "psql"]
DEBIAN_TOOL_DIRECTORIES = "/usr/lib/postgresql/*/bin"
_VERSION_OUTPUT = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")
# "pg_dump: error: ...", "psql: error: ...", "ERROR:  ...": the tools' and the server's error lines, never
# the LINE, CONTEXT or DETAIL lines that quote the statement or row being loaded
_ERROR_LINE = re.compile(r"^((pg_dump|psql)(:[^:]*:\d+)?: )?(error|ERROR|FATAL):")
_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'")
_MAX_ERROR_LINES = 3
_COPY_CHUNK_BYTES = 1024 * 1024


class PostgresToolError(RuntimeError):
    """A PostgreSQL client tool is missing, of the wrong version, or failed."""


@dataclass(frozen=True)
class PostgresTool:
    name: PostgresToolName
    path: Path
    version: str
    """As the tool reports it, e.g. ``15.20``."""

    @property
    def major_version(self) -> int:
        return int(self.version.split(".")[0])


# --- finding the tools ---------------------------------------------------------------------------


def server_version(database_url: str) -> str:
    """The server's version, e.g. ``15.20``."""
    with psycopg.connect(database_url, connect_timeout=10) as connection:
        number = int(connection.info.server_version)
    # server_version_num is 150020 for 15.20 (since PostgreSQL 10: major * 10000 + minor)
    return f"{number // 10000}.{number % 10000}"


def find_postgres_tool(name: PostgresToolName, major_version: int) -> PostgresTool:
    """The first ``name`` of the server's major version on PATH, in Debian's directories or in the
    ``pgserver`` wheel; PostgresToolError saying what to install when there is none."""
    seen: list[PostgresTool] = []
    for path in _candidate_paths(name):
        tool = _identify(name, path)
        if tool is None:
            continue
        if tool.major_version == major_version:
            return tool
        seen.append(tool)
    found = ", ".join(f"{tool.version} at {tool.path}" for tool in seen) or "none"
    raise PostgresToolError(
        f"{name} of PostgreSQL {major_version} is needed (the server's major version); found: {found}. "
        f"Install the PostgreSQL {major_version} client tools (Debian/Ubuntu: apt-get install "
        f"postgresql-client-{major_version}; elsewhere the postgresql@{major_version} package) "
        f"or put their bin directory first on PATH"
    )


def _candidate_paths(name: PostgresToolName) -> Iterator[Path]:
    on_path = shutil.which(name)
    if on_path:
        yield Path(on_path)
    for directory in sorted(Path("/").glob(DEBIAN_TOOL_DIRECTORIES.lstrip("/")), reverse=True):
        yield directory / name
    # found without importing pgserver (its import has side effects on the environment)
    spec = importlib.util.find_spec("pgserver")
    for package_dir in (spec.submodule_search_locations or []) if spec else []:
        yield Path(package_dir) / "pginstall" / "bin" / name


def _identify(name: PostgresToolName, path: Path) -> PostgresTool | None:
    # Debian's /usr/bin/pg_dump is pg_wrapper, which picks a version per invocation (a remote host
    # may get another than --version reports): only real binaries are trusted.
    if not path.is_file() or not os.access(path, os.X_OK) or path.resolve().name != name:
        return None
    try:
        output = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = _VERSION_OUTPUT.search(output)
    if match is None:
        return None
    return PostgresTool(name, path, f"{match[1]}.{match[2] or 0}")


# --- running them --------------------------------------------------------------------------------


def _connection_arguments(database_url: str) -> tuple[str, dict[str, str]]:
    """(conninfo without the password, the environment with PGPASSWORD when there is one)."""
    parameters = conninfo_to_dict(database_url)
    password = parameters.pop("password", None)
    environment = dict(os.environ)
    if password is not None:
        environment["PGPASSWORD"] = str(password)
    return make_conninfo(**{key: str(value) for key, value in parameters.items() if value is not None}), environment


def _failure(tool: PostgresTool, returncode: int, errors: IO[bytes]) -> PostgresToolError:
    errors.seek(0)
    lines = errors.read().decode(errors="replace").splitlines()
    reported = [_QUOTED.sub('"…"', line.strip()) for line in lines if _ERROR_LINE.search(line)]
    detail = "; ".join(reported[:_MAX_ERROR_LINES]) or "no error message"
    return PostgresToolError(f"{tool.name} {tool.version} failed with exit code {returncode}: {detail}")


class _DumpOutput(io.RawIOBase):
    """pg_dump's standard output as a stream; at its end, a failed dump raises instead of ending
    quietly, so an upload reading it fails rather than storing a truncated dump."""

    def __init__(self, tool: PostgresTool, process: subprocess.Popen[bytes], errors: IO[bytes]) -> None:
        super().__init__()
        assert process.stdout is not None
        self._tool = tool
        self._process = process
        self._stdout = process.stdout
        self._errors = errors

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        chunk = self._stdout.read(len(view))
        if not chunk:
            returncode = self._process.wait()
            if returncode != 0:
                raise _failure(self._tool, returncode, self._errors)
        view[: len(chunk)] = chunk
        return len(chunk)


@contextmanager
def pg_dump_output(tool: PostgresTool, database_url: str) -> Iterator[BinaryIO]:
    """A plain-SQL dump of the database, streamed from ``pg_dump``: one snapshot of the whole database
    (a repeatable-read transaction), so concurrent writers never make it inconsistent. Objects come
    without owners or grants (``--no-owner --no-privileges``): a restore makes them the restoring role's."""
    conninfo, environment = _connection_arguments(database_url)
    command = [str(tool.path), "--format=plain", "--no-owner", "--no-privileges", "--dbname", conninfo]
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, env=environment)
        try:
            yield io.BufferedReader(_DumpOutput(tool, process, errors))
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
            assert process.stdout is not None
            process.stdout.close()


def run_psql_script(tool: PostgresTool, database_url: str, script: Iterable[bytes]) -> None:
    """Run an SQL script (a plain dump) through ``psql`` in one transaction, stopping at the first error:
    the database gets all of it or none of it."""
    conninfo, environment = _connection_arguments(database_url)
    command = [
        str(tool.path),
        "--no-psqlrc",
        "--quiet",
        "--single-transaction",
        "--set=ON_ERROR_STOP=1",
        "--dbname",
        conninfo,
    ]
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors, env=environment
        )
        assert process.stdin is not None
        try:
            # a broken pipe means psql stopped at an error: its exit code and message say which
            with suppress(BrokenPipeError), process.stdin:
                for chunk in script:
                    process.stdin.write(chunk)
        except BaseException:
            process.kill()
            process.wait()
            raise
        returncode = process.wait()
        if returncode != 0:
            raise _failure(tool, returncode, errors)


def chunks_of(stream: io.BufferedIOBase) -> Iterator[bytes]:
    while chunk := stream.read(_COPY_CHUNK_BYTES):
        yield chunk


# --- the SQL of a restore ------------------------------------------------------------------------


def user_relations(database_url: str) -> list[str]:
    """Tables, views and sequences outside PostgreSQL's own schemas, by qualified name (empty: the
    database is empty enough to restore into)."""
    with psycopg.connect(database_url, connect_timeout=10) as connection:
        rows = connection.execute(
            """
            SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
              AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
            ORDER BY 1
            """
        ).fetchall()
    return [str(row[0]) for row in rows]


@dataclass(frozen=True)
class InFlightCall:
    call_id: UUID
    attempt: int
    retry_count: int


def calls_in_flight(db: CallDatabase) -> list[InFlightCall]:
    """TRANSCRIBING or ANALYZING calls that a run was working on (not those waiting for a Lemonfox
    callback, which have their own timeout)."""
    rows = db.query(
        "SELECT id, attempt, retry_count FROM call_records "
        "WHERE status IN ('TRANSCRIBING', 'ANALYZING') AND callback_state IS NULL ORDER BY id"
    )
    return [InFlightCall(row["id"], row["attempt"], row["retry_count"]) for row in rows]


def release_waiting_calls(db: CallDatabase) -> list[UUID]:
    """Give every call waiting for the pickup (QUEUED, or a delivered callback) back to it unclaimed, its
    ``updated_at`` now (the touch trigger): the stale sweep then counts its wait from the restore."""
    rows = db.query(
        "UPDATE call_records SET claim_id = NULL, claimed_at = NULL "
        "WHERE status = 'QUEUED' OR (status = 'TRANSCRIBING' AND callback_state = 'RECEIVED') RETURNING id"
    )
    return sorted(row["id"] for row in rows)
