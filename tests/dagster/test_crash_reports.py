"""A run that died after completing calls in the call database, before handing their materializations
to Dagster: the crash sensor's report makes Dagster agree, with the provenance the run would have given."""

from __future__ import annotations

from uuid import uuid4

import dagster as dg

from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.domain.calls import CallStatus
from scryon_dagster.jobs.calls import PROCESS_LISTED_CALLS_JOB
from scryon_dagster.partitions import CALLS_PARTITIONS
from scryon_dagster.pipeline.outcomes import PipelineAsset
from scryon_dagster.pipeline.runner import CallPipeline
from scryon_dagster.sensors.queued_calls import report_unrecorded_completions
from tests.fixtures.pipeline import Enqueue
from tests.pipeline.test_call_pipeline import run


def test_calls_a_dead_run_completed_are_reported_with_their_provenance_once(
    instance: dg.DagsterInstance, pipeline: CallPipeline, db: CallDatabase, enqueue_sample: Enqueue
) -> None:
    call_id = enqueue_sample("no_names")
    assert run(pipeline, [call_id])[call_id].succeeded  # completed, as if by the run that died
    call = db.get_call(call_id)
    assert call is not None
    assert call.status is CallStatus.COMPLETED
    instance.add_dynamic_partitions(CALLS_PARTITIONS, [str(call_id)])
    assets = [PipelineAsset.RAW_TRANSCRIPT, PipelineAsset.NORMALIZED_TRANSCRIPT, PipelineAsset.ANALYSIS]
    dead_run = dg.DagsterRun(
        job_name=PROCESS_LISTED_CALLS_JOB,
        run_id=str(uuid4()),
        run_config={
            "ops": {
                "process_listed_calls_op": {"config": {"call_ids": [str(call_id)], "assets": [a.value for a in assets]}}
            }
        },
        status=dg.DagsterRunStatus.FAILURE,
    )
    instance.add_run(dead_run)

    assert report_unrecorded_completions(instance, dead_run, db, [call]) == 1

    for asset in assets:
        assert instance.get_materialized_partitions(dg.AssetKey(asset.value)) == {str(call_id)}
    analysis = instance.get_latest_materialization_event(dg.AssetKey(PipelineAsset.ANALYSIS.value))
    assert analysis is not None
    assert analysis.asset_materialization is not None
    tags = analysis.asset_materialization.tags or {}
    assert tags["dagster/code_version"].startswith("analysis-v")
    assert "dagster/input_data_version/normalized_transcript" in tags
    assert "dagster/data_version" in tags
    # diarization was not planned by that run: nothing is reported for it
    assert instance.get_materialized_partitions(dg.AssetKey(PipelineAsset.DIARIZATION.value)) == set()
