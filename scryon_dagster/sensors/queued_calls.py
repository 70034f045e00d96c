"""The QUEUED pickup: claim a bounded batch, add its partition keys in one request, launch one run.

Claims are atomic in Postgres (SKIP LOCKED), so concurrent ticks never launch a call twice; run keys
carry the batch id, so a re-queued call always runs again; a claim whose run never started is
released after a grace period, so no call is stranded by a launch problem — up to
SCRYON_MAX_UNSTARTED_PICKUPS claims in a row, after which the call fails (launch_failed) instead of
looping. Calls whose Lemonfox callback has been delivered are picked up the same way and resume from
normalization.
"""

import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from scryon_dagster.adapters.db.callback_queries import CallbackQueries
from scryon_dagster.adapters.db.records import CallRecord, ClaimedCall, ClaimRelease
from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.assets.calls import materializations_with_provenance
from scryon_dagster.domain.calls import CallStatus, ErrorCode
from scryon_dagster.domain.flags import EffectiveFlags
from scryon_dagster.domain.policy import diarization_skip_reason
from scryon_dagster.jobs.calls import (
    PROCESS_CALLS_JOB,
    PROCESS_LISTED_CALLS_JOB,
    process_calls_job,
    process_listed_calls_job,
)
from scryon_dagster.partitions import BATCH_TAG, CALLS_PARTITIONS, RETRIES_TAG, RUN_KIND_TAG
from scryon_dagster.pipeline.callbacks import RESUME_SELECTION
from scryon_dagster.pipeline.outcomes import MetadataValue, PipelineAsset, StageSelection
from scryon_dagster.pipeline.settle import IN_FLIGHT, Settlement, settle_failure
from scryon_dagster.pipeline.stages import BatchBookkeeping
from scryon_dagster.resources import CallDatabaseResource, SettingsResource
from scryon_dagster.settings import Settings, load_settings

# How long a claimed batch may wait for its run to exist before the claim is given back.
CLAIM_GRACE = timedelta(seconds=90)
# How often an idle tick looks for newly queued calls (one indexed query each).
IDLE_POLL_SECONDS = 0.25
# A call mid-flight this long without a heartbeat, whose run has finished, lost its run.
ORPHANED_AFTER = timedelta(seconds=3 * BatchBookkeeping.HEARTBEAT_SECONDS)


def release_unstarted(db: CallDatabase, batch_id: UUID, settings: Settings) -> ClaimRelease:
    """Give the batch's calls that its run never started back to the pickup (or fail them, once
    they have used their last pickup)."""
    return db.release_claim(
        batch_id,
        max_unstarted_pickups=settings.scryon_max_unstarted_pickups,
        error_reason=ErrorCode.LAUNCH_FAILED,
    )


def release_stranded_claims(
    instance: dg.DagsterInstance, db: CallDatabase, settings: Settings, now: datetime
) -> ClaimRelease:
    """Give back QUEUED (and delivered-callback) calls whose batch has no run, or only finished runs
    that never started them."""
    callbacks = CallbackQueries(db)
    stranded = {*db.queued_claims_older_than(now - CLAIM_GRACE), *callbacks.resume_claims_older_than(now - CLAIM_GRACE)}
    releases = [
        release_unstarted(db, batch_id, settings)
        for batch_id in stranded
        if all(run.is_finished for run in instance.get_runs(filters=dg.RunsFilter(tags={BATCH_TAG: str(batch_id)})))
    ]
    return ClaimRelease(
        released=sum(release.released for release in releases), failed=sum(release.failed for release in releases)
    )


def plan_batch_runs(
    instance: dg.DagsterInstance,
    batch_id: UUID,
    claimed: list[ClaimedCall],
    resumed: list[ClaimedCall],
    selection: StageSelection,
) -> list[dg.RunRequest]:
    """Add the batch's keys in one request and build the batch's run requests.

    First-time calls get fresh keys, added together, so one ranged run covers exactly them;
    re-queued calls (keys that may already exist) run as a listed batch, and so do calls resuming
    after their transcription callback, with only the stages that remain.
    """
    fresh = [str(call.call_id) for call in claimed if call.attempt == 1]
    again = [str(call.call_id) for call in claimed if call.attempt > 1]
    resuming = [str(call.call_id) for call in resumed]
    if fresh or again or resuming:
        # One statement: Dagster skips the keys that exist already, and the fresh keys stay contiguous.
        instance.add_dynamic_partitions(CALLS_PARTITIONS, fresh + again + resuming)
    tags = {BATCH_TAG: str(batch_id)}
    requests = []
    if fresh:
        requests.append(
            dg.RunRequest(
                run_key=f"{batch_id}:new",
                job_name=PROCESS_CALLS_JOB,
                asset_selection=[dg.AssetKey(name) for name in selection.names],
                asset_check_keys=[],  # the artifact checks run on their own job, not in every batch
                tags={
                    **tags,
                    RUN_KIND_TAG: "new",
                    ASSET_PARTITION_RANGE_START_TAG: fresh[0],
                    ASSET_PARTITION_RANGE_END_TAG: fresh[-1],
                },
            )
        )
    if again:
        requests.append(
            dg.RunRequest(
                run_key=f"{batch_id}:requeued",
                job_name=PROCESS_LISTED_CALLS_JOB,
                run_config={
                    "ops": {"process_listed_calls_op": {"config": {"call_ids": again, "assets": selection.names}}}
                },
                tags={
                    **tags,
                    RUN_KIND_TAG: "requeued",
                    RETRIES_TAG: str(sum(call.retry_count > 0 for call in claimed)),
                },
            )
        )
    if resuming:
        assets = RESUME_SELECTION.names
        requests.append(
            dg.RunRequest(
                run_key=f"{batch_id}:resumed",
                job_name=PROCESS_LISTED_CALLS_JOB,
                run_config={"ops": {"process_listed_calls_op": {"config": {"call_ids": resuming, "assets": assets}}}},
                tags={**tags, RUN_KIND_TAG: "callback_resume"},
            )
        )
    return requests


