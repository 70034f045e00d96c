"""Fault matrix (issue 14): calls carried by the real daemon through provider faults, crashes and outages.

    .venv/bin/python bench/faults.py                         # every row, --calls-per-row 120
    .venv/bin/python bench/faults.py --quick                 # smoke run: 8 calls a row, short waits
    .venv/bin/python bench/faults.py --rows provider_429,worker_sigkill --calls-per-row 60
    .venv/bin/python bench/faults.py --readme                # also write the table into bench/README.md

Set-up: a throwaway PostgreSQL cluster (initdb in a temp directory, its own loopback port; never the
machine's shared server) holds the call database and Dagster's storage; `dagster-daemon run` on the
production instance config carries the calls (QUEUED sensor, run queue, run monitoring, crash
recovery); the provider simulator runs in this process (fast profile, pyannote on, audio preprocessing
off); object storage is a local directory, or moto's S3 server for the storage row. Everything listens
on 127.0.0.1 and is torn down on exit, Ctrl-C or SIGTERM. Rows run one after another on one system
(the storage row on a second one, with S3); each row's faults are cleared before the next row.

Per row: enqueue the calls (each a sample WAV lengthened by a distinct number of milliseconds, so the
simulator can count transcriptions per call), inject the row's fault, wait until every call is
COMPLETED or FAILED (or the row times out), let the runs finish, then measure:

* FAILED by code, and refused at enqueue (IntakeError code).
* lost: not terminal and nothing owns it (not QUEUED, not held by an unfinished Dagster run);
  stuck: not terminal although something still owns it, when the row's time is up.
* paid twice: calls with more than one usable provider answer of a kind (a complete transcription, an
  intact diarization result, a complete LLM completion) per the simulator's per-call statistics; a
  retried request or a re-request after an unusable (faulted) answer is not paid twice.
* Dagster != database: a COMPLETED call whose `normalized_transcript` or `analysis` partition is not
  MATERIALIZED, or a FAILED call whose `analysis` partition is MATERIALIZED (instance.get_status_by_partition).
* requests per call by provider (transcription requests, pyannote jobs created, LLM requests), retries
  included; COMPLETED calls without a diarization artifact.

Prints one JSON document (all raw numbers) and the table; ``--readme`` writes the table into
bench/README.md between the fault-matrix markers.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import signal
import time
import wave
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
from _harness import (
    REPO_ROOT,
    CallSystem,
    DagsterDaemon,
    MotoS3,
    ThrowawayPostgres,
    call_system,
    dagster_daemon,
    dagster_postgres_url,
    distinct_call_audio,
    enqueue_audio,
    exit_cleanly_on_sigterm,
    moto_s3,
    print_json,
    scratch_database,
    throwaway_postgres,
)
from psycopg.rows import dict_row

from scryon_dagster.pipeline.intake import IntakeError
from scryon_dagster.simulator.app import audio_subject

PROVIDERS = ("lemonfox", "pyannote", "llm")
PROCESSING = ("TRANSCRIBING", "ANALYZING")
TERMINAL = ("COMPLETED", "FAILED")
UNFINISHED_RUN_STATUSES = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")
# What one fault-free call costs: one transcription, one diarization job, one analysis completion.
USABLE_ANSWERS_PER_CALL = {"lemonfox": 1, "pyannote": 1, "llm": 1}
# The stage whose COMPLETED events show whether a provider's first answer was stored before the second.
PROVIDER_STAGE = {"lemonfox": "TRANSCRIBED", "pyannote": "DIARIZED", "llm": "ANALYZED"}
# Route counters of the simulator that make the "requests per call" columns.
REQUEST_ROUTES = {
    "lemonfox": "POST /v1/audio/transcriptions",
    "pyannote": "POST /v1/diarize",
    "llm": "POST /v1/chat/completions",
}
# Distinct extra milliseconds per call stay inside the simulator's 0.25-s sample recognition.
DISTINCT_EXTRAS_MS = 250
SYSTEM_SETTINGS = {
    "PYANNOTE_ENABLED": "true",
    # the simulator enforces no pyannote limit here; the shared budget would only slow the matrix
    "SCRYON_PYANNOTE_REQUESTS_PER_MINUTE": "6000",
    # ffmpeg would cost ~1.5 CPU-s per call on two shared cores; the faults are elsewhere
    "SCRYON_AUDIO_PREPROCESSING_ENABLED": "false",
}
README_BEGIN = "<!-- bench/faults.py table: begin -->"
README_END = "<!-- bench/faults.py table: end -->"


# --- the matrix ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProviderFault:
    """A rate-based simulator fault on every provider."""

    fault: str
    probability: float
    retry_after_seconds: float | None = None
    delay_seconds: float | None = None


@dataclass(frozen=True)
class Row:
    name: str
    what: str
    faults: tuple[ProviderFault, ...] = ()
    disruption: str | None = None
    storage: str = "local"
    broken_audio: bool = False
    share: float = 1.0
    """This row's calls as a share of --calls-per-row."""


