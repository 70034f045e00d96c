"""Long calls end to end (issue 23): 10-, 60- and 120-minute recordings, as users upload them (AAC .m4a),
through the real daemon and QUEUED sensor (`dagster dev`, production instance config) and the provider
simulator's ``realistic`` profile, one call at a time; then a batch of one-hour calls queued at once.

    .venv/bin/python bench/long_calls.py --minutes 10 60 120 --batch-calls 32 --batch-minutes 60

Per call: whether preprocessing was done (AUDIO_PREPROCESSED COMPLETED, not fallen back) and how long it
took, the CPU seconds of the Dagster process tree (ffmpeg included) while the call ran, the run worker's
peak RSS, enqueue → terminal (COMPLETED, or FAILED with its code) and the stage trail. For the batch: the
run workers' peak RSS against ``SCRYON_RUN_WORKER_MEMORY_MB`` and the calls' outcomes. Each recording is
a sample looped to length and encoded with the ffmpeg of the ``imageio-ffmpeg`` wheel (AAC, 32 kbit/s,
about 14 MB an hour, like the issue's 15-MB hour). Pyannote is on: diarization runs as its guard
(``SCRYON_DIARIZATION_MAX_AUDIO_MINUTES``) decides.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import imageio_ffmpeg
from _harness import (
    DEFAULT_SERVER_URL,
    CallSystem,
    Meter,
    call_system,
    cost_window,
    dagster_dev,
    enqueue_audio,
    exit_cleanly_on_sigterm,
    print_json,
    scratch_database,
    stage_durations,
    status_counts,
    wait_for_runs_to_exit,
    wait_until_terminal,
)

from scryon_dagster.settings import Settings

AAC_BITRATE = "32k"
MIB = 2**20


def long_recording(system: CallSystem, index: int, minutes: float) -> bytes:
    """Sample ``index`` looped to ``minutes`` and encoded as an AAC .m4a."""
    source = system.samples[index % len(system.samples)].path
    target = system.workdir / f"long-{index}-{minutes:g}min.m4a"
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-stream_loop", "-1", "-i", str(source)]
    command += ["-t", str(minutes * 60), "-ac", "1", "-c:a", "aac", "-b:a", AAC_BITRATE, str(target)]
    subprocess.run(command, check=True, timeout=600)
    audio = target.read_bytes()
    target.unlink()
    return audio


def stage_trail(system: CallSystem, call_id: UUID) -> list[str]:
    """``STAGE:STATUS[:code or reason]`` of every finished stage event, in order."""
    rows = system.db.query(
        "SELECT stage, status, coalesce(error_code, error_message, '') AS why FROM call_processing_events "
        "WHERE call_id = %s AND status <> 'STARTED' AND stage <> 'STATUS' ORDER BY created_at, id",
        (call_id,),
    )
    return [f"{row['stage']}:{row['status']}{':' + row['why'] if row['why'] else ''}" for row in rows]


def preprocessing(system: CallSystem, call_id: UUID) -> dict[str, Any]:
    """ffmpeg's stage (done or fallen back, and how long it took) and the fallback to the recording as
    uploaded that a WAV over Lemonfox's upload limit takes after it (an event of its own, without a duration)."""
    rows = system.db.query(
        "SELECT status, error_code, duration_ms FROM call_processing_events "
        "WHERE call_id = %s AND stage = 'AUDIO_PREPROCESSED' AND status <> 'STARTED' ORDER BY created_at, id",
        (call_id,),
    )
    stage = next((row for row in rows if row["duration_ms"] is not None), None)
    if stage is None:
        return {"done": False, "why": "no AUDIO_PREPROCESSED stage event"}
    return {
        "done": stage["status"] == "COMPLETED" and stage["error_code"] is None,
        "fallback_reason": stage["error_code"],
        "seconds": round(stage["duration_ms"] / 1000, 1),
        "transcribed_from": (
            "recording_as_uploaded"
            if stage["error_code"] or any(row["duration_ms"] is None and row["error_code"] for row in rows)
            else "preprocessed_wav"
        ),
    }


def one_long_call(system: CallSystem, dagster_pid: int, index: int, minutes: float, timeout: float) -> dict[str, Any]:
    audio = long_recording(system, index, minutes)
    meter = Meter({"dagster": dagster_pid}).start()
    with cost_window({"dagster": dagster_pid}) as cpu:
        enqueued = time.monotonic()
        call_id = enqueue_audio(system, audio, index, "call.m4a")
        finished = wait_until_terminal(system.db, [call_id], timeout)
        to_terminal = time.monotonic() - enqueued
        wait_for_runs_to_exit(meter, timeout_seconds=120)
    meter.stop()
    return {
        "audio_minutes": minutes,
        "upload_mb": round(len(audio) / MIB, 1),
        "status": status_counts(system.db, [call_id]),
        "finished": finished,
        "enqueue_to_terminal_s": round(to_terminal, 1),
        "preprocessing": preprocessing(system, call_id),
        "dagster_cpu_s": cpu["dagster"],
        "machine_busy_cpu_s": cpu["machine_busy"],
        "dagster_cpu_s_by_role": meter.cpu_by_role(),
        "run_worker_peak_rss_mb": round(meter.peak_rss_by_role.get("run_worker", 0) / MIB),
        "stages": stage_trail(system, call_id),
        "stages_s": stage_durations(system.db, [call_id]),
    }


