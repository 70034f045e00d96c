"""Latency at low load: calls arrive one at a time (each after the previous one finished, plus a gap)
at the real daemon and QUEUED sensor (`dagster dev`, production instance config, dagster-postgres
storage) and the provider simulator.

    .venv/bin/python bench/latency.py --calls 20

For each call: enqueue → first provider request (the simulator's request counter moving, polled every
50 ms) and enqueue → COMPLETED; p50/p95/p99 of both. With ``--arrival-interval S`` calls arrive every
S seconds regardless of the previous ones (a steady rate); the first provider request is then
estimated from the database (processing start + the call's preprocessing time), since concurrent
calls cannot be told apart in the simulator's counters.

Long calls (issue 18): ``--audio-minutes M`` loops every sample to M minutes before the calls are queued,
and ``--pyannote on`` adds diarization; the result then also gives each call's provider critical path
(max(transcription, diarization) + the LLM stages, from the stage durations) and enqueue → COMPLETED
minus it, the system's own overhead:

    .venv/bin/python bench/latency.py --calls 10 --profile realistic --audio-minutes 5 --pyannote on
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
import wave
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import psycopg
from _harness import (
    DEFAULT_SERVER_URL,
    CallSystem,
    call_latencies,
    call_system,
    dagster_dev,
    enqueue_one,
    exit_cleanly_on_sigterm,
    instance_statistics,
    print_json,
    scratch_database,
    stage_durations,
    status_counts,
    summary,
    wait_until_terminal,
)

from scryon_dagster.dagster_cli import run_worker_start_method

POLL_SECONDS = 0.05


def lengthen_samples(system: CallSystem, minutes: float) -> None:
    """Loop each sample WAV, in place, to ``minutes`` of audio: the calls keep their titles and users."""
    for sample in system.samples:
        with wave.open(str(sample.path), "rb") as reader:
            params = reader.getparams()
            frames = reader.readframes(params.nframes)
        wanted = int(minutes * 60 * params.framerate) * params.sampwidth * params.nchannels
        with wave.open(str(sample.path), "wb") as writer:
            writer.setparams(params)
            writer.writeframes((frames * (wanted // len(frames) + 1))[:wanted])


def provider_critical_paths(system: CallSystem, call_ids: Sequence[UUID]) -> dict[str, dict[str, float | int]]:
    """Per call: max(transcription, diarization) + the LLM stages (s), and enqueue → COMPLETED minus it."""
    rows = system.db.query(
        """
        SELECT c.id,
               extract(epoch FROM max(e.created_at) FILTER (WHERE e.error_message = 'status -> COMPLETED')
                                - c.created_at)::float8 AS to_completed,
               (greatest(coalesce(max(e.duration_ms) FILTER (WHERE e.stage = 'TRANSCRIBED'), 0),
                        coalesce(max(e.duration_ms) FILTER (WHERE e.stage = 'DIARIZED'), 0))
               + coalesce(sum(e.duration_ms) FILTER (WHERE e.stage IN ('ANALYZED', 'ACTION_ITEMS_EXTRACTED',
                                                                       'LLM_SPEAKER_NAMING')), 0))::float8
               AS critical_ms
        FROM call_records c JOIN call_processing_events e ON e.call_id = c.id
        WHERE c.id = ANY(%s) AND (e.stage = 'STATUS' OR e.status IN ('COMPLETED', 'FAILED'))
        GROUP BY c.id, c.created_at
        """,
        (list(call_ids),),
    )
    done = [row for row in rows if row["to_completed"] is not None]
    overheads = [row["to_completed"] - row["critical_ms"] / 1000 for row in done]
    return {
        "provider_critical_path_s": summary([row["critical_ms"] / 1000 for row in done]),
        "completed_minus_critical_path_s": summary(overheads),
        # with 10 calls the p95 is the worst call: the whole distribution shows whether it is an outlier
        "completed_minus_critical_path_each_s": sorted(round(value, 2) for value in overheads),
    }


def run_start_phases(storage_url: str, since: float) -> dict[str, dict[str, float | int]]:
    """Where a run's start-up goes, per run from Dagster's event log (s): created → dequeued (RUN_STARTING:
    the QueuedRunCoordinator's dequeue loop picked it and calls the launcher), → run worker process up
    ("Started process for run": the code server spawned a Python process, which imported dagster and loaded
    the instance), → RUN_START (the code location imported and the job's plan built), → first STEP_START."""
    with psycopg.connect(storage_url) as conn:
        rows = conn.execute(
            """
            SELECT r.run_id,
                   extract(epoch FROM r.create_timestamp)::float8 AS created,
                   extract(epoch FROM min(e.timestamp) FILTER (WHERE e.dagster_event_type = 'PIPELINE_STARTING'))
                   ::float8,
                   extract(epoch FROM min(e.timestamp) FILTER (WHERE e.dagster_event_type = 'ENGINE_EVENT'
                                                               AND e.event LIKE '%%Started process for run%%'))
                   ::float8,
                   extract(epoch FROM min(e.timestamp) FILTER (WHERE e.dagster_event_type = 'PIPELINE_START'))
                   ::float8,
                   extract(epoch FROM min(e.timestamp) FILTER (WHERE e.dagster_event_type = 'STEP_START'))::float8
            FROM runs r JOIN event_logs e ON e.run_id = r.run_id
            WHERE r.create_timestamp >= to_timestamp(%s) AT TIME ZONE 'UTC'
            GROUP BY r.run_id, r.create_timestamp
            """,
            (since,),
        ).fetchall()
    phases: dict[str, list[float]] = {
        "created_to_dequeued": [],
        "dequeued_to_worker_process_up": [],
        "worker_process_up_to_run_start": [],
        "run_start_to_first_step_start": [],
        "created_to_first_step_start": [],
    }
    for _, created, dequeued, process_up, started, step_started in rows:
        marks = (created, dequeued, process_up, started, step_started)
        for name, (earlier, later) in zip(phases, itertools.pairwise(marks), strict=False):
            if earlier is not None and later is not None:
                phases[name].append(later - earlier)
        if step_started is not None:
            phases["created_to_first_step_start"].append(step_started - created)
    return {name: summary(values) for name, values in phases.items()}


def provider_requests(system: CallSystem) -> int:
    totals: dict[str, int] = system.simulator.admin.stats()["requests_total"]
    return sum(totals.values())


def completed(system: CallSystem, call_id: UUID) -> bool:
    call = system.db.get_call(call_id)
    return call is not None and call.status.value in ("COMPLETED", "FAILED")


def one_at_a_time(system: CallSystem, count: int, gap: float, per_call_timeout: float) -> dict[str, Any]:
    to_first_request: list[float] = []
    to_done: list[float] = []
    call_ids = []
    for index in range(count):
        before = provider_requests(system)
        enqueued = time.monotonic()
        call_id = enqueue_one(system, index)
        call_ids.append(call_id)
        deadline = enqueued + per_call_timeout
        first_request = None
        while time.monotonic() < deadline:
            if first_request is None and provider_requests(system) > before:
                first_request = time.monotonic() - enqueued
            if completed(system, call_id):
                break
            time.sleep(POLL_SECONDS)
        if first_request is not None:
            to_first_request.append(first_request)
        if completed(system, call_id):
            to_done.append(time.monotonic() - enqueued)
        time.sleep(gap)
    return {
        "call_ids": call_ids,
        "enqueue_to_first_provider_request_s": summary(to_first_request),
        "enqueue_to_terminal_s": summary(to_done),
    }


def steady(system: CallSystem, count: int, interval: float, timeout: float) -> dict[str, Any]:
    call_ids = []
    start = time.monotonic()
    for index in range(count):
        time.sleep(max(0.0, start + index * interval - time.monotonic()))
        call_ids.append(enqueue_one(system, index))
    wait_until_terminal(system.db, call_ids, timeout)
    rows = system.db.query(
        """
        SELECT c.created_at, s.created_at AS started, p.duration_ms
        FROM call_records c
        JOIN call_processing_events s ON s.call_id = c.id AND s.error_message = 'status -> TRANSCRIBING'
        JOIN call_processing_events p ON p.call_id = c.id AND p.stage = 'AUDIO_PREPROCESSED'
             AND p.status <> 'STARTED'
        WHERE c.id = ANY(%s)
        """,
        (call_ids,),
    )
    estimated = [(r["started"] - r["created_at"]).total_seconds() + r["duration_ms"] / 1000 for r in rows]
    return {"call_ids": call_ids, "enqueue_to_first_provider_request_estimated_s": summary(estimated)}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--gap", type=float, default=1.0, help="pause after each call (one-at-a-time mode)")
    parser.add_argument("--arrival-interval", type=float, default=0.0, help="steady arrivals every S seconds")
    parser.add_argument("--interval", type=int, default=1, help="SCRYON_QUEUED_SENSOR_INTERVAL_SECONDS")
    parser.add_argument("--profile", choices=("fast", "realistic"), default="fast")
    parser.add_argument("--per-call-timeout", type=float, default=180)
    parser.add_argument(
        "--audio-minutes", type=float, default=0, help="loop the samples to this length (0: as they are)"
    )
    parser.add_argument("--pyannote", choices=("on", "off"), default="off")
    parser.add_argument("--server-url", default=DEFAULT_SERVER_URL)
    return parser.parse_args()


def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {
        "arguments": vars(args),
        "nproc": os.cpu_count(),
        "run_worker_start": run_worker_start_method(),
    }
    overrides = {
        "SCRYON_QUEUED_SENSOR_INTERVAL_SECONDS": str(args.interval),
        "PYANNOTE_ENABLED": "true" if args.pyannote == "on" else "false",
    }
    with (
        call_system(args.server_url, profile=args.profile, overrides=overrides) as system,
        scratch_database(args.server_url, "scryon_bench_dagster") as storage_url,
    ):
        if args.audio_minutes > 0:
            lengthen_samples(system, args.audio_minutes)
        since = time.time()
        with dagster_dev(system.env, system.workdir / "dagster_home", storage_url):
            if args.arrival_interval > 0:
                measured = steady(system, args.calls, args.arrival_interval, args.per_call_timeout * 2)
            else:
                measured = one_at_a_time(system, args.calls, args.gap, args.per_call_timeout)
        call_ids = measured.pop("call_ids")
        result.update(measured)
        result.update(call_latencies(system.db, call_ids))
        result.update(provider_critical_paths(system, call_ids))
        result["statuses"] = status_counts(system.db, call_ids)
        result["stages_s"] = stage_durations(system.db, call_ids)
        result["dagster"] = instance_statistics(system.workdir / "dagster_home", storage_url, since)
        result["dagster"]["run_start_phases_s"] = run_start_phases(storage_url, since)
    return result


def main() -> None:
    exit_cleanly_on_sigterm()
    print_json(run(parse_args()))


if __name__ == "__main__":
    main()
