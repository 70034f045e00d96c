"""Calls across several worker hosts: the multi-host bed (bench/multihost_bed.py: network namespaces, batch
steps on Celery workers, every service over the virtual network, S3) carries N calls to the end, once for
each number of worker hosts asked for, optionally killing one worker host mid-batch.

    sudo .venv/bin/python bench/multihost.py --calls 1000 --hosts 1 2 3 --profile realistic
    sudo .venv/bin/python bench/multihost.py --calls 300 --hosts 3 --kill-host-after 60

Prints one JSON document per configuration: calls/hour over the processing window, calls in flight
(sampled), per-call completions (duplicates), calls not COMPLETED (lost), calls with a provider answer
paid twice, the pyannote requests of the busiest 60-s window against the budget (sampled every 5 s from
the simulator, whose own per-minute cap equals the budget: ``rate_limited`` counts what went past it),
which host ran each batch, and for a killed host what happened to its calls.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from uuid import UUID

from _harness import (
    distinct_call_audio,
    enqueue_audio,
    exit_cleanly_on_sigterm,
    print_json,
    processing_window,
    status_counts,
    wait_until_terminal,
)
from multihost_bed import Bed, celery_workers_of_runs, completions_per_call, multihost_bed

from scryon_dagster.simulator.app import audio_subject

IN_FLIGHT = ("TRANSCRIBING", "ANALYZING")
SAMPLE_SECONDS = 5.0
PRESIGNED_UPLOAD_ROUTE = "PUT /_sim/presigned/{token}"
# the hosts' logs of the last run of each configuration (var/ is not versioned)
LOGS = Path(__file__).resolve().parent.parent / "var" / "bench" / "multihost"
# Distinct extra milliseconds per call stay inside the simulator's 0.25-s sample recognition.
DISTINCT_EXTRAS_MS = 250


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--hosts", type=int, nargs="+", default=[1, 2, 3], help="worker hosts, one run each")
    parser.add_argument("--concurrency", type=int, default=2, help="batch steps at once per worker host")
    parser.add_argument("--profile", choices=("fast", "realistic"), default="realistic")
    parser.add_argument("--batch-size", type=int, default=50, help="SCRYON_SENSOR_BATCH_SIZE")
    parser.add_argument("--parallel-calls", type=int, default=16, help="SCRYON_BATCH_PARALLEL_CALLS")
    parser.add_argument(
        "--pyannote-per-minute",
        type=int,
        default=95,
        help="SCRYON_PYANNOTE_REQUESTS_PER_MINUTE, and the simulator's cap (429 past it)",
    )
    parser.add_argument(
        "--kill-host-after",
        type=float,
        default=None,
        help="kill the last worker host after S s, once it holds calls mid-flight",
    )
    parser.add_argument("--timeout", type=float, default=3600)
    return parser.parse_args()


class Sampler:
    """Every ``SAMPLE_SECONDS``: the calls in flight, and the simulator's pyannote request total."""

    def __init__(self, bed: Bed, call_ids: list[UUID]) -> None:
        self._bed = bed
        self._call_ids = call_ids
        self.in_flight: list[int] = []
        self.pyannote_totals: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="multihost-sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            rows = self._bed.system.db.query(
                "SELECT count(*) AS n FROM call_records WHERE id = ANY(%s) AND status = ANY(%s)",
                (self._call_ids, list(IN_FLIGHT)),
            )
            self.in_flight.append(int(rows[0]["n"]))
            routes = self._bed.system.simulator.admin.stats()["requests"].get("pyannote", {})
            # Presigned uploads go to object storage, outside the API's per-minute limit (providers.md).
            total = sum(count for route, count in routes.items() if route != PRESIGNED_UPLOAD_ROUTE)
            self.pyannote_totals.append((time.monotonic(), total))

    def busiest_pyannote_minute(self) -> int:
        """The most pyannote API requests (429s included) between two samples at most 60 s apart."""
        busiest = 0
        for index, (start, before) in enumerate(self.pyannote_totals):
            for moment, total in self.pyannote_totals[index + 1 :]:
                if moment - start > 60 + 0.5:
                    break
                busiest = max(busiest, total - before)
        return busiest


