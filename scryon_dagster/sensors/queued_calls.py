"""The pickup's sensors: they translate the Dagster-free plans of ``pipeline.pickup`` into run requests
and answer its questions about Dagster's runs.

The QUEUED sensor claims a bounded batch, adds its partition keys in one request and launches its runs;
run keys carry the batch id, so a re-queued call always runs again. The crash sensor reports what a dead
run completed and gives back what it never started.
"""

import time
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import dagster as dg

from scryon_dagster.adapters.db.records import CallRecord
from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.assets.calls import materializations_with_provenance
from scryon_dagster.dagster_private import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from scryon_dagster.domain.calls import CallStatus
from scryon_dagster.jobs.calls import (
    PROCESS_CALLS_JOB,
    PROCESS_LISTED_CALLS_JOB,
    process_calls_job,
    process_listed_calls_job,
)
from scryon_dagster.partitions import BATCH_TAG, CALLS_PARTITIONS, RETRIES_TAG, RUN_KIND_TAG
from scryon_dagster.pipeline import pickup
from scryon_dagster.pipeline.outcomes import MetadataValue, PipelineAsset, StageSelection
from scryon_dagster.resources import CallDatabaseResource, SettingsResource
from scryon_dagster.settings import Settings

# How often an idle tick looks for newly queued calls (one indexed query each).
IDLE_POLL_SECONDS = 0.25
# The static floor between ticks; SCRYON_QUEUED_SENSOR_INTERVAL_SECONDS, read when a tick runs (not at
# import), spaces ticks further.
_MINIMUM_INTERVAL_SECONDS = 1


