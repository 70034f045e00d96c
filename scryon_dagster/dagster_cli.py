"""`python -m scryon_dagster.dagster_cli <arguments of dagster>`: Dagster's own command line (`dev`,
`code-server start`, `api grpc`, ...), whose code servers fork each run worker from a process that has
already imported Dagster, the instance's classes and this code location, instead of spawning a fresh
Python that imports them again for every run (~2.8 CPU-s, most of a run's start-up; bench/README.md,
issue 18). `SCRYON_RUN_WORKER_START=spawn` keeps Dagster's stock behaviour."""

from __future__ import annotations

import os
import runpy
import sys
from collections.abc import Sequence

START_METHOD_VARIABLE = "SCRYON_RUN_WORKER_START"
START_METHODS = ("forkserver", "spawn")
COMMAND_MODULE = "scryon_dagster.dagster_cli"


def run_worker_start_method() -> str:
    method = os.environ.get(START_METHOD_VARIABLE, "forkserver")
    if method not in START_METHODS:
        raise SystemExit(f"{START_METHOD_VARIABLE} must be one of {', '.join(START_METHODS)}, not {method!r}")
    return method


def main(argv: Sequence[str]) -> None:
    if run_worker_start_method() == "forkserver":
        # here, not at the top: the demo and the benchmarks import this module for its name alone
        from scryon_dagster.dagster_private import fork_run_workers_from_warm_process

        fork_run_workers_from_warm_process(COMMAND_MODULE)
    sys.argv = ["dagster", *argv]
    runpy.run_module("dagster", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
