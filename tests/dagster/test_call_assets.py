"""The Dagster wiring of the per-call assets, with the pipeline replaced at its resource edge."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from uuid import UUID, uuid4

import dagster as dg
import pytest
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.loader import LoadingContextForTest
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster_shared.serdes import serialize_value

from scryon_dagster.assets import calls as call_assets
from scryon_dagster.assets.calls import CALL_ASSET_SPECS, call_pipeline
from scryon_dagster.dagster_private import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from scryon_dagster.definitions import defs
from scryon_dagster.domain.calls import Stage
from scryon_dagster.jobs.calls import process_calls_job, process_listed_calls_job, rederive_transcripts_job
from scryon_dagster.partitions import BATCH_TAG, calls_partitions
from scryon_dagster.pipeline.artifact_checks import ArtifactCheckReport
from scryon_dagster.pipeline.outcomes import CallOutcome, PipelineAsset, StageSelection

ALL_ASSETS = [asset.value for asset in PipelineAsset]


class RecordingPipeline(dg.ConfigurableResource):
    """Stands in for PipelineResource: fails the calls listed in ``failing``, runs analysis off for the
    calls in ``analysis_off``, knows every call but those in ``unknown``, and records what it ran."""

    failing: list[str] = []
    analysis_off: list[str] = []
    unknown: list[str] = []
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
                yield CallOutcome(
                    call_id, error_code="transcription_4xx", stage_reasons={Stage.TRANSCRIBED: "transcription_4xx"}
                )
            elif str(call_id) in self.analysis_off:
                produced = selection.assets - {PipelineAsset.ANALYSIS}
                yield CallOutcome(
                    call_id,
                    materialized={asset: {"size_bytes": 10} for asset in produced},
                    stage_reasons={Stage.ANALYZED: "disabled"},
                )
            else:
                yield CallOutcome(call_id, materialized={asset: {"size_bytes": 10} for asset in selection.assets})

    def known_calls(self, call_ids: Sequence[UUID]) -> set[UUID]:
        return {call_id for call_id in call_ids if str(call_id) not in self.unknown}

    def check_stored_artifacts(self, asset: PipelineAsset, *, limit: int) -> ArtifactCheckReport:
        return ArtifactCheckReport(checked=1, unreadable=[], missing=[])


def _keys(instance: dg.DagsterInstance, count: int) -> list[str]:
    keys = [str(uuid4()) for _ in range(count)]
    instance.add_dynamic_partitions(calls_partitions.name, keys)
    return keys


# What the UI's Materialize button launches: the selected assets with their checks.
materialize_all_job = dg.define_asset_job("materialize_all", selection=dg.AssetSelection.assets(call_pipeline))
materialize_raw_transcript_job = dg.define_asset_job(
    "materialize_raw_transcript", selection=dg.AssetSelection.assets("raw_transcript").without_checks()
)


def _job(
    name: str, failing: Sequence[str] = (), analysis_off: Sequence[str] = (), unknown: Sequence[str] = ()
) -> dg.JobDefinition:
    """The job as defined, with the pipeline resource swapped for the recording fake."""
    RecordingPipeline.calls_seen = []
    test_defs = dg.Definitions(
        assets=[call_pipeline],
        jobs=[
            process_calls_job,
            process_listed_calls_job,
            rederive_transcripts_job,
            materialize_all_job,
            materialize_raw_transcript_job,
        ],
        resources={
            "pipeline": RecordingPipeline(failing=list(failing), analysis_off=list(analysis_off), unknown=list(unknown))
        },
    )
    return test_defs.resolve_job_def(name)


def _stale_status(
    instance: dg.DagsterInstance, keys: Sequence[str], assets: dg.AssetsDefinition = call_pipeline
) -> dict[tuple[str, str], StaleStatus]:
    """What the UI's stale view says (GraphQL staleStatusByPartition uses this resolver), per (asset, key)."""
    graph = dg.Definitions(assets=[assets], resources={"pipeline": RecordingPipeline()}).resolve_asset_graph()
    resolver = CachingStaleStatusResolver(instance, graph, LoadingContextForTest(instance))
    return {
        (asset.value, key): resolver.get_status(dg.AssetKey(asset.value), key)
        for asset in PipelineAsset
        for key in keys
    }


def _ranged_tags(keys: Sequence[str]) -> dict[str, str]:
    return {ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1], BATCH_TAG: str(uuid4())}


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

    result = job.execute_in_process(instance=instance, tags=_ranged_tags(keys), raise_on_error=False)

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


