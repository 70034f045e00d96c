"""`python -m scryon_dagster.dagster_cli <arguments of dagster>`: Dagster's own command line (`dev`,
`code-server start`, `api grpc`, ...), and `python -m scryon_dagster.dagster_cli daemon <arguments of
dagster-daemon>` its daemon, whose code servers fork each run worker from a process that has already
imported Dagster, the instance's classes and this code location, instead of spawning a fresh Python that
imports them again for every run (~2.8 CPU-s, most of a run's start-up; bench/README.md, issue 18).
`SCRYON_RUN_WORKER_START=spawn` keeps Dagster's stock behaviour."""

from __future__ import annotations

import runpy
import sys
from collections.abc import Sequence

from scryon_dagster.settings import RunWorkerStart, SettingsError, load_settings

COMMAND_MODULE = "scryon_dagster.dagster_cli"
DAEMON_COMMAND = "daemon"


def dagster_command(*arguments: str) -> list[str]:
    """``dagster <arguments>`` through this module, in this interpreter."""
    return [sys.executable, "-m", COMMAND_MODULE, *arguments]


def dagster_daemon_command(*arguments: str) -> list[str]:
    """``dagster-daemon <arguments>`` through this module, in this interpreter."""
    return dagster_command(DAEMON_COMMAND, *arguments)


def run_worker_start_method() -> RunWorkerStart:
    try:
        return load_settings().scryon_run_worker_start
    except SettingsError as exc:
        raise SystemExit(f"{COMMAND_MODULE}: {exc}") from None


def main(argv: Sequence[str]) -> None:
    # here, not at the top: the demo and the benchmarks import this module for its names alone
    from scryon_dagster.dagster_private import DAGSTER_DAEMON_MODULE, fork_run_workers_from_warm_process

    if run_worker_start_method() is RunWorkerStart.FORKSERVER:
        fork_run_workers_from_warm_process(COMMAND_MODULE)
    if argv[:1] == [DAEMON_COMMAND]:
        sys.argv = ["dagster-daemon", *argv[1:]]
        runpy.run_module(DAGSTER_DAEMON_MODULE, run_name="__main__", alter_sys=True)
    else:
        sys.argv = ["dagster", *argv]
        runpy.run_module("dagster", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