ROWS = (
    Row("baseline", "none (the fault-free expectation)", share=0.5),
    Row("provider_429", "30 % of provider requests → 429, Retry-After: 1", (ProviderFault("http_429", 0.3, 1),)),
    Row(
        "provider_5xx",
        "15 % → 500 and 15 % → 503 (no Retry-After)",
        (ProviderFault("http_500", 0.15), ProviderFault("http_503", 0.15)),
    ),
    Row("truncated_body", "12 % → 200 with the JSON body cut part-way", (ProviderFault("truncated_body", 0.12),)),
    Row("slow", "25 % of provider requests answered after 4 s", (ProviderFault("slow", 0.25, delay_seconds=4),)),
    Row(
        "provider_400",
        "5 % → 400, a permanent fault (must fail fast with its code)",
        (ProviderFault("http_400", 0.05),),
        share=0.5,
    ),
    Row("worker_sigkill", "the run worker SIGKILLed mid-batch", disruption="worker_sigkill"),
    Row("daemon_sigkill", "dagster-daemon SIGKILLed mid-batch, restarted 2 s later", disruption="daemon_sigkill"),
    Row("postgres_restart", "PostgreSQL `pg_ctl restart -m fast` mid-batch", disruption="postgres_restart"),
    Row("broken_audio", "0-s WAVs and WAVs truncated to 0.09 s", broken_audio=True, share=0.1),
    Row(
        "storage_outage",
        "S3 (moto) server stopped for 15 s mid-batch",
        disruption="storage_outage",
        storage="s3",
    ),
)
ROWS_BY_NAME = {row.name: row for row in ROWS}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls-per-row", type=int, default=120)
    parser.add_argument(
        "--rows", default=",".join(ROWS_BY_NAME), help=f"comma-separated, of: {', '.join(ROWS_BY_NAME)}"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 8 calls a row, row timeout 180 s")
    parser.add_argument("--row-timeout", type=float, default=420, help="seconds for a row's calls to end")
    parser.add_argument("--settle", type=float, default=10, help="seconds to wait after the row's runs finish")
    parser.add_argument("--max-minutes", type=float, default=60, help="skip the rows that would start after this")
    parser.add_argument("--outage-seconds", type=float, default=15)
    parser.add_argument("--seed", type=int, default=14, help="the simulator's fault draws")
    parser.add_argument("--readme", action="store_true", help="write the table into bench/README.md")
    args = parser.parse_args()
    unknown = set(args.rows.split(",")) - set(ROWS_BY_NAME)
    if unknown:
        parser.error(f"unknown rows: {', '.join(sorted(unknown))}")
    if args.quick:
        args.calls_per_row, args.row_timeout = 8, 180
    return args


# --- the system under test -----------------------------------------------------------------------
@dataclass
class Matrix:
    """One running system: call database, Dagster storage and daemon, simulator, object storage."""

    system: CallSystem
    daemon: DagsterDaemon
    postgres: ThrowawayPostgres
    s3: MotoS3 | None
    dagster_storage_url: str
    calls_enqueued: int = 0

    @property
    def dagster_home(self) -> Path:
        return self.daemon.home


@contextmanager
def matrix_system(postgres: ThrowawayPostgres, s3: MotoS3 | None, seed: int) -> Iterator[Matrix]:
    overrides = {**SYSTEM_SETTINGS, **(s3.environment() if s3 else {})}
    with (
        call_system(postgres.url, overrides=overrides) as system,
        scratch_database(postgres.url, "scryon_bench_dagster") as storage_url,
    ):
        system.simulator.admin.reset(seed=seed)
        # for reading partition statuses from this process (call_system restores the environment)
        os.environ["DAGSTER_POSTGRES_URL"] = dagster_postgres_url(storage_url)
        with dagster_daemon(system.env, system.workdir / "dagster_home", storage_url) as daemon:
            yield Matrix(system, daemon, postgres, s3, storage_url)


def query(url: str, statement: str, params: Any = None) -> list[dict[str, Any]]:
    """One statement on a fresh connection, retried through a database restart."""
    deadline = time.monotonic() + 60
    while True:
        try:
            with psycopg.connect(url, row_factory=dict_row, connect_timeout=5) as conn:
                return conn.execute(statement, params).fetchall()
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def status_count(matrix: Matrix, call_ids: list[UUID], statuses: tuple[str, ...]) -> int:
    rows = query(
        matrix.system.database_url,
        "SELECT count(*) AS n FROM call_records WHERE id = ANY(%s) AND status = ANY(%s)",
        (call_ids, list(statuses)),
    )
    return int(rows[0]["n"])


def unfinished_runs(matrix: Matrix) -> list[dict[str, Any]]:
    """Dagster runs not finished yet, with their pickup batch tag."""
    return query(
        matrix.dagster_storage_url,
        "SELECT r.run_id, r.status, t.value AS batch FROM runs r "
        "LEFT JOIN run_tags t ON t.run_id = r.run_id AND t.key = 'scryon/batch' WHERE r.status = ANY(%s)",
        (list(UNFINISHED_RUN_STATUSES),),
    )


def wait_for(condition: Callable[[], bool], timeout_seconds: float, interval: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


# --- calls ---------------------------------------------------------------------------------------
@dataclass
class RowCalls:
    ids: list[UUID] = field(default_factory=list)
    transcription_subject: dict[UUID, str] = field(default_factory=dict)
    refused: Counter[str] = field(default_factory=Counter)


def enqueue_row(matrix: Matrix, row: Row, count: int) -> RowCalls:
    calls = RowCalls()
    for offset in range(count):
        index = matrix.calls_enqueued
        matrix.calls_enqueued += 1
        if row.broken_audio:
            audio, seconds = broken_wav(matrix.system, offset)
        else:
            sample = matrix.system.samples[index % len(matrix.system.samples)]
            audio, seconds = distinct_call_audio(sample, (index // len(matrix.system.samples)) % DISTINCT_EXTRAS_MS)
        try:
            call_id = enqueue_audio(matrix.system, audio, index)
        except IntakeError as refused:
            calls.refused[refused.code] += 1
            continue
        calls.ids.append(call_id)
        calls.transcription_subject[call_id] = audio_subject(seconds)
    return calls


def broken_wav(system: CallSystem, offset: int) -> tuple[bytes, float]:
    """Alternately a WAV with no audio at all and a sample cut to 0.09 s (its header still claims the
    whole recording, as a recorder that crashed leaves it)."""
    whole = system.samples[0].path.read_bytes()
    with wave.open(io.BytesIO(whole)) as reader:
        params = reader.getparams()
    frame_bytes = params.sampwidth * params.nchannels
    if offset % 2:
        header_bytes = len(whole) - params.nframes * frame_bytes
        return whole[: header_bytes + round(0.09 * params.framerate) * frame_bytes], 0.09
    empty = io.BytesIO()
    with wave.open(empty, "wb") as writer:
        writer.setparams(params._replace(nframes=0))
    return empty.getvalue(), 0.0


# --- disruptions ---------------------------------------------------------------------------------
def wait_mid_batch(matrix: Matrix, calls: RowCalls, *, need_run_worker: bool) -> bool:
    """Until a good share of the row's calls are being processed (and a run worker is alive)."""
    threshold = max(2, len(calls.ids) // 10)

    def underway() -> bool:
        if need_run_worker and not matrix.daemon.run_worker_pids():
            return False
        return status_count(matrix, calls.ids, PROCESSING) >= threshold

    return wait_for(underway, timeout_seconds=180, interval=0.2)


def statuses_now(matrix: Matrix, call_ids: list[UUID]) -> dict[str, str]:
    rows = query(matrix.system.database_url, "SELECT id, status FROM call_records WHERE id = ANY(%s)", (call_ids,))
    return {str(row["id"]): row["status"] for row in rows}


def kill_run_worker(matrix: Matrix, outage_seconds: float) -> dict[str, Any]:
    workers = matrix.daemon.run_worker_pids()
    if workers:
        os.kill(workers[0], signal.SIGKILL)
    return {"killed_pid": workers[0] if workers else None}


def kill_daemon(matrix: Matrix, outage_seconds: float) -> dict[str, Any]:
    matrix.daemon.kill()
    time.sleep(2)
    matrix.daemon.start()
    return {"daemon_starts": matrix.daemon.starts}


def restart_postgres(matrix: Matrix, outage_seconds: float) -> dict[str, Any]:
    return {"restart_seconds": round(matrix.postgres.restart(), 2)}


def storage_outage(matrix: Matrix, outage_seconds: float) -> dict[str, Any]:
    assert matrix.s3 is not None, "the storage row runs on S3"
    matrix.s3.stop()
    time.sleep(outage_seconds)
    matrix.s3.start()
    return {"outage_seconds": outage_seconds}


DISRUPTIONS: dict[str, Callable[[Matrix, float], dict[str, Any]]] = {
    "worker_sigkill": kill_run_worker,
    "daemon_sigkill": kill_daemon,
    "postgres_restart": restart_postgres,
    "storage_outage": storage_outage,
}


def disrupt(matrix: Matrix, row: Row, calls: RowCalls, outage_seconds: float) -> dict[str, Any]:
    """Once the batch is well under way: note where each call is, then break something."""
    assert row.disruption is not None
    mid_batch = wait_mid_batch(matrix, calls, need_run_worker=row.disruption == "worker_sigkill")
    at_disruption = statuses_now(matrix, calls.ids)
    details = DISRUPTIONS[row.disruption](matrix, outage_seconds)
    return {
        "mid_batch": mid_batch,
        "statuses": dict(Counter(at_disruption.values())),
        "calls": at_disruption,
        **details,
    }


# --- one row -------------------------------------------------------------------------------------
def run_row(matrix: Matrix, row: Row, args: argparse.Namespace) -> dict[str, Any]:
    admin = matrix.system.simulator.admin
    admin.clear_faults()
    for spec in row.faults:
        for provider in PROVIDERS:
            admin.set_fault(
                provider,
                spec.fault,
                times=-1,
                probability=spec.probability,
                retry_after_seconds=spec.retry_after_seconds,
                delay_seconds=spec.delay_seconds,
            )
    before = admin.stats()
    started = time.monotonic()
    calls = enqueue_row(matrix, row, max(2, round(args.calls_per_row * row.share)))
    result: dict[str, Any] = {"row": row.name, "fault": row.what}
    if matrix.daemon.process is None or matrix.daemon.process.poll() is not None:
        # a daemon that died in an earlier row would fail every row after it
        result["daemon_restarted_first"] = True
        matrix.daemon.start()
    if calls.ids:
        claimed = wait_for(lambda: status_count(matrix, calls.ids, ("QUEUED",)) < len(calls.ids), 240)
        if not claimed:
            log_tail = matrix.daemon.log_path.read_text(errors="replace").splitlines()[-15:]
            raise RuntimeError("nothing was picked up within 240 s; the daemon log ends:\n" + "\n".join(log_tail))
        if row.disruption:
            result["disruption"] = disrupt(matrix, row, calls, args.outage_seconds)
        remaining = args.row_timeout - (time.monotonic() - started)
        result["all_terminal"] = wait_for(
            lambda: status_count(matrix, calls.ids, TERMINAL) == len(calls.ids), remaining, interval=1
        )
        # the runs report their last materializations when they end
        result["runs_finished"] = wait_for(lambda: not unfinished_runs(matrix), 90, interval=1)
        time.sleep(args.settle)
    admin.clear_faults()
    result["seconds"] = round(time.monotonic() - started, 1)
    result["load_average_1min"] = round(os.getloadavg()[0], 1)  # the machine is shared
    result.update(measure(matrix, calls, before, admin.stats(), admin.subject_stats()))
    if "disruption" in result:
        # were the calls paid twice mid-stage when it struck (an answer lost with a process), or done?
        at_disruption = result["disruption"].pop("calls")
        result["paid_twice_status_at_disruption"] = dict(
            Counter(at_disruption.get(call, "?") for call in result["paid_twice_calls"])
        )
    return result


def measure(
    matrix: Matrix,
    calls: RowCalls,
    before: dict[str, Any],
    after: dict[str, Any],
    subjects: dict[str, dict[str, dict[str, int]]],
) -> dict[str, Any]:
    records = query(
        matrix.system.database_url,
        "SELECT c.id, c.status, c.error_reason, c.claim_id, "
        "EXISTS (SELECT 1 FROM call_artifacts a WHERE a.call_id = c.id AND a.artifact_type = 'DIARIZATION_JSON') "
        "AS diarized FROM call_records c WHERE c.id = ANY(%s)",
        (calls.ids,),
    )
    live_batches = {run["batch"] for run in unfinished_runs(matrix) if run["batch"]}
    failed: Counter[str] = Counter()
    lost, stuck, without_diarization = [], [], 0
    for record in records:
        if record["status"] == "FAILED":
            failed[record["error_reason"] or "?"] += 1
        elif record["status"] == "COMPLETED":
            without_diarization += not record["diarized"]
        elif record["status"] == "QUEUED" or str(record["claim_id"]) in live_batches:
            stuck.append(str(record["id"]))
        else:
            lost.append(str(record["id"]))
    paid_twice = paid_twice_by_provider(calls, subjects)
    return {
        "paid_twice_stage_completions": stage_completions(matrix, paid_twice),
        "calls": len(calls.ids) + sum(calls.refused.values()),
        "refused": dict(calls.refused),
        "completed": sum(1 for record in records if record["status"] == "COMPLETED"),
        "completed_without_diarization": without_diarization,
        "failed": dict(failed.most_common()),
        "lost": lost,
        "stuck": stuck,
        "paid_twice": {provider: len(ids) for provider, ids in paid_twice.items()},
        "paid_twice_calls": sorted({call for ids in paid_twice.values() for call in ids}),
        "requests_per_call": requests_per_call(before, after, len(calls.ids)),
        "faults_served": fault_counts(before, after),
        "dagster_disagreements": dagster_disagreements(matrix, records),
    }


def paid_twice_by_provider(calls: RowCalls, subjects: dict[str, dict[str, dict[str, int]]]) -> dict[str, list[str]]:
    """Per provider: the calls with more usable answers than a fault-free call needs."""
    over: dict[str, list[str]] = {provider: [] for provider in PROVIDERS}
    for call_id in calls.ids:
        subject_of = {"lemonfox": calls.transcription_subject[call_id], "pyannote": str(call_id), "llm": str(call_id)}
        for provider, subject in subject_of.items():
            answers = subjects.get(subject, {}).get(provider, {}).get("answers", 0)
            if answers > USABLE_ANSWERS_PER_CALL[provider]:
                over[provider].append(str(call_id))
    return over


def stage_completions(matrix: Matrix, paid_twice: dict[str, list[str]]) -> dict[str, dict[str, int]]:
    """For the calls paid twice: how many had the stage COMPLETED once (the first answer was lost
    before it was stored, e.g. with a killed worker) or more often (a stored output was not reused)."""
    spread: dict[str, dict[str, int]] = {}
    for provider, call_ids in paid_twice.items():
        if not call_ids:
            continue
        rows = query(
            matrix.system.database_url,
            "SELECT c.id, count(e.id) AS n FROM call_records c LEFT JOIN call_processing_events e "
            "ON e.call_id = c.id AND e.stage = %s AND e.status = 'COMPLETED' WHERE c.id = ANY(%s) GROUP BY c.id",
            (PROVIDER_STAGE[provider], [UUID(call_id) for call_id in call_ids]),
        )
        spread[provider] = {f"completed {n}x": count for n, count in Counter(int(row["n"]) for row in rows).items()}
    return spread


def requests_per_call(before: dict[str, Any], after: dict[str, Any], calls: int) -> dict[str, float]:
    def routed(stats: dict[str, Any], provider: str) -> int:
        return int(stats["requests"].get(provider, {}).get(REQUEST_ROUTES[provider], 0))

    return {
        provider: round((routed(after, provider) - routed(before, provider)) / calls, 2) if calls else 0.0
        for provider in PROVIDERS
    }


def fault_counts(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, int]]:
    served: dict[str, dict[str, int]] = {}
    for provider, faults in after["faults_served"].items():
        for name, count in faults.items():
            delta = count - before["faults_served"].get(provider, {}).get(name, 0)
            if delta:
                served.setdefault(provider, {})[name] = delta
    return served


def dagster_disagreements(matrix: Matrix, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Terminal calls whose partitions in Dagster tell another story than the call database."""
    import dagster as dg

    from scryon_dagster.partitions import calls_partitions

    terminal = [record for record in records if record["status"] in TERMINAL]
    keys = [str(record["id"]) for record in terminal]
    if not keys:
        return {"count": 0, "examples": []}
    assets = ("normalized_transcript", "analysis")
    with dg.DagsterInstance.from_config(str(matrix.dagster_home)) as instance:
        # the status the UI's partition view shows, and, to tell where a disagreement comes from,
        # whether a materialization event exists at all
        status = {
            asset: instance.get_status_by_partition(dg.AssetKey(asset), keys, calls_partitions) or {}
            for asset in assets
        }
        recorded = {asset: instance.get_materialized_partitions(dg.AssetKey(asset)) for asset in assets}
    materialized = dg.AssetPartitionStatus.MATERIALIZED
    disagreements = []
    for record, key in zip(terminal, keys, strict=True):
        transcript, analysis = status["normalized_transcript"].get(key), status["analysis"].get(key)
        if record["status"] == "COMPLETED":
            disagrees = transcript is not materialized or analysis is not materialized
        else:
            disagrees = analysis is materialized
        if disagrees:
            disagreements.append(
                {
                    "call": key,
                    "database": record["status"],
                    "normalized_transcript": transcript.value if transcript else "missing",
                    "analysis": analysis.value if analysis else "missing",
                    "materialization_events": [asset for asset in assets if key in recorded[asset]],
                }
            )
    with_events = sum(1 for entry in disagreements if entry["materialization_events"])
    return {"count": len(disagreements), "with_materialization_events": with_events, "examples": disagreements[:5]}


# --- the table -----------------------------------------------------------------------------------
TABLE_HEADER = (
    "| row | fault | calls | COMPLETED | FAILED by code | refused at enqueue | lost | stuck | paid twice "
    "| Dagster ≠ DB | requests per call: transcription / pyannote jobs / LLM | COMPLETED w/o diarization "
    "| row time (s) |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def table_row(result: dict[str, Any]) -> str:
    if "skipped" in result:
        reason = result["skipped"].splitlines()[0]  # the JSON keeps the whole message
        return f"| {result['row']} | {result['fault']} | skipped: {reason} |" + " |" * 10
    failed = ", ".join(f"{code} {count}" for code, count in result["failed"].items()) or "0"
    refused = ", ".join(f"{code} {count}" for code, count in result["refused"].items()) or "0"
    paid_text = str(len(result["paid_twice_calls"]))
    if result["paid_twice_calls"]:
        paid_text += " (" + ", ".join(f"{p} {n}" for p, n in result["paid_twice"].items() if n) + ")"
    per_call = result["requests_per_call"]
    return (
        f"| {result['row']} | {result['fault']} | {result['calls']} | {result['completed']} | {failed} "
        f"| {refused} | {len(result['lost'])} | {len(result['stuck'])} | {paid_text} "
        f"| {result['dagster_disagreements']['count']} "
        f"| {per_call['lemonfox']} / {per_call['pyannote']} / {per_call['llm']} "
        f"| {result['completed_without_diarization']} | {result['seconds']} |"
    )


def table(results: list[dict[str, Any]]) -> str:
    total = sum(result.get("calls", 0) for result in results)
    return "\n".join([TABLE_HEADER, *map(table_row, results), "", f"Total: {total} calls."])


def write_readme(text: str) -> None:
    readme = REPO_ROOT / "bench" / "README.md"
    content = readme.read_text()
    block = f"{README_BEGIN}\n{text}\n{README_END}"
    if README_BEGIN in content and README_END in content:
        head, rest = content.split(README_BEGIN, 1)
        content = head + block + rest.split(README_END, 1)[1]
    else:
        content = content.rstrip("\n") + f"\n\n## Fault matrix (issue 14)\n\n{block}\n"
    readme.write_text(content)


# --- main ----------------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> dict[str, Any]:
    selected = [ROWS_BY_NAME[name] for name in ROWS_BY_NAME if name in args.rows.split(",")]
    started = time.monotonic()
    results: list[dict[str, Any]] = []
    header: dict[str, Any] = {
        "arguments": vars(args),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"nproc": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
    }
    with throwaway_postgres() as postgres:
        header["postgres"] = query(postgres.url, "SELECT version() AS v")[0]["v"].split(" on ")[0]
        for storage in ("local", "s3"):
            rows = [row for row in selected if row.storage == storage]
            if not rows:
                continue
            with (
                moto_s3() if storage == "s3" else nullcontext() as s3,
                matrix_system(postgres, s3, args.seed) as matrix,
            ):
                for row in rows:
                    elapsed_minutes = (time.monotonic() - started) / 60
                    if elapsed_minutes > args.max_minutes:
                        results.append({"row": row.name, "fault": row.what, "skipped": "--max-minutes reached"})
                        continue
                    try:
                        result = run_row(matrix, row, args)
                    except Exception as exc:  # one broken row must not cost the others their figures
                        result = {"row": row.name, "fault": row.what, "skipped": f"error: {exc}"}
                    results.append(result)
                    print(table_row(result), flush=True)
    header["results"] = results
    header["wall_minutes"] = round((time.monotonic() - started) / 60, 1)
    return header


def main() -> None:
    exit_cleanly_on_sigterm()
    args = parse_args()
    result = run(args)
    print_json(result)
    text = table(result["results"])
    print(text)
    if args.readme:
        write_readme(text)


if __name__ == "__main__":
    main()
