"""The runbook's maintenance work without Dagster: sweeps, pruning, reprocess planning, deletion, reconcile.

Every function validates its arguments before changing anything (a bad one raises MaintenanceError),
is safe to run twice (a second run finds nothing left to do) and reports ids and counts only: the
reports end up in Dagster metadata, which anyone with UI access can read.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar
from uuid import UUID

from scryon_dagster.adapters.db.callback_queries import CallbackQueries
from scryon_dagster.adapters.db.maintenance import PAGE_SIZE, MaintenanceQueries
from scryon_dagster.adapters.db.records import ArtifactRecord, CallRecord, LlmUsage
from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.object_store import ObjectInfo, ObjectStore, loggable_key
from scryon_dagster.domain.analysis.cost import (
    estimate_analysis_prompt_tokens,
    estimate_llm_cost_usd,
    estimate_provider_cost_usd,
)
from scryon_dagster.domain.audio_formats import AudioType
from scryon_dagster.domain.calls import TERMINAL_STATUSES, ArtifactType, CallStatus, ErrorCode
from scryon_dagster.domain.flags import EffectiveFlags
from scryon_dagster.domain.policy import RetryPolicy, diarization_skip_reason
from scryon_dagster.domain.storage_keys import USERS_PREFIX, artifact_key, call_prefix, parse_call_prefix
from scryon_dagster.domain.transcript.models import NormalizedTranscript
from scryon_dagster.pipeline.outcomes import PipelineAsset, StageSelection
from scryon_dagster.settings import Settings, get_settings

logger = logging.getLogger(__name__)

SWEEP_ERROR_CODES = frozenset({ErrorCode.STALE_JOB, ErrorCode.MANUAL_SWEEP})
REPROCESSABLE_STATUSES = TERMINAL_STATUSES
"""A user's calls are reprocessed only once they rest; active calls belong to their run."""

# --- cost-estimate assumptions (a dry run's planning figures, never billing) -----------------------
AUDIO_BYTES_PER_SECOND: dict[str, int] = {
    AudioType.WAV.content_type: 32_000,  # 16-bit mono PCM at 16 kHz
    AudioType.FLAC.content_type: 16_000,  # lossless, about half of that
    AudioType.AMR.content_type: 1_525,  # AMR-NB at its highest mode, 12.2 kbit/s
    AudioType.AMR_WB.content_type: 2_981,  # AMR-WB at its highest mode, 23.85 kbit/s
}
"""How many bytes of an upload make one second of audio, for calls whose duration is unknown."""
DEFAULT_AUDIO_BYTES_PER_SECOND = 4_000
"""Compressed voice (AAC/M4A, MP3, Opus, 3GPP) at 32 kbit/s, the low end of what phone recorders write:
the estimate errs towards more audio, i.e. a higher cost."""
NORMALIZED_JSON_BYTES_PER_PROMPT_TOKEN = 16
"""Normalized transcript JSON bytes per analysis-prompt token of transcript: measured 15-18.5 on the
six simulator sample calls (the JSON carries word timings and speaker metadata the prompt leaves out)."""
PROMPT_TOKENS_PER_AUDIO_SECOND = 6.0
"""Transcript prompt tokens per second of call audio when no normalized transcript is stored: measured
5-6.1 on the sample calls (conversational speech with segment headers)."""
ANALYSIS_COMPLETION_TOKENS_ESTIMATE = 1_500
"""Output tokens of one analysis when the call has no recorded usage: a realistic schema-v3 answer is
about 1,000 tokens (the simulator's sample answer is 1,060); long calls write more sections."""

_T = TypeVar("_T")


class MaintenanceError(ValueError):
    """Arguments a maintenance function refuses (unknown id, bad window, nothing to reprocess from).

    Raised before any change. ``code`` is short and stable (``audio_missing`` for a full reprocess
    whose TEMP_AUDIO is gone); the message carries ids only.
    """

    def __init__(self, message: str, *, code: str = "invalid_argument") -> None:
        super().__init__(message)
        self.code = code


# --- stale calls -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepReport:
    failed: list[UUID]
    requeued: list[UUID]
    """Calls mid-flight put back to the queue for an automatic retry (a scheduled sweep only)."""
    callback_timeouts: list[UUID]
    spared_queued: int
    """Calls past the window, waiting for the pickup, spared because the pickup is making progress."""


