"""End to end: `dagster dev` (webserver, daemon, code server) on PostgreSQL-backed Dagster storage, the
call database, the S3-compatible server and the provider simulator. Calls are queued the way intake
queues them; the QUEUED sensor must carry every one to COMPLETED or to FAILED with the expected code."""

from __future__ import annotations

from pathlib import Path

import pytest

from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.domain.calls import CallStatus
from scryon_dagster.simulator import SimulatorServer
from tests.e2e.harness import wait_until_terminal
from tests.fixtures.pipeline import Enqueue, sample_by_slug

pytestmark = pytest.mark.e2e

PRIVATE_WORDS = ["Praveen", "Raman", "Jimmy", "DocuSign", "warehouse", "renewal", "2025550143", "Alex Morgan"]


def test_the_daemon_processes_every_queued_call_once(
    dagster_dev: str,
    dagster_home: Path,
    db: CallDatabase,
    simulator: SimulatorServer,
    enqueue_sample: Enqueue,
) -> None:
    # faults chosen per call: the voicemail's transcription is refused, one call's analysis is refused
    simulator.admin.set_fault(
        "lemonfox", "http_400", times=-1, match_audio_seconds=sample_by_slug("voicemail").duration_seconds
    )
    healthy = [
        enqueue_sample(slug) for slug in ("greeting_by_name", "self_introduction", "answering_pattern", "no_names")
    ]
    refused_transcription = enqueue_sample("voicemail")
    refused_analysis = enqueue_sample("three_party")
    simulator.admin.set_fault("llm", "refusal", times=-1, match_call_id=str(refused_analysis))
    simulator.admin.set_fault("pyannote", "http_500", times=2)  # transient: retried, nothing fails
    everything = [*healthy, refused_transcription, refused_analysis]

    final = wait_until_terminal(db, everything)

    assert final == {
        **{call_id: (CallStatus.COMPLETED, None) for call_id in healthy},
        refused_transcription: (CallStatus.FAILED, "transcription_4xx"),
        refused_analysis: (CallStatus.FAILED, "analysis_invalid_output"),
    }
    for call_id in everything:
        call = db.get_call(call_id)
        assert call is not None
        assert call.attempt == 1  # claimed and launched exactly once
        started = [e for e in db.list_events(call_id) if (e.stage, e.status) == ("TRANSCRIBED", "STARTED")]
        assert len(started) == 1
    for call_id in healthy:
        assert db.list_action_items(call_id) or db.get_sentiment_summary(call_id) is not None

    # privacy: nothing personal in Dagster's compute logs (stdout/stderr of every run and tick) nor in
    # what the webserver, daemon and code server printed
    compute_logs = [path for path in (dagster_home / "storage").rglob("*") if path.suffix in {".out", ".err"}]
    assert compute_logs
    printed = "\n".join(path.read_text(errors="replace") for path in [*compute_logs, dagster_home / "dagster-dev.log"])
    assert str(healthy[0]) in printed or "batch" in printed
    for word in PRIVATE_WORDS:
        assert word not in printed
