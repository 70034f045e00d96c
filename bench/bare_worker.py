"""The same calls through a bare worker of the reference's design, for comparison with the daemon:
a loop that claims a batch of QUEUED calls (``CallDatabase.claim_queued``, FOR UPDATE SKIP LOCKED) and
runs it through the same pipeline code and adapters (``build_call_pipeline(...).run_batch``), with no
Dagster anywhere.

    .venv/bin/python bench/bare_worker.py --calls 2000 --workers 2

``--workers`` worker processes compete for the queue (one per core is the fair comparison on this
machine: the run workers of the Dagster system are processes too). Prints one JSON document shaped
like bench/throughput.py's. ``--serve`` runs one worker loop in this process (what the benchmark
starts); it stops when the queue stays empty for ``--idle-exit`` seconds.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from typing import Any
from uuid import uuid4

from _harness import (
    DEFAULT_SERVER_URL,
    REPO_ROOT,
    Meter,
    call_system,
    cost_window,
    enqueue_many,
    exit_cleanly_on_sigterm,
    postgres_postmaster_pid,
    preprocessing_overrides,
    print_json,
    processing_window,
    stage_durations,
    status_counts,
    stop_process_group,
    wait_until_terminal,
)

from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.object_store import build_object_store
from scryon_dagster.pipeline.outcomes import StageSelection
from scryon_dagster.pipeline.runner import build_call_pipeline
from scryon_dagster.settings import load_settings

MAX_SERVE_SECONDS = 3600


def serve(batch_size: int, idle_exit_seconds: float) -> None:
    """Claim and run batches until the queue has been empty for ``idle_exit_seconds``."""
    settings = load_settings()
    assert settings.scryon_database_url is not None
    with CallDatabase(settings.scryon_database_url, max_connections=settings.scryon_batch_parallel_calls + 4) as db:
        pipeline = build_call_pipeline(settings, db, build_object_store(settings))
        try:
            idle_since = time.monotonic()
            deadline = time.monotonic() + MAX_SERVE_SECONDS
            while time.monotonic() < deadline:
                batch_id = uuid4()
                claimed = db.claim_queued(batch_id, batch_size)
                if not claimed:
                    if time.monotonic() - idle_since > idle_exit_seconds:
                        return
                    time.sleep(0.2)
                    continue
                ids = [claim.call_id for claim in claimed]
                for _ in pipeline.run_batch(ids, StageSelection.everything(), batch_id=batch_id, run_id=str(batch_id)):
                    pass
                idle_since = time.monotonic()
        finally:
            pipeline.close()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--profile", choices=("fast", "realistic"), default="fast")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--parallel-calls", type=int, default=32, help="SCRYON_BATCH_PARALLEL_CALLS")
    parser.add_argument("--preprocessing", choices=("on", "off"), default="on", help="ffmpeg audio preprocessing")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--server-url", default=DEFAULT_SERVER_URL)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--idle-exit", type=float, default=5.0, help=argparse.SUPPRESS)
    return parser.parse_args()


def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"arguments": vars(args), "nproc": os.cpu_count()}
    overrides = {
        "SCRYON_BATCH_PARALLEL_CALLS": str(args.parallel_calls),
        **preprocessing_overrides(args.preprocessing == "on"),
    }
    with call_system(args.server_url, profile=args.profile, overrides=overrides) as system:
        started = time.monotonic()
        call_ids = enqueue_many(system, args.calls)
        result["enqueue_seconds"] = round(time.monotonic() - started, 1)
        command = [sys.executable, __file__, "--serve", "--batch-size", str(args.batch_size)]
        workers = [
            subprocess.Popen(command, env={**os.environ, **system.env}, cwd=REPO_ROOT, start_new_session=True)
            for _ in range(args.workers)
        ]
        try:
            trees = {f"worker_{index}": worker.pid for index, worker in enumerate(workers)}
            if (postmaster := postgres_postmaster_pid()) is not None:
                trees["postgres_server"] = postmaster
            meter = Meter({name: pid for name, pid in trees.items() if name.startswith("worker_")}).start()
            with cost_window(trees, alone={"bench_process": os.getpid()}) as cpu:
                finished = wait_until_terminal(system.db, call_ids, args.timeout)
            meter.stop()
        finally:
            for worker in workers:
                stop_process_group(worker)
        result["all_terminal"] = finished
        result["statuses"] = status_counts(system.db, call_ids)
        first_claim, last_done = processing_window(system.db, call_ids)
        window = (last_done - first_claim).total_seconds()
        completed = result["statuses"].get("COMPLETED", 0)
        result["processing_window_s"] = round(window, 1)
        result["calls_per_hour"] = round(completed / window * 3600) if window > 0 else None
        workers_cpu = sum(value for name, value in cpu.items() if name.startswith("worker_"))
        result["cpu_seconds"] = {**cpu, "workers_total": round(workers_cpu, 2)}
        result["cpu_seconds_per_call"] = {
            name: round(value / args.calls, 3) for name, value in result["cpu_seconds"].items()
        }
        result["worker_cpu_seconds_by_role"] = meter.cpu_by_role()
        result["peak_rss_mb"] = {"workers_total": round(sum(meter.peak_rss.values()) / 2**20)}
        result["stages_s"] = stage_durations(system.db, call_ids)
        result["simulator"] = system.simulator.admin.stats()
    return result


def main() -> None:
    args = parse_args()
    if args.serve:
        serve(args.batch_size, args.idle_exit)
    else:
        exit_cleanly_on_sigterm()
        print_json(run(args))


if __name__ == "__main__":
    main()