class DagsterRuns:
    """``pickup.RunLookup`` over the Dagster instance."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self._instance = instance

    def batch_runs_finished(self, batch_id: UUID) -> bool:
        runs = self._instance.get_runs(filters=dg.RunsFilter(tags={BATCH_TAG: str(batch_id)}))
        return all(run.is_finished for run in runs)

    def holder_finished(self, holder_id: UUID) -> bool:
        """A run holds the calls it took under its run id; delivered callbacks resumed by a batch are held
        by the batch id, whose runs carry it as a tag."""
        run = self._instance.get_run_by_id(str(holder_id))
        return run.is_finished if run is not None else self.batch_runs_finished(holder_id)


def recover_orphaned_calls(
    instance: dg.DagsterInstance, db: CallDatabase, settings: Settings, now: datetime
) -> pickup.OrphanRecovery:
    return pickup.recover_orphaned_calls(DagsterRuns(instance), db, settings, now)


def run_request(plan: pickup.BatchPlan, run: pickup.PlannedRun) -> dg.RunRequest:
    """One planned run as a request: a ranged asset run over fresh keys, else a listed-calls run."""
    tags = {BATCH_TAG: str(plan.batch_id), RUN_KIND_TAG: run.kind.value}
    run_key = f"{plan.batch_id}:{run.kind.run_key_suffix}"
    if run.kind is pickup.RunKind.NEW:
        return dg.RunRequest(
            run_key=run_key,
            job_name=PROCESS_CALLS_JOB,
            asset_selection=[dg.AssetKey(name) for name in run.selection.names],
            asset_check_keys=[],  # the artifact checks run on their own job, not in every batch
            tags={
                **tags,
                ASSET_PARTITION_RANGE_START_TAG: run.call_ids[0],
                ASSET_PARTITION_RANGE_END_TAG: run.call_ids[-1],
            },
        )
    if run.retried_calls is not None:
        tags[RETRIES_TAG] = str(run.retried_calls)
    op_config = {"call_ids": run.call_ids, "assets": run.selection.names}
    return dg.RunRequest(
        run_key=run_key,
        job_name=PROCESS_LISTED_CALLS_JOB,
        run_config={"ops": {"process_listed_calls_op": {"config": op_config}}},
        tags=tags,
    )


@dg.sensor(
    name="queued_calls_sensor",
    jobs=[process_calls_job, process_listed_calls_job],
    minimum_interval_seconds=_MINIMUM_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Claims QUEUED calls in bounded batches and launches one run per batch.",
)
def queued_calls_sensor(
    context: dg.SensorEvaluationContext, database: CallDatabaseResource, config: SettingsResource
) -> dg.SensorResult | dg.SkipReason:
    settings = config.settings
    started = time.time()
    if _too_soon(context, settings.scryon_queued_sensor_interval_seconds, started):
        return dg.SkipReason("SCRYON_QUEUED_SENSOR_INTERVAL_SECONDS since the last tick has not passed")
    context.update_cursor(repr(started))
    db = database.db
    now = datetime.now(UTC)
    runs = DagsterRuns(context.instance)
    stranded = pickup.release_stranded_claims(runs, db, settings, now)
    orphans = pickup.recover_orphaned_calls(runs, db, settings, now)
    if orphans.requeued or orphans.failed:
        context.log.info(
            f"calls whose run died: {orphans.requeued} re-queued for a retry, {orphans.failed} failed (run_crashed)"
        )
    selection = pickup.planned_selection(db, settings)
    # The daemon starts a tick at most every 5 s: an idle tick keeps looking for a while, so that a call
    # queued between ticks is picked up within a poll instead of waiting for the next tick.
    deadline = time.monotonic() + settings.scryon_queued_sensor_wait_seconds
    requests = _launch_batch(context, db, settings, selection)
    while not requests and time.monotonic() + IDLE_POLL_SECONDS < deadline:
        time.sleep(IDLE_POLL_SECONDS)
        requests = _launch_batch(context, db, settings, selection)
    stranded_note = f"{stranded.released} stranded claims released, {stranded.failed} calls failed (launch_failed)"
    if not requests:
        return dg.SkipReason(f"no QUEUED calls ({stranded_note})")
    if stranded.released or stranded.failed:
        context.log.info(stranded_note)
    return dg.SensorResult(run_requests=requests)


def _too_soon(context: dg.SensorEvaluationContext, interval_seconds: int, started: float) -> bool:
    """Whether a configured interval longer than the static minimum has not passed since the last
    evaluated tick started (its start time is the cursor), as Dagster measures its own interval."""
    last_started = float(context.cursor) if context.cursor else None
    return (
        interval_seconds > _MINIMUM_INTERVAL_SECONDS
        and last_started is not None
        and started - last_started < interval_seconds
    )


def _launch_batch(
    context: dg.SensorEvaluationContext, db: CallDatabase, settings: Settings, selection: StageSelection
) -> list[dg.RunRequest]:
    """Claim one batch, add its keys in one request and build its run requests; no claim, no runs."""
    plan = pickup.claim_batch(db, settings, selection)
    if plan is None:
        return []
    try:
        # One statement: Dagster skips the keys that exist already, and the fresh keys stay contiguous.
        context.instance.add_dynamic_partitions(CALLS_PARTITIONS, plan.partition_keys)
        requests = [run_request(plan, run) for run in plan.runs]
    except Exception:
        pickup.release_unstarted(db, plan.batch_id, settings)
        raise
    resumed = sum(len(run.call_ids) for run in plan.runs if run.kind is pickup.RunKind.CALLBACK_RESUME)
    context.log.info(
        f"batch {plan.batch_id}: {len(plan.partition_keys) - resumed} calls claimed, "
        f"{resumed} resuming after their callback"
    )
    return requests


@dg.run_failure_sensor(
    name="crashed_batch_sensor",
    monitored_jobs=[process_calls_job, process_listed_calls_job],
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Safety net for failed runs: calls a run completed but died before reporting reach Dagster, and calls "
        "it never started go back to the pickup (launch_failed after too many tries). Its calls left mid-flight "
        "are re-queued by the QUEUED sensor once they stop heartbeating."
    ),
)
def crashed_batch_sensor(
    context: dg.RunFailureSensorContext, database: CallDatabaseResource, config: SettingsResource
) -> None:
    run = context.dagster_run
    batch_id = UUID(run.tags.get(BATCH_TAG) or run.run_id)
    db = database.db
    completed = [call for call in db.calls_held_by(UUID(run.run_id)) if call.status is CallStatus.COMPLETED]
    reported = report_unrecorded_completions(context.instance, run, db, completed)
    unstarted = pickup.release_unstarted(db, batch_id, config.settings)
    context.log.info(
        f"run {run.run_id} (batch {batch_id}): {reported} finished calls reported to Dagster, "
        f"{unstarted.released} unstarted calls given back, {unstarted.failed} failed (launch_failed)"
    )


def report_unrecorded_completions(
    instance: dg.DagsterInstance, run: dg.DagsterRun, db: CallDatabase, calls: list[CallRecord]
) -> int:
    """Report the materializations of calls the run completed in the call database but died before
    handing to Dagster (this processing cycle's stored outputs of the assets the run planned), with
    their provenance, so that Dagster agrees with the database. Returns how many calls were reported."""
    if not calls:
        return 0
    recorded: set[tuple[str, str]] = set()
    for record in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        materialization = record.asset_materialization
        if materialization is not None and materialization.partition is not None:
            recorded.add((materialization.asset_key.to_user_string(), materialization.partition))
    unrecorded: dict[PipelineAsset, dict[str, dict[str, MetadataValue]]] = {}
    for call in calls:
        artifacts = db.get_artifacts(call.id)
        for asset in _planned_assets(run):
            artifact = artifacts.get(asset.artifact_type)
            if (
                (asset.value, str(call.id)) not in recorded
                and artifact is not None
                and (call.cycle_started_at is None or artifact.created_at >= call.cycle_started_at)
            ):
                unrecorded.setdefault(asset, {})[str(call.id)] = {"recovered_from_run": run.run_id}
    for asset in PipelineAsset:  # upstream first: each materialization's provenance reads its inputs'
        if by_call := unrecorded.get(asset):
            for materialization in materializations_with_provenance(instance, asset, by_call, run_id=run.run_id):
                instance.report_runless_asset_event(materialization)
    return len({call for by_call in unrecorded.values() for call in by_call})


def _planned_assets(run: dg.DagsterRun) -> list[PipelineAsset]:
    """The call assets a batch run was launched to build: its asset selection, or a listed run's config."""
    names = {asset.value for asset in PipelineAsset}
    if run.asset_selection:
        return [PipelineAsset(key.path[-1]) for key in run.asset_selection if key.path[-1] in names]
    run_config: dict[str, Any] = dict(run.run_config)
    op_config = ((run_config.get("ops") or {}).get("process_listed_calls_op") or {}).get("config") or {}
    return [PipelineAsset(name) for name in op_config.get("assets", sorted(names)) if name in names]
