"""The QUEUED pickup's decisions without Dagster: claim a bounded batch and plan its runs, give back
claims whose run never started, and settle the calls whose run died under them.

The sensors translate: a ``BatchPlan`` into partition keys and run requests, Dagster's run records
into ``RunLookup`` answers. Claims are atomic in Postgres (SKIP LOCKED), so concurrent ticks never
claim a call twice; a claim whose run never started is released after ``CLAIM_GRACE``, up to
SCRYON_MAX_UNSTARTED_PICKUPS claims in a row, after which the call fails (launch_failed).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol
from uuid import UUID, uuid4

from scryon_dagster.adapters.db.callback_queries import CallbackQueries
from scryon_dagster.adapters.db.records import ClaimedCall, ClaimRelease
from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.domain.calls import ErrorCode
from scryon_dagster.domain.flags import EffectiveFlags
from scryon_dagster.domain.policy import IN_FLIGHT_STATUSES, diarization_skip_reason
from scryon_dagster.pipeline.callbacks import RESUME_SELECTION
from scryon_dagster.pipeline.outcomes import StageSelection
from scryon_dagster.pipeline.settle import Settlement, settle_failure
from scryon_dagster.pipeline.stages import BatchBookkeeping
from scryon_dagster.settings import Settings

CLAIM_GRACE = timedelta(seconds=90)
"""How long a claimed batch may wait for its run to exist before the claim is given back."""
ORPHANED_AFTER = timedelta(seconds=3 * BatchBookkeeping.HEARTBEAT_SECONDS)
"""A call mid-flight this long without a heartbeat, whose run has finished, lost its run."""


class RunKind(StrEnum):
    NEW = "new"
    """First-time calls: fresh partition keys, one ranged run over exactly them."""
    REQUEUED = "requeued"
    """Calls back in the queue (keys that may exist already): a listed run."""
    CALLBACK_RESUME = "callback_resume"
    """Calls whose transcription callback was delivered: a listed run of the stages that remain."""

    @property
    def run_key_suffix(self) -> str:
        return "resumed" if self is RunKind.CALLBACK_RESUME else self.value


@dataclass(frozen=True)
class PlannedRun:
    kind: RunKind
    call_ids: list[str]
    selection: StageSelection
    retried_calls: int | None = None
    """How many of the calls are automatic retries of a transient failure (re-queued runs only)."""


@dataclass(frozen=True)
class BatchPlan:
    batch_id: UUID
    partition_keys: list[str]
    """Every call's key, fresh ones first and contiguous, to add in one request (existing keys are skipped)."""
    runs: list[PlannedRun]


class RunLookup(Protocol):
    """What the pickup needs to know of the orchestrator's runs."""

    def batch_runs_finished(self, batch_id: UUID) -> bool:
        """Whether every run launched for the batch has finished (True when there is none)."""

    def holder_finished(self, holder_id: UUID) -> bool:
        """Whether the run (or the batch's runs) holding calls under ``holder_id`` has finished."""


def planned_selection(db: CallDatabase, settings: Settings) -> StageSelection:
    """The assets a batch of new calls is planned with: diarization only when it can run (a duration
    past the guard is skipped by the pipeline, with its reason)."""
    flags = EffectiveFlags.resolve(settings.flag_defaults, db.get_feature_flags())
    diarizes = (
        diarization_skip_reason(
            enabled=flags.diarization,
            configured=settings.pyannote_api_key is not None,
            audio_seconds=None,
            max_audio_minutes=settings.scryon_diarization_max_audio_minutes,
        )
        is None
    )
    return StageSelection.for_new_calls(diarization=diarizes)


def claim_batch(db: CallDatabase, settings: Settings, selection: StageSelection) -> BatchPlan | None:
    """Claim one batch (QUEUED calls and delivered callbacks) and plan its runs; None when nothing waits."""
    batch_id = uuid4()
    claimed = db.claim_queued(batch_id, settings.scryon_sensor_batch_size)
    resumed = CallbackQueries(db).claim_received(batch_id, settings.scryon_sensor_batch_size)
    if not claimed and not resumed:
        return None
    return plan_batch(batch_id, claimed, resumed, selection)


def plan_batch(
    batch_id: UUID, claimed: list[ClaimedCall], resumed: list[ClaimedCall], selection: StageSelection
) -> BatchPlan:
    fresh = [str(call.call_id) for call in claimed if call.attempt == 1]
    again = [str(call.call_id) for call in claimed if call.attempt > 1]
    resuming = [str(call.call_id) for call in resumed]
    runs = []
    if fresh:
        runs.append(PlannedRun(RunKind.NEW, fresh, selection))
    if again:
        retried = sum(call.retry_count > 0 for call in claimed)
        runs.append(PlannedRun(RunKind.REQUEUED, again, selection, retried_calls=retried))
    if resuming:
        runs.append(PlannedRun(RunKind.CALLBACK_RESUME, resuming, RESUME_SELECTION))
    return BatchPlan(batch_id=batch_id, partition_keys=fresh + again + resuming, runs=runs)


def release_unstarted(db: CallDatabase, batch_id: UUID, settings: Settings) -> ClaimRelease:
    """Give the batch's calls that its run never started back to the pickup (or fail them, once
    they have used their last pickup)."""
    return db.release_claim(
        batch_id,
        max_unstarted_pickups=settings.scryon_max_unstarted_pickups,
        error_reason=ErrorCode.LAUNCH_FAILED,
    )


def release_stranded_claims(runs: RunLookup, db: CallDatabase, settings: Settings, now: datetime) -> ClaimRelease:
    """Give back QUEUED (and delivered-callback) calls whose batch has no run, or only finished runs
    that never started them."""
    claimed_before = now - CLAIM_GRACE
    stranded = {
        *db.queued_claims_older_than(claimed_before),
        *CallbackQueries(db).resume_claims_older_than(claimed_before),
    }
    releases = [
        release_unstarted(db, batch_id, settings) for batch_id in stranded if runs.batch_runs_finished(batch_id)
    ]
    return ClaimRelease(
        released=sum(release.released for release in releases), failed=sum(release.failed for release in releases)
    )


@dataclass(frozen=True)
class OrphanRecovery:
    requeued: int
    failed: int


def recover_orphaned_calls(runs: RunLookup, db: CallDatabase, settings: Settings, now: datetime) -> OrphanRecovery:
    """Settle the calls whose run died under them as a transient ``run_crashed`` failure (an automatic
    retry while retries last).

    A call is orphaned when it is mid-flight, silent (no status move, no heartbeat) for ``ORPHANED_AFTER``,
    and held by a run that has finished (or that the orchestrator does not know). A run marked failed
    while its worker still lives (a missed start or heartbeat under load) keeps its calls: they heartbeat."""
    silent_since = now - ORPHANED_AFTER
    settled: Counter[Settlement] = Counter()
    for holder in db.silent_in_flight_holders(silent_since):
        if not runs.holder_finished(holder):
            continue
        for call in db.calls_held_by(holder):
            if call.status in IN_FLIGHT_STATUSES and call.updated_at < silent_since:
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