def settings_overrides(args: argparse.Namespace) -> dict[str, str]:
    return {
        "SCRYON_SENSOR_BATCH_SIZE": str(args.batch_size),
        "SCRYON_BATCH_PARALLEL_CALLS": str(args.parallel_calls),
        "SCRYON_QUEUED_SENSOR_INTERVAL_SECONDS": "1",
        "SCRYON_PYANNOTE_REQUESTS_PER_MINUTE": str(args.pyannote_per_minute),
        "SCRYON_DIARIZATION_POLL_INTERVAL_SECONDS": "2",
    }


def run_once(args: argparse.Namespace, hosts: int) -> dict[str, Any]:
    result: dict[str, Any] = {"worker_hosts": hosts, "arguments": {k: v for k, v in vars(args).items() if k != "hosts"}}
    with multihost_bed(
        worker_hosts=hosts,
        worker_concurrency=args.concurrency,
        profile=args.profile,
        overrides=settings_overrides(args),
        keep_logs_in=LOGS / f"{hosts}-hosts",
    ) as bed:
        system = bed.system
        system.simulator.admin.set_rate_limit("pyannote", args.pyannote_per_minute)
        started = time.monotonic()
        call_ids, transcription_subject = enqueue_distinct(bed, args.calls)
        result["enqueue_seconds"] = round(time.monotonic() - started, 1)
        bed.start()
        with Sampler(bed, call_ids) as sampler:
            done = threading.Event()
            killer = kill_host_later(bed, args.kill_host_after, result, done) if args.kill_host_after else None
            result["all_terminal"] = wait_until_terminal(system.db, call_ids, args.timeout)
            done.set()
            if killer is not None:
                killer.join()
        result["statuses"] = status_counts(system.db, call_ids)
        first_claim, last_done = processing_window(system.db, call_ids)
        window = (last_done - first_claim).total_seconds()
        completed = result["statuses"].get("COMPLETED", 0)
        result["processing_window_s"] = round(window, 1)
        result["calls_per_hour"] = round(completed / window * 3600) if window > 0 else None
        result["calls_in_flight"] = {
            "peak": max(sampler.in_flight, default=0),
            "mean": round(sum(sampler.in_flight) / len(sampler.in_flight), 1) if sampler.in_flight else 0,
        }
        completions = completions_per_call(system.db, call_ids)
        result["completed_more_than_once"] = sum(1 for n in completions.values() if n > 1)
        result["lost"] = sum(1 for n in completions.values() if n == 0)
        result["paid_twice"] = paid_twice(bed, call_ids, transcription_subject)
        stats = system.simulator.admin.stats()
        result["pyannote"] = {
            "budget_per_minute": args.pyannote_per_minute,
            "busiest_60s_window_api_requests": sampler.busiest_pyannote_minute(),
            "rate_limited_429": stats["rate_limited"].get("pyannote", 0),
            "requests_total": stats["requests_total"].get("pyannote", 0),
            "presigned_uploads": stats["requests"].get("pyannote", {}).get(PRESIGNED_UPLOAD_ROUTE, 0),
        }
        result["requests_total"] = stats["requests_total"]
        result["batches_by_worker_host"] = dict(
            Counter(worker.split("@")[0] for worker in celery_workers_of_runs(bed).values())
        )
        result["retried_calls_by_reason"] = retried_calls(bed, call_ids)
        if "killed_host_calls" in result:
            result["killed_host_calls"] = fate_of(bed, result["killed_host_calls"])
    return result