def sweep_stale_calls(
    db: CallDatabase,
    *,
    now: datetime,
    stale_after: timedelta,
    error_code: ErrorCode,
    callback_timeout: timedelta | None = None,
    retry_policy: RetryPolicy | None = None,
) -> SweepReport:
    """Fail the calls that stopped making progress.

    QUEUED/TRANSCRIBING/ANALYZING calls not updated since ``now - stale_after`` become FAILED with
    ``error_code`` (one guarded statement, one STATUS event per call) — or, mid-flight with a retry
    left by ``retry_policy`` (a transient ``stale_job``: their run died unseen), go back to the queue
    for it; an operator's ``manual_sweep`` fails them. Running calls heartbeat, so a
    live long call is never stale. A backlog is not stale while the pickup progresses: calls waiting for
    it (QUEUED, or a delivered callback not yet resumed) are failed only when no call at all was
    claimed within the window. Calls awaiting a Lemonfox callback are left to ``callback_timeout``:
    those waiting longer become FAILED ``callback_timeout`` (with None, they are left alone).
    """
    _require_aware(now=now)
    _require_positive(stale_after=stale_after)
    if callback_timeout is not None:
        _require_positive(callback_timeout=callback_timeout)
    if error_code not in SWEEP_ERROR_CODES:
        raise MaintenanceError(f"a sweep fails calls with {' or '.join(sorted(SWEEP_ERROR_CODES))}, not {error_code}")
    code = ErrorCode(error_code)
    retry_delays = retry_policy.delays(code) if retry_policy is not None else []
    result = MaintenanceQueries(db).fail_stale_calls(
        cutoff=now - stale_after, error_code=code.value, retry_delays=retry_delays
    )
    timeouts = _fail_expired_callbacks(db, requested_before=now - callback_timeout) if callback_timeout else []
    logger.info(
        "stale sweep: %d failed (%s), %d re-queued for a retry, %d callback timeouts, %d waiting calls spared",
        len(result.failed),
        code.value,
        len(result.requeued),
        len(timeouts),
        result.spared_waiting,
    )
    return SweepReport(
        failed=result.failed,
        requeued=result.requeued,
        callback_timeouts=timeouts,
        spared_queued=result.spared_waiting,
    )


def _fail_expired_callbacks(db: CallDatabase, *, requested_before: datetime) -> list[UUID]:
    callbacks = CallbackQueries(db)
    return [
        waiting.call_id
        for waiting in callbacks.calls_awaiting_callback_since(requested_before)
        # guarded per call: a delivery that lands meanwhile wins
        if callbacks.fail_awaiting_callback(
            waiting.call_id, attempt=waiting.attempt, error_reason=ErrorCode.CALLBACK_TIMEOUT.value
        )
    ]


# --- temporary audio and orphans ---------------------------------------------------------------------


@dataclass(frozen=True)
class TempAudioSweepReport:
    deleted: list[UUID]
    """Calls whose TEMP_AUDIO row was deleted."""
    missing_objects: int
    """Of those, rows whose object was already gone."""


def sweep_temp_audio(db: CallDatabase, store: ObjectStore, *, now: datetime, ttl: timedelta) -> TempAudioSweepReport:
    """Delete TEMP_AUDIO created before ``now - ttl``: the object first, then its row (a crash in between
    leaves a row the next sweep finishes). Nothing else is ever deleted."""
    _require_aware(now=now)
    _require_positive(ttl=ttl)
    cutoff = now - ttl
    queries = MaintenanceQueries(db)
    deleted: list[UUID] = []
    missing_objects = 0
    for page in queries.temp_audio_created_before(cutoff):
        for ref in page:
            if store.exists(ref.storage_key):
                store.delete(ref.storage_key)
            else:
                missing_objects += 1
        deleted.extend(queries.delete_temp_audio_rows(page, cutoff=cutoff))
    logger.info("temp audio sweep: %d deleted, %d objects were already gone", len(deleted), missing_objects)
    return TempAudioSweepReport(deleted=deleted, missing_objects=missing_objects)