def queue_batch(system: CallSystem, count: int, minutes: float) -> list[UUID]:
    # two distinct recordings (encoding an hour takes minutes on a busy machine); each call stores its own copy
    recordings = [long_recording(system, index, minutes) for index in range(min(count, 2))]
    return [enqueue_audio(system, recordings[i % len(recordings)], i, "call.m4a") for i in range(count)]


def batch(
    system: CallSystem, dagster_pid: int, args: argparse.Namespace, queued: list[UUID], memory_setting_mb: int
) -> dict[str, Any]:
    """The batch's calls: ``queued`` before the daemon started (timed from here), or queued now."""
    count, minutes, timeout = args.batch_calls, args.batch_minutes, args.timeout
    meter = Meter({"dagster": dagster_pid}).start()
    with cost_window({"dagster": dagster_pid}) as cpu:
        started = time.monotonic()
        call_ids = queued or queue_batch(system, count, minutes)
        finished = wait_until_terminal(system.db, call_ids, timeout)
        window = time.monotonic() - started
        wait_for_runs_to_exit(meter, timeout_seconds=300)
    meter.stop()
    return {
        "calls": count,
        "queued_before_the_daemon_started": bool(queued),
        "audio_minutes_each": minutes,
        "all_terminal": finished,
        "statuses": status_counts(system.db, call_ids),
        "enqueue_to_all_terminal_s": round(window, 1),
        "run_worker_peak_rss_mb": round(meter.peak_rss_by_role.get("run_worker", 0) / MIB),
        "run_worker_memory_setting_mb": memory_setting_mb,
        "dagster_tree_peak_rss_mb": round(meter.peak_rss.get("dagster", 0) / MIB),
        "dagster_cpu_s": cpu["dagster"],
        "machine_busy_cpu_s": cpu["machine_busy"],
        "stages_s": stage_durations(system.db, call_ids),
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="*", default=[10, 60, 120], help="one call of each length")
    parser.add_argument("--batch-calls", type=int, default=32, help="0: no batch")
    parser.add_argument("--batch-minutes", type=float, default=60)
    parser.add_argument(
        "--batch-queued-first",
        action="store_true",
        help="queue the batch before the daemon starts, so that one pickup (one run worker) takes all of it",
    )
    parser.add_argument("--profile", choices=("fast", "realistic"), default="realistic")
    parser.add_argument("--timeout", type=float, default=3600, help="per call, and for the batch")
    parser.add_argument(
        "--lemonfox-max-upload-bytes",
        type=int,
        default=None,
        help="LEMONFOX_MAX_UPLOAD_BYTES (default: the setting's, Lemonfox's documented 100 MB)",
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="another setting for the workers"
    )
    parser.add_argument("--server-url", default=DEFAULT_SERVER_URL)
    return parser.parse_args()


def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"arguments": vars(args), "nproc": os.cpu_count()}
    overrides = {"PYANNOTE_ENABLED": "true"}
    if args.lemonfox_max_upload_bytes is not None:
        overrides["LEMONFOX_MAX_UPLOAD_BYTES"] = str(args.lemonfox_max_upload_bytes)
    overrides.update(setting.split("=", 1) for setting in args.set)
    with (
        call_system(args.server_url, profile=args.profile, overrides=overrides) as system,
        scratch_database(args.server_url, "scryon_bench_dagster") as storage_url,
    ):
        queued = queue_batch(system, args.batch_calls, args.batch_minutes) if args.batch_queued_first else []
        with dagster_dev(system.env, Path(system.workdir / "dagster_home"), storage_url) as dev:
            pid = dev.process.pid
            result["calls"] = [
                one_long_call(system, pid, index, minutes, args.timeout) for index, minutes in enumerate(args.minutes)
            ]
            if args.batch_calls > 0:
                memory_setting_mb = int(
                    overrides.get("SCRYON_RUN_WORKER_MEMORY_MB")
                    or Settings.model_fields["scryon_run_worker_memory_mb"].get_default()
                )
                result["batch"] = batch(system, pid, args, queued, memory_setting_mb)
    return result


def main() -> None:
    exit_cleanly_on_sigterm()
    print_json(run(parse_args()))


if __name__ == "__main__":
    main()
