"""The real pipeline inside Dagster (real PostgreSQL, S3 server, simulator, ffmpeg): per-partition
materializations, failure display, re-derivation, and the privacy rule over everything Dagster keeps."""

from __future__ import annotations

import json
import logging
from uuid import UUID, uuid4

import dagster as dg
import pytest

from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.object_store import ObjectStore
from scryon_dagster.dagster_private import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from scryon_dagster.definitions import defs
from scryon_dagster.domain.calls import ArtifactType, CallStatus
from scryon_dagster.partitions import BATCH_TAG, CALLS_PARTITIONS
from scryon_dagster.simulator import SimulatorServer
from tests.fixtures.pipeline import Enqueue, sample_by_slug

CANARY_EMAIL = "quentin.canary@example.org"
# What must never leave the call's artifacts: call metadata and words only the transcript contains.
CANARIES = [
    "Praveen", "Raman", "Alex Morgan", "Delivery schedule", "2025550143", "5550143", "202-555", CANARY_EMAIL,
    "shipment", "warehouse", "carrier", "invoice",
]  # fmt: skip


def _launch_batch(instance: dg.DagsterInstance, call_ids: list[UUID]) -> dg.ExecuteInProcessResult:
    keys = [str(call_id) for call_id in call_ids]
    instance.add_dynamic_partitions(CALLS_PARTITIONS, keys)
    batch = uuid4()
    return defs.resolve_job_def("process_calls").execute_in_process(
        instance=instance,
        tags={ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1], BATCH_TAG: str(batch)},
        raise_on_error=False,
    )


def test_a_batch_shows_successes_as_materialized_and_the_failed_call_as_failed(
    pipeline_env: dict[str, str],
    db: CallDatabase,
    simulator: SimulatorServer,
    enqueue_sample: Enqueue,
    instance: dg.DagsterInstance,
) -> None:
    good = enqueue_sample("greeting_by_name")
    bad = enqueue_sample("voicemail")
    simulator.admin.set_fault(
        "lemonfox", "http_400", times=-1, match_audio_seconds=sample_by_slug("voicemail").duration_seconds
    )

    result = _launch_batch(instance, [good, bad])

    assert not result.success
    for asset in ("raw_transcript", "normalized_transcript", "analysis"):
        assert instance.get_materialized_partitions(dg.AssetKey(asset)) == {str(good)}
    assert instance.get_materialized_partitions(dg.AssetKey("diarization")) == {str(good)}
    statuses = instance.get_status_by_partition(
        dg.AssetKey("raw_transcript"), [str(good), str(bad)], dg.DynamicPartitionsDefinition(name=CALLS_PARTITIONS)
    )
    assert statuses is not None
    assert str(statuses[str(bad)]).endswith("FAILED")
    bad_call = db.get_call(bad)
    assert bad_call is not None
    assert (bad_call.status, bad_call.error_reason) == (CallStatus.FAILED, "transcription_4xx")

    # Reprocess from the UI: materialize the failed call's partition once the provider behaves.
    simulator.admin.clear_faults()
    again = defs.resolve_job_def("process_calls").execute_in_process(instance=instance, partition_key=str(bad))
    assert again.success
    bad_call = db.get_call(bad)
    assert bad_call is not None
    assert bad_call.status is CallStatus.COMPLETED
    assert bad_call.attempt == 2


def test_rederive_job_touches_only_normalization_and_analysis(
    pipeline_env: dict[str, str],
    db: CallDatabase,
    simulator: SimulatorServer,
    enqueue_sample: Enqueue,
    instance: dg.DagsterInstance,
) -> None:
    call_id = enqueue_sample("no_names")
    assert _launch_batch(instance, [call_id]).success
    simulator.admin.reset_stats()

    result = defs.resolve_job_def("rederive_transcripts").execute_in_process(
        instance=instance, partition_key=str(call_id)
    )

    assert result.success
    assert simulator.admin.stats()["requests_total"] == {"llm": 1}
    records = instance.fetch_materializations(dg.AssetKey("normalized_transcript"), limit=10).records
    assert len(records) == 2


def test_nothing_personal_reaches_dagster_or_our_logs(
    pipeline_env: dict[str, str],
    db: CallDatabase,
    enqueue_sample: Enqueue,
    instance: dg.DagsterInstance,
    caplog: pytest.LogCaptureFixture,
) -> None:
    db.ensure_user("user-greeting_by_name", email=CANARY_EMAIL)
    call_id = enqueue_sample("greeting_by_name", notes=f"write to {CANARY_EMAIL}")
    failing = enqueue_sample("no_names", recorded_at=None)
    with db.transaction() as cur:  # break one call so that failure paths are covered too
        cur.execute("DELETE FROM call_artifacts WHERE call_id = %s AND artifact_type = 'TEMP_AUDIO'", (failing,))
    caplog.set_level(logging.DEBUG)

    result = _launch_batch(instance, [call_id, failing])

    run = instance.get_run_by_id(result.run_id)
    assert run is not None
    kept = [json.dumps(run.run_config), json.dumps(dict(run.tags))]
    kept += [record.event_log_entry.to_json() if hasattr(record, "event_log_entry") else str(record)
             for record in instance.all_logs(result.run_id)]  # fmt: skip
    kept += [record.getMessage() for record in caplog.records]
    text = "\n".join(kept)
    assert str(call_id) in text  # ids are fine, and prove we looked at the right run
    for canary in CANARIES:
        assert canary.lower() not in text.lower(), f"{canary!r} leaked"


def test_asset_checks_find_an_unreadable_artifact(
    pipeline_env: dict[str, str],
    db: CallDatabase,
    store: ObjectStore,
    enqueue_sample: Enqueue,
    instance: dg.DagsterInstance,
) -> None:
    good, broken = enqueue_sample("no_names"), enqueue_sample("greeting_by_name")
    assert _launch_batch(instance, [good, broken]).success
    normalized = db.get_artifacts(broken)[ArtifactType.NORMALIZED_TRANSCRIPT_JSON]
    store.put_bytes(normalized.storage_key, b"{not json", "application/json")

    result = defs.resolve_job_def("check_stored_artifacts").execute_in_process(instance=instance, raise_on_error=False)

    evaluations = [
        event.event_specific_data for event in result.all_events if event.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    outcomes = {evaluation.asset_key.path[-1]: evaluation for evaluation in evaluations}
    assert set(outcomes) == {"diarization", "raw_transcript", "normalized_transcript", "analysis"}
    assert not outcomes["normalized_transcript"].passed
    assert outcomes["normalized_transcript"].metadata["unreadable_call_ids"].value == str(broken)
    assert all(outcomes[name].passed for name in ("diarization", "raw_transcript", "analysis"))
