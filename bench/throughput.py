"""Throughput and cost of the whole system: N calls queued at once, carried to COMPLETED by the real
daemon and QUEUED sensor (`dagster dev`, production instance config on dagster-postgres storage) against
the provider simulator.

    .venv/bin/python bench/throughput.py --calls 2000

Prints one JSON document: calls/hour over the processing window (first claim to last terminal status),
CPU seconds per call of the Dagster process tree (webserver, daemon, code server, run workers), of the
PostgreSQL server and of this process (simulator), peak RSS, sensor tick and run durations, per-stage
durations and the simulator's request counts.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from _harness import (
    DEFAULT_SERVER_URL,
    Meter,
    call_system,
    cost_window,
    dagster_dev,
    enqueue_many,
    exit_cleanly_on_sigterm,
    instance_statistics,
    postgres_postmaster_pid,
    preprocessing_overrides,
    print_json,
    processing_window,
    scratch_database,
    stage_durations,
    status_counts,
    wait_for_first_claim,
    wait_for_runs_to_exit,
    wait_until_terminal,
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--profile", choices=("fast", "realistic"), default="fast")
    parser.add_argument("--batch-size", type=int, default=500, help="SCRYON_SENSOR_BATCH_SIZE")
    parser.add_argument("--parallel-calls", type=int, default=32, help="SCRYON_BATCH_PARALLEL_CALLS")
    parser.add_argument("--interval", type=int, default=1, help="SCRYON_QUEUED_SENSOR_INTERVAL_SECONDS")
    parser.add_argument("--preprocessing", choices=("on", "off"), default="on", help="ffmpeg audio preprocessing")
    parser.add_argument("--pyannote", choices=("on", "off"), default="off")
    parser.add_argument("--timeout", type=float, default=1800, help="give up after this many seconds of processing")
    parser.add_argument("--server-url", default=DEFAULT_SERVER_URL, help="PostgreSQL maintenance database URL")
    return parser.parse_args()


def settings_overrides(args: argparse.Namespace) -> dict[str, str]:
    return {
        "SCRYON_SENSOR_BATCH_SIZE": str(args.batch_size),
        "SCRYON_BATCH_PARALLEL_CALLS": str(args.parallel_calls),
        "SCRYON_QUEUED_SENSOR_INTERVAL_SECONDS": str(args.interval),
        **preprocessing_overrides(args.preprocessing == "on"),
        "PYANNOTE_ENABLED": "true" if args.pyannote == "on" else "false",
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"arguments": vars(args), "nproc": os.cpu_count()}
    with (
        call_system(args.server_url, profile=args.profile, overrides=settings_overrides(args)) as system,
        scratch_database(args.server_url, "scryon_bench_dagster") as storage_url,
    ):
        started = time.monotonic()
        call_ids = enqueue_many(system, args.calls)
        result["enqueue_seconds"] = round(time.monotonic() - started, 1)
        since = time.time()
        with dagster_dev(system.env, system.workdir / "dagster_home", storage_url) as dev:
            trees = {"dagster": dev.process.pid}
            if (postmaster := postgres_postmaster_pid()) is not None:
                trees["postgres_server"] = postmaster
            if not wait_for_first_claim(system.db, call_ids, timeout_seconds=120):
                raise RuntimeError("the QUEUED sensor claimed nothing within 120 s")
            meter = Meter({"dagster": dev.process.pid}).start()
            with cost_window(trees, alone={"bench_process": os.getpid()}) as cpu:
                finished = wait_until_terminal(system.db, call_ids, args.timeout)
                wait_for_runs_to_exit(meter, timeout_seconds=300)
            meter.stop()
        result["all_terminal"] = finished
        result["statuses"] = status_counts(system.db, call_ids)
        first_claim, last_done = processing_window(system.db, call_ids)
        window = (last_done - first_claim).total_seconds()
        completed = result["statuses"].get("COMPLETED", 0)
        result["processing_window_s"] = round(window, 1)
        result["calls_per_hour"] = round(completed / window * 3600) if window > 0 else None
        result["cpu_seconds"] = cpu
        result["cpu_seconds_per_call"] = {name: round(value / args.calls, 3) for name, value in cpu.items()}
        result["dagster_cpu_seconds_by_role"] = meter.cpu_by_role()
        result["peak_rss_mb"] = {name: round(value / 2**20) for name, value in meter.peak_rss.items()}
        result["stages_s"] = stage_durations(system.db, call_ids)
        result["simulator"] = system.simulator.admin.stats()
        result["dagster"] = instance_statistics(system.workdir / "dagster_home", storage_url, since)
    return result


def main() -> None:
    exit_cleanly_on_sigterm()
    print_json(run(parse_args()))


if __name__ == "__main__":
    main()