@pytest.mark.parametrize("key", ["not-a-uuid", str(uuid4())])
def test_a_partition_key_that_is_not_a_call_is_refused_before_anything_runs(
    instance: dg.DagsterInstance, key: str
) -> None:
    (call,) = _keys(instance, 1)
    instance.add_dynamic_partitions(calls_partitions.name, [key])
    result = _job("materialize_all", unknown=[key]).execute_in_process(
        instance=instance, tags=_ranged_tags([call, key]), raise_on_error=False
    )
    assert not result.success
    assert RecordingPipeline.calls_seen == []
    failure = next(event for event in result.all_events if event.event_type_value == "STEP_FAILURE")
    assert f"1 of 2 partition keys are not calls ({key!r}); nothing was run" in str(failure.event_specific_data)
    assert instance.get_materialized_partitions(dg.AssetKey("raw_transcript")) == set()


def test_processed_partitions_are_fresh_and_a_rematerialized_upstream_stales_exactly_its_dependents(
    instance: dg.DagsterInstance,
) -> None:
    keys = _keys(instance, 2)
    assert _job("process_calls").execute_in_process(instance=instance, tags=_ranged_tags(keys)).success
    assert set(_stale_status(instance, keys).values()) == {StaleStatus.FRESH}

    assert _job("materialize_raw_transcript").execute_in_process(instance=instance, partition_key=keys[0]).success

    stale = {pair for pair, status in _stale_status(instance, keys).items() if status is StaleStatus.STALE}
    assert stale == {("normalized_transcript", keys[0])}
    assert _job("rederive_transcripts").execute_in_process(instance=instance, partition_key=keys[0]).success
    assert set(_stale_status(instance, keys).values()) == {StaleStatus.FRESH}


def test_a_normalization_version_bump_stales_every_normalized_transcript_until_rederived(
    instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = _keys(instance, 2)
    assert _job("process_calls").execute_in_process(instance=instance, tags=_ranged_tags(keys)).success
    bumped_code_version = "normalization-v999"
    bumped = dg.multi_asset(
        name="call_pipeline",
        specs=[
            spec.replace_attributes(code_version=bumped_code_version)
            if spec.key == dg.AssetKey("normalized_transcript")
            else spec
            for spec in CALL_ASSET_SPECS
        ],
        can_subset=True,
    )(lambda: None)

    stale = {pair for pair, status in _stale_status(instance, keys, bumped).items() if status is StaleStatus.STALE}
    assert stale == {("normalized_transcript", key) for key in keys}

    monkeypatch.setitem(call_assets._CODE_VERSIONS, PipelineAsset.NORMALIZED_TRANSCRIPT, bumped_code_version)
    assert _job("rederive_transcripts").execute_in_process(instance=instance, partition_key=keys[0]).success
    stale = {pair for pair, status in _stale_status(instance, keys, bumped).items() if status is StaleStatus.STALE}
    assert stale == {("normalized_transcript", keys[1])}


def test_every_planned_asset_a_call_did_not_produce_says_why(instance: dg.DagsterInstance) -> None:
    keys = _keys(instance, 3)
    failed, analysis_off = keys[1], keys[2]
    result = _job("process_calls", failing=[failed], analysis_off=[analysis_off]).execute_in_process(
        instance=instance, tags=_ranged_tags(keys), raise_on_error=False
    )

    assert not result.success
    observations = [
        entry.asset_observation
        for entry in instance.all_logs(result.run_id, of_type=dg.DagsterEventType.ASSET_OBSERVATION)
    ]
    reasons = {
        (observation.asset_key.path[-1], observation.partition): observation.metadata["not_materialized"].value
        for observation in observations
        if observation is not None
    }
    assert reasons == {
        ("analysis", analysis_off): "disabled",
        ("diarization", failed): "call_failed",
        ("raw_transcript", failed): "transcription_4xx",
        ("normalized_transcript", failed): "upstream_failed",
        ("analysis", failed): "upstream_failed",
    }


def test_a_materialization_runs_the_checks_of_its_assets_even_when_a_call_failed(
    instance: dg.DagsterInstance,
) -> None:
    keys = _keys(instance, 2)
    result = _job("materialize_all", failing=[keys[1]]).execute_in_process(
        instance=instance, tags=_ranged_tags(keys), raise_on_error=False
    )

    assert not result.success
    evaluations = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    checked = {entry.get_dagster_event().asset_check_evaluation_data.asset_key.path[-1] for entry in evaluations}
    assert checked == set(ALL_ASSETS)