@dataclass(frozen=True)
class OrphanReport:
    calls: list[UUID]
    """Deleted calls whose objects were reaped (or, in a dry run, would be)."""
    objects_deleted: int
    bytes_deleted: int


def reap_orphan_artifacts(
    db: CallDatabase, store: ObjectStore, *, now: datetime, min_age: timedelta, dry_run: bool = False
) -> OrphanReport:
    """Delete objects under ``users/{u}/calls/{c}/`` whose call row no longer exists.

    Only objects last modified before ``now - min_age``: intake writes the audio before the row, so a
    fresh object without a row is a live upload. Call existence is checked per page of keys, right
    before that page's deletes; keys outside the call layout are never touched.
    """
    _require_aware(now=now)
    _require_positive(min_age=min_age)
    cutoff = now - min_age
    queries = MaintenanceQueries(db)
    calls: dict[UUID, None] = {}  # insertion-ordered set
    objects = size = 0
    for page in _chunks(store.list_objects(USERS_PREFIX), PAGE_SIZE):
        old = [
            (info, owner[1]) for info in page if info.last_modified < cutoff and (owner := parse_call_prefix(info.key))
        ]
        existing = queries.existing_call_ids(call_id for _, call_id in old)
        for info, call_id in old:
            if call_id in existing:
                continue
            if not dry_run:
                store.delete(info.key)
            calls[call_id] = None
            objects += 1
            size += info.size
    logger.info(
        "orphan reaper%s: %d objects (%d bytes) of %d calls", " (dry run)" if dry_run else "", objects, size, len(calls)
    )
    return OrphanReport(calls=list(calls), objects_deleted=objects, bytes_deleted=size)


# --- history -----------------------------------------------------------------------------------------


def prune_events(db: CallDatabase, *, now: datetime, retention: timedelta) -> int:
    """Delete call_processing_events created before ``now - retention``; how many."""
    _require_aware(now=now)
    _require_positive(retention=retention)
    deleted = MaintenanceQueries(db).delete_events_before(now - retention)
    logger.info("event pruning: %d events deleted", deleted)
    return deleted


def finished_calls_before(db: CallDatabase, before: datetime) -> list[UUID]:
    """COMPLETED and FAILED calls last updated before ``before`` (their Dagster partition keys may be
    dropped: a call processed again gets its key back)."""
    _require_aware(before=before)
    return MaintenanceQueries(db).finished_calls_updated_before(before)


def prune_idempotency_keys(db: CallDatabase, *, now: datetime, retention: timedelta) -> int:
    """Forget upload idempotency keys bound before ``now - retention`` (a retry after that creates a
    new call, as in the reference, which keeps them 24 h); how many."""
    _require_aware(now=now)
    _require_positive(retention=retention)
    deleted = MaintenanceQueries(db).delete_idempotency_keys_before(now - retention)
    logger.info("idempotency key pruning: %d keys deleted", deleted)
    return deleted


# --- reprocessing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReprocessPlan:
    """What a reprocess will run and its estimated provider cost (USD, planning figures).

    ``call_ids`` are the calls that will run. Calls whose stored inputs are gone are listed apart and
    left out, since running them would only turn a finished call FAILED: ``calls_missing_audio`` when
    the selection needs TEMP_AUDIO, ``calls_missing_artifacts`` when it re-derives from a stored raw or
    normalized transcript that is gone. ``audio_seconds`` is the audio sent to the providers (0 when
    the selection needs no audio). The opt-in LLM speaker-naming pass is not counted.
    """

    call_ids: list[UUID]
    selection: StageSelection
    audio_seconds: float
    calls_missing_audio: list[UUID]
    transcription_usd: float
    diarization_usd: float
    llm_usd: float
    total_usd: float
    calls_missing_artifacts: list[UUID] = field(default_factory=list)


