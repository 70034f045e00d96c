"""Reprocess planning: which calls a reprocess runs, which it leaves out for lost inputs, and what it
costs (the arithmetic is ``domain.analysis.cost``'s; whether a call may run again is ``domain.policy``'s)."""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from scryon_dagster.adapters.db import maintenance as maintenance_sql
from scryon_dagster.adapters.db.records import ArtifactRecord, CallRecord, LlmUsage
from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.object_store import ObjectStore
from scryon_dagster.domain.analysis.cost import (
    CallCostFacts,
    ReprocessPrices,
    ReprocessScope,
    estimate_reprocess_cost,
)
from scryon_dagster.domain.calls import ArtifactType, CallStatus, ErrorCode
from scryon_dagster.domain.flags import EffectiveFlags
from scryon_dagster.domain.policy import (
    CALL_BUSY,
    RESTING_STATUSES,
    diarization_skip_reason,
    reprocess_refusal,
)
from scryon_dagster.pipeline.maintenance._checks import MaintenanceError, require_aware, require_selection
from scryon_dagster.pipeline.outcomes import PipelineAsset, StageSelection
from scryon_dagster.settings import Settings, get_settings

logger = logging.getLogger(__name__)

REPROCESSABLE_STATUSES = RESTING_STATUSES
"""A user's calls are reprocessed only once they rest; active calls belong to their run."""


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
    require_aware(since=since)
    require_selection(selection)
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
    calls = maintenance_sql.calls_of_user(db, user_id, created_after=since, statuses=wanted)
    ids = [call.id for call in calls]
    artifacts = maintenance_sql.artifacts_of(db, ids)
    planner = _Planner(settings, db, selection)
    runnable: list[CallRecord] = []
    missing_audio: list[UUID] = []
    missing_artifacts: list[UUID] = []
    for call in calls:
        refusal = planner.refusal(call, artifacts.get(call.id, {}), store)
        if refusal == ErrorCode.AUDIO_MISSING:
            missing_audio.append(call.id)
        elif refusal is not None:
            missing_artifacts.append(call.id)
        else:
            runnable.append(call)
    plan = planner.plan(runnable, artifacts, maintenance_sql.llm_usage_of(db, ids), missing_audio, missing_artifacts)
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
    require_selection(selection)
    call = db.get_call(call_id)
    if call is None:
        raise MaintenanceError(f"unknown call {call_id}", code="unknown_call")
    planner = _Planner(settings or get_settings(), db, selection)
    artifacts = db.get_artifacts(call_id)
    refusal = planner.refusal(call, artifacts, store)
    if refusal == CALL_BUSY:
        raise MaintenanceError(f"call {call_id} is {call.status} and held by a run; try again later", code=CALL_BUSY)
    if refusal is not None:
        needed = "TEMP_AUDIO" if refusal == ErrorCode.AUDIO_MISSING else "a stored transcript"
        raise MaintenanceError(f"call {call_id} cannot be reprocessed: {needed} is gone ({refusal})", code=refusal)
    return planner.plan([call], {call_id: artifacts}, maintenance_sql.llm_usage_of(db, [call_id]), [], [])


def present_inputs(
    needed: Collection[ArtifactType], artifacts: Mapping[ArtifactType, ArtifactRecord], store: ObjectStore | None
) -> set[ArtifactType]:
    """Which of the ``needed`` inputs are stored: a row, and its object when ``store`` is given."""
    return {
        artifact_type
        for artifact_type in needed
        if (record := artifacts.get(artifact_type)) is not None and (store is None or store.exists(record.storage_key))
    }


def calls_needing_renormalization(db: CallDatabase, *, since: datetime, version: int) -> list[UUID]:
    """COMPLETED calls created after ``since`` with a raw transcript row whose normalized transcript is
    missing, unversioned or older than ``version`` — the ones the UI marks stale."""
    require_aware(since=since)
    if version < 1:
        raise MaintenanceError("version must be a positive normalization version")
    return maintenance_sql.calls_needing_renormalization(db, created_after=since, version=version)


class _Planner:
    """One selection's inputs and costs, with the switches and prices in force now."""

    def __init__(self, settings: Settings, db: CallDatabase, selection: StageSelection) -> None:
        flags = EffectiveFlags.resolve(settings.flag_defaults, db.get_feature_flags())
        self._selection = selection
        self._needed = selection.stored_inputs(analysis_enabled=flags.analysis)
        self._prices = ReprocessPrices(
            transcription_per_audio_hour=settings.lemonfox_price_per_audio_hour_usd,
            diarization_per_audio_hour=settings.pyannote_price_per_audio_hour_usd,
            diarization_min_billed_seconds=settings.pyannote_min_billed_seconds,
            llm_input_per_mtok=settings.llm_price_input_per_mtok_usd,
            llm_output_per_mtok=settings.llm_price_output_per_mtok_usd,
        )

        def diarizes(audio_seconds: float) -> bool:
            """Selected, and diarized by the pipeline's own rule."""
            return PipelineAsset.DIARIZATION in selection and (
                diarization_skip_reason(
                    enabled=flags.diarization,
                    configured=settings.pyannote_api_key is not None,
                    audio_seconds=audio_seconds,
                    max_audio_minutes=settings.scryon_diarization_max_audio_minutes,
                )
                is None
            )

        self._scope = ReprocessScope(
            sends_audio=selection.needs_audio,
            transcribes=PipelineAsset.RAW_TRANSCRIPT in selection,
            analyzes=PipelineAsset.ANALYSIS in selection and flags.analysis,
            diarizes=diarizes,
        )

    def refusal(
        self, call: CallRecord, artifacts: Mapping[ArtifactType, ArtifactRecord], store: ObjectStore | None
    ) -> str | None:
        return reprocess_refusal(
            call.status,
            claimed=call.claim_id is not None,
            needed=self._needed,
            stored=present_inputs(self._needed, artifacts, store),
        )

    def plan(
        self,
        calls: Sequence[CallRecord],
        artifacts: Mapping[UUID, Mapping[ArtifactType, ArtifactRecord]],
        usage: Mapping[UUID, LlmUsage],
        missing_audio: list[UUID],
        missing_artifacts: list[UUID],
    ) -> ReprocessPlan:
        facts = [_cost_facts(call, artifacts.get(call.id, {}), usage.get(call.id)) for call in calls]
        cost = estimate_reprocess_cost(facts, self._scope, self._prices)
        return ReprocessPlan(
            call_ids=[call.id for call in calls],
            selection=self._selection,
            audio_seconds=cost.audio_seconds,
            calls_missing_audio=missing_audio,
            transcription_usd=cost.transcription_usd,
            diarization_usd=cost.diarization_usd,
            llm_usd=cost.llm_usd,
            total_usd=cost.total_usd,
            calls_missing_artifacts=missing_artifacts,
        )


def _cost_facts(
    call: CallRecord, stored: Mapping[ArtifactType, ArtifactRecord], usage: LlmUsage | None
) -> CallCostFacts:
    upload = stored.get(ArtifactType.TEMP_AUDIO)
    normalized = stored.get(ArtifactType.NORMALIZED_TRANSCRIPT_JSON)
    return CallCostFacts(
        duration_seconds=call.duration_seconds,
        upload_content_type=upload.content_type if upload is not None else None,
        upload_bytes=upload.byte_size if upload is not None else None,
        normalized_transcript_bytes=normalized.byte_size if normalized is not None else None,
        recorded_prompt_tokens=usage.prompt_tokens if usage is not None else 0,
        recorded_completion_tokens=usage.completion_tokens if usage is not None else 0,
    )
