"""Batch steps on Celery workers of two other hosts (network namespaces), every service reached over
the virtual network, object storage in S3: each call completes exactly once, no provider answer is
paid twice, and the hosts share one pyannote request budget."""

from __future__ import annotations

from pathlib import Path

import pytest
from _harness import distinct_call_audio, enqueue_audio, status_counts, wait_until_terminal
from multihost_bed import celery_workers_of_runs, completions_per_call, multihost_bed, netns_available

from scryon_dagster.simulator.app import audio_subject

CALLS = 6
PYANNOTE_PER_MINUTE = 40

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module", autouse=True)
def _needs_network_namespaces() -> None:
    if (reason := netns_available()) is not None:
        pytest.skip(f"the multi-host bed cannot run here: {reason}")


def test_calls_complete_once_across_two_worker_hosts(tmp_path: Path) -> None:
    overrides = {
        # three batches of two, so that both worker hosts take batches
        "SCRYON_SENSOR_BATCH_SIZE": "2",
        "SCRYON_QUEUED_SENSOR_INTERVAL_SECONDS": "1",
        "SCRYON_PYANNOTE_REQUESTS_PER_MINUTE": str(PYANNOTE_PER_MINUTE),
    }
    with multihost_bed(worker_hosts=2, worker_concurrency=1, overrides=overrides, keep_logs_in=tmp_path) as bed:
        bed.start()
        system = bed.system
        # the provider refuses (429) anything past the budget in any sliding minute: none may reach it
        system.simulator.admin.set_rate_limit("pyannote", PYANNOTE_PER_MINUTE)
        subjects_of: dict[str, str] = {}
        call_ids = []
        for index in range(CALLS):
            audio, seconds = distinct_call_audio(system.samples[index % len(system.samples)], 250 * (index + 1))
            call_id = enqueue_audio(system, audio, index)
            call_ids.append(call_id)
            subjects_of[str(call_id)] = audio_subject(seconds)

        assert wait_until_terminal(system.db, call_ids, timeout_seconds=600), status_counts(system.db, call_ids)

        assert status_counts(system.db, call_ids) == {"COMPLETED": CALLS}
        assert set(completions_per_call(system.db, call_ids).values()) == {1}
        subjects = system.simulator.admin.subject_stats()
        for call_id in map(str, call_ids):
            assert subjects[subjects_of[call_id]]["lemonfox"]["answers"] == 1
            assert subjects[call_id]["pyannote"]["answers"] == 1
            assert subjects[call_id]["llm"]["answers"] == 1
        stats = system.simulator.admin.stats()
        assert stats["rate_limited"].get("pyannote", 0) == 0
        # the steps ran on the worker hosts, both of them, never on the daemon's
        hosts = {worker.split("@")[0] for worker in celery_workers_of_runs(bed).values()}
        assert hosts == set(bed.worker_names())