def plan_user_reprocess(
    db: CallDatabase,
    settings: Settings,
    *,
    user_id: UUID,
    since: datetime,
    statuses: Collection[CallStatus | str],
    selection: StageSelection,
    store: ObjectStore | None = None,
) -> ReprocessPlan:
    """The user's calls created after ``since`` in ``statuses`` (members or their values, as launch
    config gives them: COMPLETED and/or FAILED) and what reprocessing them costs.

    Inputs are checked from the artifact rows; with ``store``, their objects are checked too (one HEAD
    per needed input per call), so calls whose objects are gone are left out as well.
    """
    _require_aware(since=since)
    _require_selection(selection)
    try:
        wanted = {CallStatus(status) for status in statuses}
    except ValueError:
        raise MaintenanceError(f"statuses must be among {', '.join(CallStatus)}") from None
    if not wanted:
        raise MaintenanceError("statuses must name at least one status")
    active = sorted(wanted - REPROCESSABLE_STATUSES)
    if active:
        raise MaintenanceError(f"only COMPLETED or FAILED calls can be reprocessed, not {', '.join(active)}")
    if db.get_user(user_id) is None:
        raise MaintenanceError(f"unknown user {user_id}", code="unknown_user")
    queries = MaintenanceQueries(db)
    calls = queries.calls_of_user(user_id, created_after=since, statuses=wanted)
    ids = [call.id for call in calls]
    artifacts = queries.artifacts_of(ids)
    estimator = _CostEstimator(settings, _effective_flags(db, settings), selection)
    runnable: list[CallRecord] = []
    missing_audio: list[UUID] = []
    missing_artifacts: list[UUID] = []
    for call in calls:
        missing = estimator.missing_input(artifacts.get(call.id, {}), store)
        if missing is ErrorCode.AUDIO_MISSING:
            missing_audio.append(call.id)
        elif missing is not None:
            missing_artifacts.append(call.id)
        else:
            runnable.append(call)
    plan = estimator.plan(runnable, artifacts, queries.llm_usage_of(ids), missing_audio, missing_artifacts)
    logger.info(
        "reprocess plan for user %s: %d calls, %d missing audio, %d missing artifacts, %.4f USD",
        user_id,
        len(plan.call_ids),
        len(missing_audio),
        len(missing_artifacts),
        plan.total_usd,
    )
    return plan


def plan_call_reprocess(
    db: CallDatabase,
    store: ObjectStore,
    *,
    call_id: UUID,
    selection: StageSelection,
    settings: Settings | None = None,
) -> ReprocessPlan:
    """One call's reprocess plan, refused (MaintenanceError, nothing changed) when the call is unknown
    (``unknown_call``), held by a run (``call_busy``), or an input the selection needs is gone:
    ``audio_missing`` for stages that need TEMP_AUDIO, ``artifact_missing`` for re-deriving from a raw
    or normalized transcript that is gone. Prices and switches come from ``settings`` (default: the
    process's settings)."""
    _require_selection(selection)
    call = db.get_call(call_id)
    if call is None:
        raise MaintenanceError(f"unknown call {call_id}", code="unknown_call")
    if not _idle(call):
        raise MaintenanceError(f"call {call_id} is {call.status} and held by a run; try again later", code="call_busy")
    if settings is None:
        settings = get_settings()
    estimator = _CostEstimator(settings, _effective_flags(db, settings), selection)
    artifacts = db.get_artifacts(call_id)
    missing = estimator.missing_input(artifacts, store)
    if missing is not None:
        needed = "TEMP_AUDIO" if missing is ErrorCode.AUDIO_MISSING else "a stored transcript"
        raise MaintenanceError(f"call {call_id} cannot be reprocessed: {needed} is gone ({missing})", code=missing)
    usage = MaintenanceQueries(db).llm_usage_of([call_id])
    return estimator.plan([call], {call_id: artifacts}, usage, [], [])


def _idle(call: CallRecord) -> bool:
    """Whether a run launched by hand may take the call (the rule of ``CallDatabase.begin_processing``)."""
    return call.status in TERMINAL_STATUSES or (call.status is CallStatus.QUEUED and call.claim_id is None)


def _effective_flags(db: CallDatabase, settings: Settings) -> EffectiveFlags:
    return EffectiveFlags.resolve(settings.flag_defaults, db.get_feature_flags())