def enqueue_distinct(bed: Bed, count: int) -> tuple[list[UUID], dict[UUID, str]]:
    """Queue ``count`` calls (the samples, each lengthened to a duration of its own so that the
    simulator tells their transcriptions apart) from 8 threads; returns the ids in order and each call's
    transcription subject."""
    system = bed.system

    def enqueue(index: int) -> tuple[UUID, str]:
        sample = system.samples[index % len(system.samples)]
        audio, seconds = distinct_call_audio(sample, DISTINCT_EXTRAS_MS * (index // len(system.samples) + 1))
        return enqueue_audio(system, audio, index), audio_subject(seconds)

    with ThreadPoolExecutor(8) as pool:
        queued = list(pool.map(enqueue, range(count)))
    return [call_id for call_id, _ in queued], dict(queued)


def kill_host_later(bed: Bed, after_seconds: float, result: dict[str, Any], done: threading.Event) -> threading.Thread:
    """Once ``after_seconds`` have passed and the last worker host is executing a batch with calls mid-flight,
    kill that host (its processes, then its namespace); note the calls it held then. Gives up once ``done``."""
    victim = bed.workers[-1]

    def held_by_victim() -> list[UUID]:
        runs = [run for run, worker in celery_workers_of_runs(bed).items() if worker.startswith(f"{victim.name}@")]
        rows = bed.system.db.query(
            "SELECT id FROM call_records WHERE claim_id = ANY(%s::uuid[]) AND status = ANY(%s)",
            (runs, list(IN_FLIGHT)),
        )
        return [row["id"] for row in rows]

    def kill() -> None:
        if done.wait(after_seconds):
            return
        while not (held := held_by_victim()):
            if done.wait(2):
                return
        bed.kill_worker_host(victim)
        result["killed_host"] = {"host": victim.name, "killed_at_s": round(time.monotonic() - started, 1)}
        result["killed_host_calls"] = held

    started = time.monotonic()
    thread = threading.Thread(target=kill, name="multihost-kill", daemon=True)
    thread.start()
    return thread


def fate_of(bed: Bed, call_ids: list[UUID]) -> dict[str, Any]:
    """What became of the calls a killed host held: their final statuses, how often each completed, and
    why they went back to the queue."""
    return {
        "calls": len(call_ids),
        "statuses": status_counts(bed.system.db, call_ids),
        "completed_more_than_once": sum(1 for n in completions_per_call(bed.system.db, call_ids).values() if n > 1),
        "requeued_by_reason": retried_calls(bed, call_ids),
    }


def retried_calls(bed: Bed, call_ids: list[UUID]) -> dict[str, int]:
    """Calls that went back to the queue, by the failure code that sent them (run_crashed: a lost host)."""
    rows = bed.system.db.query(
        "SELECT error_code, count(DISTINCT call_id) AS n FROM call_processing_events WHERE call_id = ANY(%s) "
        "AND stage = 'STATUS' AND error_message LIKE 'status -> QUEUED%%' AND error_code IS NOT NULL "
        "GROUP BY error_code",
        (call_ids,),
    )
    return {str(row["error_code"]): int(row["n"]) for row in rows}


def paid_twice(bed: Bed, call_ids: list[UUID], transcription_subject: dict[UUID, str]) -> dict[str, int]:
    """Per provider: calls with more than one usable answer (one transcription, one diarization job, one
    analysis completion is what a call needs)."""
    subjects = bed.system.simulator.admin.subject_stats()
    over: Counter[str] = Counter()
    for call_id in call_ids:
        subject_of = {"lemonfox": transcription_subject[call_id], "pyannote": str(call_id), "llm": str(call_id)}
        for provider, subject in subject_of.items():
            if subjects.get(subject, {}).get(provider, {}).get("answers", 0) > 1:
                over[provider] += 1
    return {provider: over[provider] for provider in ("lemonfox", "pyannote", "llm")}


def main() -> None:
    exit_cleanly_on_sigterm()
    args = parse_args()
    for hosts in args.hosts:
        print_json(run_once(args, hosts))


if __name__ == "__main__":
    main()
