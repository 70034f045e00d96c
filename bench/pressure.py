"""Provider pressure: the simulator enforces pyannote's 100 requests per minute (sliding window, 429
with Retry-After beyond it) while batches of calls run with diarization on, through the same
pipeline code a run worker executes (``build_call_pipeline(...).run_batch``), one process per batch
as one run worker per batch run.

    .venv/bin/python bench/pressure.py --calls 100 --workers 4

Reports the pyannote requests by route, the 429s served, the request rate, the calls' final statuses
and the DIARIZED stage outcomes (a diarization lost to rate limiting is a soft failure: the call still
completes, without speaker turns — so it is counted separately).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any
from uuid import UUID, uuid4

from _harness import (
    DEFAULT_SERVER_URL,
    call_system,
    enqueue_many,
    exit_cleanly_on_sigterm,
    print_json,
    stage_durations,
    status_counts,
)

from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.object_store import build_object_store
from scryon_dagster.pipeline.outcomes import StageSelection
from scryon_dagster.pipeline.runner import build_call_pipeline
from scryon_dagster.settings import load_settings


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--limit", type=int, default=100, help="pyannote requests per minute")
    parser.add_argument("--parallel-calls", type=int, default=32, help="SCRYON_BATCH_PARALLEL_CALLS")
    parser.add_argument("--workers", type=int, default=1, help="batch runs at once (one process each)")
    parser.add_argument("--poll-interval", type=float, default=5.0, help="SCRYON_DIARIZATION_POLL_INTERVAL_SECONDS")
    parser.add_argument("--server-url", default=DEFAULT_SERVER_URL)
    return parser.parse_args()


def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"arguments": vars(args), "nproc": os.cpu_count()}
    overrides = {
        "PYANNOTE_ENABLED": "true",
        "SCRYON_BATCH_PARALLEL_CALLS": str(args.parallel_calls),
        "SCRYON_DIARIZATION_POLL_INTERVAL_SECONDS": str(args.poll_interval),
    }
    with call_system(args.server_url, overrides=overrides) as system:
        call_ids = enqueue_many(system, args.calls)
        system.simulator.admin.reset_stats()
        system.simulator.admin.set_rate_limit("pyannote", args.limit)
        batches = []
        for index in range(args.workers):
            batch_id = uuid4()
            share = call_ids[index :: args.workers]
            claimed = system.db.claim_queued(batch_id, len(share)) if share else []
            batches.append(([str(claim.call_id) for claim in claimed], str(batch_id)))
        started = time.monotonic()
        with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            succeeded = [ok for oks in pool.map(run_one_batch, *zip(*batches, strict=True)) for ok in oks]
        wall = time.monotonic() - started
        stats = system.simulator.admin.stats()
        pyannote_requests = stats["requests_total"].get("pyannote", 0)
        result["wall_seconds"] = round(wall, 1)
        result["calls_failed"] = succeeded.count(False)
        result["statuses"] = status_counts(system.db, call_ids)
        result["pyannote_requests"] = stats["requests"].get("pyannote", {})
        result["pyannote_429s"] = stats["rate_limited"].get("pyannote", 0)
        result["pyannote_requests_per_minute_avg"] = round(pyannote_requests / wall * 60, 1)
        rows = system.db.query(
            "SELECT status, coalesce(error_code, '') AS code, count(*) AS n FROM call_processing_events "
            "WHERE call_id = ANY(%s) AND stage = 'DIARIZED' AND status <> 'STARTED' GROUP BY status, code",
            (call_ids,),
        )
        result["diarization_outcomes"] = {f"{r['status']}{':' + r['code'] if r['code'] else ''}": r["n"] for r in rows}
        result["stages_s"] = stage_durations(system.db, call_ids)
    return result


def run_one_batch(call_ids: list[str], batch_id: str) -> list[bool]:
    """What one run worker does with its batch, in its own process (so with its own clients)."""
    settings = load_settings()
    db = CallDatabase(os.environ["SCRYON_DATABASE_URL"]).open()
    pipeline = build_call_pipeline(settings, db, build_object_store(settings))
    try:
        outcomes = pipeline.run_batch(
            [UUID(call_id) for call_id in call_ids],
            StageSelection.everything(),
            batch_id=UUID(batch_id),
            run_id=batch_id,
        )
        return [outcome.succeeded for outcome in outcomes]
    finally:
        pipeline.close()
        db.close()


def main() -> None:
    exit_cleanly_on_sigterm()
    print_json(run(parse_args()))


if __name__ == "__main__":
    main()
