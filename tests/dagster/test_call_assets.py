"""The Dagster wiring of the per-call assets, with the pipeline replaced at its resource edge."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from uuid import UUID, uuid4

import dagster as dg
import pytest
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from dagster_shared.serdes import serialize_value

from scryon_dagster.assets.calls import call_pipeline
from scryon_dagster.definitions import defs
from scryon_dagster.jobs.calls import process_calls_job, process_listed_calls_job, rederive_transcripts_job
from scryon_dagster.partitions import BATCH_TAG, calls_partitions
from scryon_dagster.pipeline.outcomes import CallOutcome, PipelineAsset, StageSelection

ALL_ASSETS = [asset.value for asset in PipelineAsset]


class RecordingPipeline(dg.ConfigurableResource):
    """Stands in for PipelineResource: fails the calls listed in ``failing`` and records what it ran."""

    failing: list[str] = []
    calls_seen: list[list[str]] = []

    def run_batch(
        self,
        call_ids: Sequence[UUID],
        selection: StageSelection,
        *,
        batch_id: UUID | None,
        run_id: str,
        take_idle: bool = True,
    ) -> Iterator[CallOutcome]:
        type(self).calls_seen.append([str(c) for c in call_ids] + sorted(a.value for a in selection.assets))
        for call_id in call_ids:
            if str(call_id) in self.failing:
                yield CallOutcome(call_id, error_code="transcription_4xx")
            else:
                yield CallOutcome(call_id, materialized={asset: {"size_bytes": 10} for asset in selection.assets})


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as test_instance:
        yield test_instance


def _keys(instance: dg.DagsterInstance, count: int) -> list[str]:
    keys = [str(uuid4()) for _ in range(count)]
    instance.add_dynamic_partitions(calls_partitions.name, keys)
    return keys


def _job(name: str, failing: Sequence[str] = ()) -> dg.JobDefinition:
    """The job as defined, with the pipeline resource swapped for the recording fake."""
    RecordingPipeline.calls_seen = []
    test_defs = dg.Definitions(
        assets=[call_pipeline],
        jobs=[process_calls_job, process_listed_calls_job, rederive_transcripts_job],
        resources={"pipeline": RecordingPipeline(failing=list(failing))},
    )
    return test_defs.resolve_job_def(name)


def test_definitions_load() -> None:
    repository = defs.get_repository_def()
    assert {"process_calls", "process_listed_calls", "rederive_transcripts", "set_feature_flag"} <= {
        job.name for job in repository.get_all_jobs()
    }
    assert {"queued_calls_sensor", "crashed_batch_sensor"} <= {sensor.name for sensor in repository.sensor_defs}
    # what a code server sends to the webserver and daemon must serialize
    assert serialize_value(RepositorySnap.from_def(repository))


@pytest.mark.parametrize("instance_fixture", ["instance", "pooled_instance"])  # SQLite, production's storage
def test_ranged_run_materializes_each_succeeded_call_and_fails_only_the_failed_ones(
    instance_fixture: str, request: pytest.FixtureRequest
) -> None:
    instance: dg.DagsterInstance = request.getfixturevalue(instance_fixture)
    keys = _keys(instance, 4)
    job = _job("process_calls", failing=[keys[1]])

    result = job.execute_in_process(
        instance=instance,
        tags={
            ASSET_PARTITION_RANGE_START_TAG: keys[0],
            ASSET_PARTITION_RANGE_END_TAG: keys[-1],
            BATCH_TAG: str(uuid4()),
        },
        raise_on_error=False,
    )

    assert not result.success
    for asset in ALL_ASSETS:
        assert instance.get_materialized_partitions(dg.AssetKey(asset)) == {keys[0], keys[2], keys[3]}
        status = instance.get_status_by_partition(dg.AssetKey(asset), keys, calls_partitions)
        assert status is not None
        assert str(status[keys[1]]).endswith("FAILED")


def test_subset_selection_only_rederives_normalization_and_analysis(instance: dg.DagsterInstance) -> None:
    (key,) = _keys(instance, 1)
    job = _job("rederive_transcripts")

    result = job.execute_in_process(instance=instance, partition_key=key)

    assert result.success
    assert RecordingPipeline.calls_seen == [[key, "analysis", "normalized_transcript"]]
    assert instance.get_materialized_partitions(dg.AssetKey("raw_transcript")) == set()
    assert instance.get_materialized_partitions(dg.AssetKey("analysis")) == {key}


def test_listed_calls_job_records_partition_materializations(instance: dg.DagsterInstance) -> None:
    keys = _keys(instance, 2)
    job = _job("process_listed_calls")

    result = job.execute_in_process(
        instance=instance, run_config={"ops": {"process_listed_calls_op": {"config": {"call_ids": keys}}}}
    )

    assert result.success
    assert instance.get_materialized_partitions(dg.AssetKey("analysis")) == set(keys)


def test_a_partition_key_that_is_not_a_call_id_fails_clearly(instance: dg.DagsterInstance) -> None:
    instance.add_dynamic_partitions(calls_partitions.name, ["not-a-uuid"])
    result = _job("process_calls").execute_in_process(
        instance=instance, partition_key="not-a-uuid", raise_on_error=False
    )
    assert not result.success
    assert RecordingPipeline.calls_seen == []