class _CostEstimator:
    """Per-call inputs and costs of one selection, with the switches in force now."""

    def __init__(self, settings: Settings, flags: EffectiveFlags, selection: StageSelection) -> None:
        self._settings = settings
        self._flags = flags
        self._selection = selection
        self._analyzes = PipelineAsset.ANALYSIS in selection and flags.analysis

    def missing_input(
        self, artifacts: dict[ArtifactType, ArtifactRecord], store: ObjectStore | None
    ) -> ErrorCode | None:
        """Which stored input of the selection is gone (rows, and objects when a store is given)."""

        def stored(artifact_type: ArtifactType) -> bool:
            record = artifacts.get(artifact_type)
            return record is not None and (store is None or store.exists(record.storage_key))

        selected = self._selection
        if selected.needs_audio and not stored(ArtifactType.TEMP_AUDIO):
            return ErrorCode.AUDIO_MISSING
        normalizes = PipelineAsset.NORMALIZED_TRANSCRIPT in selected
        if normalizes and PipelineAsset.RAW_TRANSCRIPT not in selected and not stored(ArtifactType.RAW_TRANSCRIPT_JSON):
            return ErrorCode.ARTIFACT_MISSING
        if self._analyzes and not normalizes and not stored(ArtifactType.NORMALIZED_TRANSCRIPT_JSON):
            return ErrorCode.ARTIFACT_MISSING
        return None

    def plan(
        self,
        calls: Sequence[CallRecord],
        artifacts: dict[UUID, dict[ArtifactType, ArtifactRecord]],
        usage: dict[UUID, LlmUsage],
        missing_audio: list[UUID],
        missing_artifacts: list[UUID],
    ) -> ReprocessPlan:
        audio_total = transcription = diarization = llm = 0.0
        for call in calls:
            stored = artifacts.get(call.id, {})
            audio_seconds = _audio_seconds(call, stored.get(ArtifactType.TEMP_AUDIO))
            if self._selection.needs_audio:
                audio_total += audio_seconds
                providers = estimate_provider_cost_usd(
                    audio_seconds,
                    transcription_price_per_audio_hour=self._settings.lemonfox_price_per_audio_hour_usd,
                    diarization_price_per_audio_hour=self._settings.pyannote_price_per_audio_hour_usd,
                    transcribe=PipelineAsset.RAW_TRANSCRIPT in self._selection,
                    diarization_jobs=1 if self._diarizes(audio_seconds) else 0,
                    diarization_min_billed_seconds=self._settings.pyannote_min_billed_seconds,
                )
                transcription += providers.transcription_usd
                diarization += providers.diarization_usd
            if self._analyzes:
                llm += self._analysis_usd(
                    usage.get(call.id), stored.get(ArtifactType.NORMALIZED_TRANSCRIPT_JSON), audio_seconds
                )
        return ReprocessPlan(
            call_ids=[call.id for call in calls],
            selection=self._selection,
            audio_seconds=audio_total,
            calls_missing_audio=missing_audio,
            transcription_usd=transcription,
            diarization_usd=diarization,
            llm_usd=llm,
            total_usd=transcription + diarization + llm,
            calls_missing_artifacts=missing_artifacts,
        )

    def _diarizes(self, audio_seconds: float) -> bool:
        """Selected, and diarized by the pipeline's own rule."""
        return PipelineAsset.DIARIZATION in self._selection and (
            diarization_skip_reason(
                enabled=self._flags.diarization,
                configured=self._settings.pyannote_api_key is not None,
                audio_seconds=audio_seconds,
                max_audio_minutes=self._settings.scryon_diarization_max_audio_minutes,
            )
            is None
        )

    def _analysis_usd(self, usage: LlmUsage | None, normalized: ArtifactRecord | None, audio_seconds: float) -> float:
        """The call's last recorded analysis usage when there is one (the same transcript costs about the
        same again), else an estimate from the stored transcript's size or, failing that, the audio."""
        if usage is not None and usage.prompt_tokens > 0:
            prompt_tokens, completion_tokens = usage.prompt_tokens, usage.completion_tokens
        else:
            overhead_tokens, empty_transcript_bytes = _analysis_prompt_overhead()
            if normalized is not None:
                transcript_tokens = max(0, normalized.byte_size - empty_transcript_bytes) / (
                    NORMALIZED_JSON_BYTES_PER_PROMPT_TOKEN
                )
            else:
                transcript_tokens = audio_seconds * PROMPT_TOKENS_PER_AUDIO_SECOND
            prompt_tokens = overhead_tokens + round(transcript_tokens)
            completion_tokens = ANALYSIS_COMPLETION_TOKENS_ESTIMATE
        return estimate_llm_cost_usd(
            prompt_tokens,
            completion_tokens,
            input_price_per_mtok=self._settings.llm_price_input_per_mtok_usd,
            output_price_per_mtok=self._settings.llm_price_output_per_mtok_usd,
        )