@dg.sensor(
    name="queued_calls_sensor",
    jobs=[process_calls_job, process_listed_calls_job],
    minimum_interval_seconds=load_settings().scryon_queued_sensor_interval_seconds,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Claims QUEUED calls in bounded batches and launches one run per batch.",
)
def queued_calls_sensor(
    context: dg.SensorEvaluationContext, database: CallDatabaseResource, config: SettingsResource
) -> dg.SensorResult | dg.SkipReason:
    db = database.db
    settings = config.settings
    now = datetime.now(UTC)
    stranded = release_stranded_claims(context.instance, db, settings, now)
    orphans = recover_orphaned_calls(context.instance, db, settings, now)
    if orphans.requeued or orphans.failed:
        context.log.info(
            f"calls whose run died: {orphans.requeued} re-queued for a retry, {orphans.failed} failed (run_crashed)"
        )
    flags = EffectiveFlags.resolve(settings.flag_defaults, db.get_feature_flags())
    # planned only when it can run (a duration past the guard is skipped by the pipeline, with its reason)
    diarizes = (
        diarization_skip_reason(
            enabled=flags.diarization,
            configured=settings.pyannote_api_key is not None,
            audio_seconds=None,
            max_audio_minutes=settings.scryon_diarization_max_audio_minutes,
        )
        is None
    )
    selection = StageSelection.for_new_calls(diarization=diarizes)
    # The daemon starts a tick at most every 5 s: an idle tick keeps looking for a while, so that a call
    # queued between ticks is picked up within a poll instead of waiting for the next tick.
    deadline = time.monotonic() + settings.scryon_queued_sensor_wait_seconds
    requests = claim_batch(context, db, settings, selection)
    while not requests and time.monotonic() + IDLE_POLL_SECONDS < deadline:
        time.sleep(IDLE_POLL_SECONDS)
        requests = claim_batch(context, db, settings, selection)
    stranded_note = f"{stranded.released} stranded claims released, {stranded.failed} calls failed (launch_failed)"
    if not requests:
        return dg.SkipReason(f"no QUEUED calls ({stranded_note})")
    if stranded.released or stranded.failed:
        context.log.info(stranded_note)
    return dg.SensorResult(run_requests=requests)


def claim_batch(
    context: dg.SensorEvaluationContext, db: CallDatabase, settings: Settings, selection: StageSelection
) -> list[dg.RunRequest]:
    """Claim one batch (QUEUED calls and delivered callbacks) and plan its runs; no claim, no runs."""
    batch_id = uuid4()
    claimed = db.claim_queued(batch_id, settings.scryon_sensor_batch_size)
    resumed = CallbackQueries(db).claim_received(batch_id, settings.scryon_sensor_batch_size)
    if not claimed and not resumed:
        return []
    try:
        requests = plan_batch_runs(context.instance, batch_id, claimed, resumed, selection)
    except Exception:
        release_unstarted(db, batch_id, settings)
        raise
    context.log.info(f"batch {batch_id}: {len(claimed)} calls claimed, {len(resumed)} resuming after their callback")
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
    unstarted = release_unstarted(db, batch_id, config.settings)
    context.log.info(
        f"run {run.run_id} (batch {batch_id}): {reported} finished calls reported to Dagster, "
        f"{unstarted.released} unstarted calls given back, {unstarted.failed} failed (launch_failed)"
    )


@dataclass(frozen=True)
class OrphanRecovery:
    requeued: int
    failed: int


def recover_orphaned_calls(
    instance: dg.DagsterInstance, db: CallDatabase, settings: Settings, now: datetime
) -> OrphanRecovery:
    """Settle the calls whose run died under them as a transient ``run_crashed`` failure (an automatic
    retry while retries last).

    A call is orphaned when it is mid-flight, silent (no status move, no heartbeat) for ``ORPHANED_AFTER``,
    and held by a run that has finished (or that Dagster does not know). A run Dagster marks failed while
    its worker still lives (a missed start or heartbeat under load) keeps its calls: they heartbeat."""
    silent_since = now - ORPHANED_AFTER
    settled: Counter[Settlement] = Counter()
    for holder in db.silent_in_flight_holders(silent_since):
        if not _holder_finished(instance, holder):
            continue
        for call in db.calls_held_by(holder):
            if call.status in IN_FLIGHT and call.updated_at < silent_since:
                settled[
                    settle_failure(
                        db,
                        settings.retry_policy,
                        call_id=call.id,
                        attempt=call.attempt,
                        retry_count=call.retry_count,
                        code=ErrorCode.RUN_CRASHED,
                    )
                ] += 1
    return OrphanRecovery(requeued=settled[Settlement.RETRY], failed=settled[Settlement.FAILED])


def _holder_finished(instance: dg.DagsterInstance, holder: UUID) -> bool:
    """A run holds the calls it took under its run id; delivered callbacks resumed by a batch are held by
    the batch id, whose runs carry it as a tag."""
    run = instance.get_run_by_id(str(holder))
    if run is not None:
        return run.is_finished
    return all(run.is_finished for run in instance.get_runs(filters=dg.RunsFilter(tags={BATCH_TAG: str(holder)})))


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