def _audio_seconds(call: CallRecord, temp_audio: ArtifactRecord | None) -> float:
    """The call's recorded duration, else its upload size at the format's assumed byte rate, else 0."""
    if call.duration_seconds is not None and call.duration_seconds > 0:
        return call.duration_seconds
    if temp_audio is None:
        return 0.0
    rate = AUDIO_BYTES_PER_SECOND.get(temp_audio.content_type, DEFAULT_AUDIO_BYTES_PER_SECOND)
    return temp_audio.byte_size / rate


@functools.cache
def _analysis_prompt_overhead() -> tuple[int, int]:
    """(prompt tokens, JSON bytes) of an analysis request for an empty transcript: the system prompt,
    the response schema and the framing every request pays, and the JSON that carries no speech."""
    empty = NormalizedTranscript(call_id="")
    return estimate_analysis_prompt_tokens(empty), len(empty.to_json_bytes())


# --- deletion ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeleteReport:
    deleted: list[UUID]
    unknown: list[UUID]
    """Ids with no call row (never existed, or already deleted)."""
    objects_deleted: int


def delete_calls(db: CallDatabase, store: ObjectStore, call_ids: Sequence[UUID]) -> DeleteReport:
    """Delete each call: its objects first (everything under its prefix), then its row, whose
    artifacts, action items, events, sentiment and usage rows cascade.

    One call at a time, so a storage failure leaves every call either whole or gone (its row stays
    until its objects are). Objects a late worker writes after the prefix delete are reaped later.
    """
    unique = list(dict.fromkeys(call_ids))
    calls = db.get_calls(unique)
    deleted: list[UUID] = []
    unknown: list[UUID] = []
    objects = 0
    for call_id in unique:
        call = calls.get(call_id)
        if call is None:
            unknown.append(call_id)
            continue
        objects += store.delete_prefix(call_prefix(call.user_id, call.id))
        (deleted if db.delete_call(call_id) else unknown).append(call_id)
    logger.info("call deletion: %d deleted, %d unknown, %d objects", len(deleted), len(unknown), objects)
    return DeleteReport(deleted=deleted, unknown=unknown, objects_deleted=objects)


# --- normalization backfill --------------------------------------------------------------------------


def calls_needing_renormalization(db: CallDatabase, *, since: datetime, version: int) -> list[UUID]:
    """COMPLETED calls created after ``since`` with a raw transcript row whose normalized transcript is
    missing, unversioned or older than ``version`` — the ones the UI marks stale."""
    _require_aware(since=since)
    if version < 1:
        raise MaintenanceError("version must be a positive normalization version")
    return MaintenanceQueries(db).calls_needing_renormalization(created_after=since, version=version)


# --- reconcile after a restore -----------------------------------------------------------------------

_AUDIO_DERIVED = frozenset({ArtifactType.RAW_TRANSCRIPT_JSON, ArtifactType.DIARIZATION_JSON})
_TRANSCRIPT_DERIVED = frozenset({ArtifactType.NORMALIZED_TRANSCRIPT_JSON, ArtifactType.ANALYSIS_JSON})


@dataclass(frozen=True)
class ReconcileReport:
    """Where the database and the bucket disagree, and what can be rebuilt.

    The three derivation lists cover COMPLETED calls only (active calls are being rebuilt by their run;
    FAILED ones are reprocessed by hand). A call may be both ``rederivable`` (its transcript can be
    rebuilt from the raw one) and ``underivable`` (its diarization is lost with the audio).
    """

    missing_artifacts: list[tuple[UUID, ArtifactType]]
    """Row present, object gone."""
    orphan_objects: list[str]
    """Keys under users/ whose call row is gone (any age); names outside the key layout masked."""
    expired_temp_audio: list[UUID]
    """TEMP_AUDIO past its TTL whose object is still present."""
    rederivable: list[UUID]
    """Normalized transcript or analysis lost, raw transcript present: a normalization re-run."""
    reprocessable: list[UUID]
    """Raw transcript or diarization lost, TEMP_AUDIO present: a full run."""
    underivable: list[UUID]
    """Raw transcript or diarization lost and the audio gone."""
    untracked_objects: list[str] = field(default_factory=list)
    """Keys of existing calls that no artifact row points at, written before the reconcile started
    (e.g. audio the restored database already swept): no sweep will ever delete them. Masked likewise."""


def reconcile_storage(db: CallDatabase, store: ObjectStore, *, now: datetime, ttl: timedelta) -> ReconcileReport:
    """Compare every artifact row with every object, in one ordered pass over both (rows streamed from
    one snapshot in key order, merged with the bucket listing), and classify what disagrees.

    ``now`` is when the reconcile starts; ``ttl`` is TEMP_AUDIO's lifetime. Report only: nothing changes.
    Findings that concurrent work explains (a row deleted after the snapshot, an object written while
    the listing ran) are re-checked against the database at the end and dropped.
    """
    _require_aware(now=now)
    _require_positive(ttl=ttl)
    queries = MaintenanceQueries(db)
    expiry = now - ttl
    missing: list[ArtifactRecord] = []
    expired: list[UUID] = []
    unrowed = _UnrowedObjects(queries, written_before=now)
    with queries.artifacts_in_key_order() as rows:
        for row, found in _merge_by_key(rows, store.list_objects()):
            if found is None:
                assert row is not None
                missing.append(row)
            elif row is None:
                unrowed.add(found)
            elif row.artifact_type is ArtifactType.TEMP_AUDIO and row.created_at < expiry:
                expired.append(row.call_id)
    unrowed.flush()
    lost = _still_missing(queries, missing)
    rederivable, reprocessable, underivable = _classify(db, queries, lost)
    report = ReconcileReport(
        missing_artifacts=[(call_id, kind) for call_id, kinds in lost.items() for kind in sorted(kinds)],
        orphan_objects=[_reportable_key(key) for key in unrowed.orphans],
        expired_temp_audio=expired,
        rederivable=rederivable,
        reprocessable=reprocessable,
        underivable=underivable,
        untracked_objects=[_reportable_key(key) for key in unrowed.confirmed_untracked()],
    )
    logger.info(
        "reconcile: %d missing artifacts, %d orphan objects, %d untracked objects, %d expired temp audio, "
        "%d rederivable, %d reprocessable, %d underivable",
        len(report.missing_artifacts),
        len(report.orphan_objects),
        len(report.untracked_objects),
        len(expired),
        len(rederivable),
        len(reprocessable),
        len(underivable),
    )
    return report


def forget_missing_artifacts(db: CallDatabase, missing: Sequence[tuple[UUID, ArtifactType]]) -> int:
    """Delete the artifact rows whose objects are gone (before re-deriving them); how many existed."""
    return MaintenanceQueries(db).forget_artifacts(missing)


def _merge_by_key(
    rows: Iterator[ArtifactRecord], objects: Iterator[ObjectInfo]
) -> Iterator[tuple[ArtifactRecord | None, ObjectInfo | None]]:
    """Pair rows and objects, both sorted by key in byte order: (row, object), (row, None) for a row without
    its object, (None, object) for an object no row points at."""
    row, found = next(rows, None), next(objects, None)
    matched = False  # whether ``found`` has been paired with a row already
    while row is not None or found is not None:
        if found is None or (row is not None and row.storage_key < found.key):
            assert row is not None
            yield row, None
            row = next(rows, None)
        elif row is None or found.key < row.storage_key:
            if not matched:
                yield None, found
            found, matched = next(objects, None), False
        else:
            yield row, found
            matched = True
            row = next(rows, None)


class _UnrowedObjects:
    """Objects no row pointed at, sorted a page at a time into orphans (call gone) and untracked
    candidates (call exists). Keys outside the call layout are ignored."""

    def __init__(self, queries: MaintenanceQueries, *, written_before: datetime) -> None:
        self._queries = queries
        self._written_before = written_before
        self._pending: list[tuple[ObjectInfo, UUID]] = []
        self.orphans: list[str] = []
        self._untracked: list[tuple[ObjectInfo, UUID]] = []

    def add(self, info: ObjectInfo) -> None:
        owner = parse_call_prefix(info.key)
        if owner is None:
            return
        self._pending.append((info, owner[1]))
        if len(self._pending) >= PAGE_SIZE:
            self.flush()

    def flush(self) -> None:
        existing = self._queries.existing_call_ids(call_id for _, call_id in self._pending)
        for info, call_id in self._pending:
            if call_id not in existing:
                self.orphans.append(info.key)
            elif info.last_modified < self._written_before:
                self._untracked.append((info, call_id))
        self._pending = []

    def confirmed_untracked(self) -> list[str]:
        """Untracked candidates that still have no row (a writer may have registered one since)."""
        keys = self._queries.artifact_keys_of({call_id for _, call_id in self._untracked})
        return [info.key for info, _ in self._untracked if info.key not in keys]


def _reportable_key(key: str) -> str:
    """The key as it is when the storage layout derived it (UUIDs and fixed names only), else with every
    segment but UUIDs and plain words masked: a reference-era upload name may hold a contact's name."""
    owner = parse_call_prefix(key)
    if owner is not None:
        extension = key.rpartition(".")[2]
        for artifact_type in ArtifactType:
            try:
                if key == artifact_key(*owner, artifact_type, extension):
                    return key
            except ValueError:  # not an audio extension the layout writes
                continue
    return loggable_key(key)


def _still_missing(queries: MaintenanceQueries, candidates: list[ArtifactRecord]) -> dict[UUID, set[ArtifactType]]:
    """The candidates whose row still points at the same key now (a sweep or delete that removed the
    object after the snapshot also removed the row)."""
    current = queries.artifacts_of({record.call_id for record in candidates})
    lost: dict[UUID, set[ArtifactType]] = {}
    for record in candidates:
        now_stored = current.get(record.call_id, {}).get(record.artifact_type)
        if now_stored is not None and now_stored.storage_key == record.storage_key:
            lost.setdefault(record.call_id, set()).add(record.artifact_type)
    return lost


def _classify(
    db: CallDatabase, queries: MaintenanceQueries, lost: dict[UUID, set[ArtifactType]]
) -> tuple[list[UUID], list[UUID], list[UUID]]:
    """(rederivable, reprocessable, underivable) among the COMPLETED calls with lost artifacts."""
    calls = db.get_calls(lost)
    rows = queries.artifacts_of(list(lost))
    rederivable: list[UUID] = []
    reprocessable: list[UUID] = []
    underivable: list[UUID] = []
    for call_id, kinds in lost.items():
        call = calls.get(call_id)
        if call is None or call.status is not CallStatus.COMPLETED:
            continue
        stored = rows.get(call_id, {})
        has_audio = ArtifactType.TEMP_AUDIO in stored and ArtifactType.TEMP_AUDIO not in kinds
        needs_audio = bool(kinds & _AUDIO_DERIVED)
        if needs_audio and has_audio:
            reprocessable.append(call_id)
            continue
        if needs_audio:
            underivable.append(call_id)
        has_raw = ArtifactType.RAW_TRANSCRIPT_JSON in stored and ArtifactType.RAW_TRANSCRIPT_JSON not in kinds
        if kinds & _TRANSCRIPT_DERIVED and has_raw:
            rederivable.append(call_id)
    return rederivable, reprocessable, underivable


# --- argument checks and helpers ---------------------------------------------------------------------


def _require_aware(**moments: datetime) -> None:
    for name, moment in moments.items():
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise MaintenanceError(f"{name} must be timezone-aware")


def _require_positive(**windows: timedelta) -> None:
    for name, window in windows.items():
        if window <= timedelta(0):
            raise MaintenanceError(f"{name} must be a positive duration", code="invalid_window")


def _require_selection(selection: StageSelection) -> None:
    if not selection.assets:
        raise MaintenanceError("the stage selection is empty")


def _chunks(items: Iterable[_T], size: int) -> Iterator[list[_T]]:
    chunk: list[_T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
