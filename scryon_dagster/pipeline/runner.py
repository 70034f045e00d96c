"""The per-call pipeline without Dagster: a batch of calls runs concurrently, each call through the
selected stages, each succeeding or failing on its own with a stable error code.

Stage policy (system.md §3): audio preprocessing, diarization, voice match, naming and action items
are soft (the call goes on without them); transcription, normalization and analysis are hard (the
call becomes FAILED with the stage's error code). Every status move is a compare-and-set guarded by
the call's attempt, so a re-queued or swept call is never overwritten by a late worker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import replace
from uuid import UUID

from scryon_dagster.adapters.audio import AudioPreprocessor, remove_orphaned_call_audio
from scryon_dagster.adapters.db.callback_queries import CallbackQueries
from scryon_dagster.adapters.db.records import ClaimedCall, ProcessingEvent
from scryon_dagster.adapters.db.repository import CallDatabase, DatabaseUnavailableError
from scryon_dagster.adapters.db.request_slots import SharedRequestPacer
from scryon_dagster.adapters.lemonfox import LemonfoxClient
from scryon_dagster.adapters.llm import LlmClient
from scryon_dagster.adapters.object_store import ObjectStore, ObjectStoreUnavailableError
from scryon_dagster.adapters.pyannote import PyannoteClient
from scryon_dagster.domain.calls import TERMINAL_STATUSES, CallStatus, ErrorCode
from scryon_dagster.domain.flags import EffectiveFlags
from scryon_dagster.pipeline.analysis_stage import reuse_stored_analysis, run_analysis
from scryon_dagster.pipeline.audio_stages import (
    AudioPorts,
    delivered_transcript_metadata,
    load_stored_provider_outputs,
    run_audio_stages,
)
from scryon_dagster.pipeline.call_context import CallPorts, CallWork
from scryon_dagster.pipeline.callbacks import RESUME_SELECTION, CallbackSigner
from scryon_dagster.pipeline.memory import batch_memory_budget, call_footprint
from scryon_dagster.pipeline.outcomes import CallOutcome, MetadataValue, PipelineAsset, StageSelection
from scryon_dagster.pipeline.settle import Settlement, settle_failure
from scryon_dagster.pipeline.stages import BatchBookkeeping, StageFailure, StageLog
from scryon_dagster.pipeline.transcript_stage import build_normalized_transcript
from scryon_dagster.settings import Settings

logger = logging.getLogger(__name__)


class CallPipeline:
    def __init__(
        self,
        *,
        settings: Settings,
        db: CallDatabase,
        store: ObjectStore,
        audio: AudioPreprocessor,
        lemonfox: LemonfoxClient,
        pyannote: PyannoteClient | None,
        llm: LlmClient,
        callback_signer: CallbackSigner | None = None,
    ) -> None:
        """``callback_signer`` switches transcription to callback mode."""
        self.settings = settings
        self.db = db
        self.store = store
        self.audio = audio
        self.lemonfox = lemonfox
        self.pyannote = pyannote
        self.llm = llm
        self.callback_signer = callback_signer
        self.callbacks = CallbackQueries(db)
        self.memory = batch_memory_budget(settings)
        self.ports = CallPorts(settings=settings, db=db, store=store, llm=llm)

    @property
    def audio_ports(self) -> AudioPorts:
        """The audio stages' ports, from the clients this pipeline holds now."""
        return AudioPorts(self.ports, self.audio, self.lemonfox, self.pyannote, self.callback_signer)

    def close(self) -> None:
        self.lemonfox.close()
        self.llm.close()
        if self.pyannote is not None:
            self.pyannote.close()

    def run_batch(
        self,
        call_ids: Sequence[UUID],
        selection: StageSelection,
        *,
        batch_id: UUID | None,
        run_id: str,
        take_idle: bool = True,
    ) -> Iterator[CallOutcome]:
        """Yield each call's outcome as soon as it finishes (in completion order); never raises for one
        call's trouble.

        The run holds the calls it takes (claim = the run id), so recovery after a crash touches only
        what this run held. ``take_idle``: a run launched by hand may reprocess COMPLETED and FAILED
        calls; a pickup batch (or a relaunch of one) takes only calls still waiting in the queue.
        Calls whose transcript a callback delivered continue from normalization, whatever the selection.
        """
        batch = batch_id or UUID(run_id)
        claims = self.db.begin_processing(
            call_ids, batch_id=batch, run_id=UUID(run_id), take_idle=take_idle, assets=selection.names
        )
        started = {claim.call_id for claim in claims}
        resumed = self.callbacks.begin_resume([i for i in call_ids if i not in started], batch_id=batch)
        resumed_ids = {claim.call_id for claim in resumed}
        claims += resumed
        started |= resumed_ids
        for call_id in call_ids:
            if call_id not in started:
                yield self._not_started(call_id)
        if not claims:
            return
        flags = EffectiveFlags.resolve(self.settings.flag_defaults, self.db.get_feature_flags())
        with BatchBookkeeping(self.db, started) as bookkeeping:
            workers = min(len(claims), self.settings.scryon_batch_parallel_calls)
            # The call pool is left (waiting for every call) before the diarization pool it submits to.
            with (
                ThreadPoolExecutor(workers, thread_name_prefix="scryon-diarize") as diarizers,
                ThreadPoolExecutor(workers, thread_name_prefix="scryon-call") as calls,
            ):
                futures: dict[Future[CallOutcome], ClaimedCall] = {
                    calls.submit(
                        self._run_call,
                        claim,
                        selection,
                        flags,
                        diarizers,
                        bookkeeping.events,
                        resumed=claim.call_id in resumed_ids,
                    ): claim
                    for claim in claims
                }
                for future in as_completed(futures):
                    claim = futures[future]
                    bookkeeping.finished(claim.call_id)
                    yield _outcome_of(future, claim)

    def _not_started(self, call_id: UUID) -> CallOutcome:
        """Why the run did not take a call: an unknown call fails, a finished one is left as it is."""
        call = self.db.get_call(call_id)
        if call is None:
            return CallOutcome(call_id, error_code="call_not_found")
        if call.status in TERMINAL_STATUSES or call.status is CallStatus.QUEUED:
            return CallOutcome(call_id, left_alone=f"{call.status.lower()}_not_taken")
        return CallOutcome(call_id, error_code="call_busy")

    def _why_not_handed_off(self, call_id: UUID) -> str:
        """An empty delivery may have failed the call before its run let go of it."""
        call = self.db.get_call(call_id)
        if call is not None and call.status is CallStatus.FAILED and call.error_reason:
            return call.error_reason
        return "superseded"

    def _run_call(
        self,
        claim: ClaimedCall,
        selection: StageSelection,
        flags: EffectiveFlags,
        diarizers: ThreadPoolExecutor,
        events: Callable[[ProcessingEvent], None],
        *,
        resumed: bool,
    ) -> CallOutcome:
        """One call through its stages; whatever goes wrong ends as this call's outcome, never as an
        exception that could reach its neighbours."""
        log = StageLog(claim.call_id, claim.user_id, events)
        try:
            call = self.db.get_call(claim.call_id)
            if call is None:
                return CallOutcome(claim.call_id, error_code="call_not_found")
            work = CallWork(
                claim=claim,
                call=call,
                user=self.db.get_user(call.user_id),
                artifacts=self.db.get_artifacts(call.id),
                flags=flags,
                log=log,
                voiceprint=self._voiceprint(call.user_id) if flags.voice_embedding else None,
                resumed_from_callback=resumed,
            )
            materialized = self._stages(
                work, RESUME_SELECTION if resumed else selection.within(call.cycle_assets), diarizers
            )
            if work.awaiting_callback:
                if not self.callbacks.hand_off(call.id, attempt=claim.attempt):
                    return CallOutcome(claim.call_id, error_code=self._why_not_handed_off(call.id))
                return CallOutcome(claim.call_id, materialized=materialized, stage_reasons=log.reasons)
            if not self.ports.move(work, (CallStatus.TRANSCRIBING, CallStatus.ANALYZING), CallStatus.COMPLETED):
                return CallOutcome(claim.call_id, error_code="superseded")
            return CallOutcome(claim.call_id, materialized=materialized, stage_reasons=log.reasons)
        except StageFailure as failure:
            return replace(self._settle_failure(claim, failure.code), stage_reasons=log.reasons)
        except DatabaseUnavailableError:
            return self._settle_failure(claim, ErrorCode.DATABASE_UNAVAILABLE)
        except ObjectStoreUnavailableError:
            return self._settle_failure(claim, ErrorCode.STORAGE_UNAVAILABLE)
        except Exception as exc:
            # Only the type: messages of third-party exceptions may quote call data.
            logger.error("call %s failed unexpectedly (%s)", claim.call_id, type(exc).__name__)
            return self._settle_failure(claim, ErrorCode.INTERNAL_ERROR)

    def _settle_failure(self, claim: ClaimedCall, code: str) -> CallOutcome:
        """Retry or fail the call (``settle_failure``); if neither can be written, the call is left in
        flight for the stale sweep, which settles it by the same rule."""
        try:
            settlement = settle_failure(
                self.db,
                self.settings.retry_policy,
                call_id=claim.call_id,
                attempt=claim.attempt,
                retry_count=claim.retry_count,
                code=code,
            )
        except Exception as exc:
            logger.warning("call %s: failure %s not recorded (%s)", claim.call_id, code, type(exc).__name__)
            return CallOutcome(claim.call_id, left_alone=f"unrecorded_{code}")
        if settlement is Settlement.RETRY:
            return CallOutcome(claim.call_id, retry_of=code)
        return CallOutcome(claim.call_id, error_code=code)

    def _stages(
        self, work: CallWork, selection: StageSelection, diarizers: ThreadPoolExecutor
    ) -> dict[PipelineAsset, dict[str, MetadataValue]]:
        materialized: dict[PipelineAsset, dict[str, MetadataValue]] = {
            asset: {"reused": True} for asset in self._reused_outputs(work, selection)
        }
        audio_stages = {PipelineAsset.DIARIZATION, PipelineAsset.RAW_TRANSCRIPT} & selection.assets - set(materialized)
        with self.memory.hold(call_footprint(work.call.duration_seconds)):
            if audio_stages:
                materialized.update(run_audio_stages(self.audio_ports, work, audio_stages, diarizers))
                work.audio = None  # its files went with the call's audio directory
                if work.awaiting_callback:
                    return materialized
            normalized = None
            if (
                PipelineAsset.NORMALIZED_TRANSCRIPT in selection
                and PipelineAsset.NORMALIZED_TRANSCRIPT not in materialized
            ):
                load_stored_provider_outputs(self.ports, work)
                if work.resumed_from_callback:
                    materialized[PipelineAsset.RAW_TRANSCRIPT] = delivered_transcript_metadata(self.settings, work)
                normalized, metadata = build_normalized_transcript(self.ports, work)
                materialized[PipelineAsset.NORMALIZED_TRANSCRIPT] = metadata
            if PipelineAsset.ANALYSIS in selection:
                analysis_metadata = (
                    reuse_stored_analysis(self.ports, work) if PipelineAsset.ANALYSIS in materialized else None
                ) or run_analysis(self.ports, work, normalized)
                if analysis_metadata is not None:
                    materialized[PipelineAsset.ANALYSIS] = analysis_metadata
        return materialized

    def _reused_outputs(self, work: CallWork, selection: StageSelection) -> list[PipelineAsset]:
        """The selected outputs this processing cycle has stored already (an earlier try of a retried
        call): reused as they are, so that no finished stage is paid for twice.

        An output is reused only with all of its selected upstream outputs, so that a rebuilt upstream
        (a diarization that failed softly the first time, say) always rebuilds what derives from it."""
        if work.resumed_from_callback or not work.claim.retry_count or work.call.cycle_started_at is None:
            return []
        cycle_started_at = work.call.cycle_started_at
        reused: list[PipelineAsset] = []
        for asset in PipelineAsset:  # in dependency order
            record = work.artifacts.get(asset.artifact_type)
            if (
                asset in selection
                and record is not None
                and record.created_at >= cycle_started_at
                and all(dep in reused for dep in asset.upstream & selection.assets)
            ):
                reused.append(asset)
        return reused

    def _voiceprint(self, user_id: UUID) -> str | None:
        profile = self.db.get_voice_profile(user_id)
        return _voiceprint_of(profile.embedding_json) if profile is not None else None


def _outcome_of(future: Future[CallOutcome], claim: ClaimedCall) -> CallOutcome:
    try:
        return future.result()
    except Exception as exc:  # _run_call settles every failure; this only guards the batch against a bug
        logger.error("call %s: no outcome (%s)", claim.call_id, type(exc).__name__)
        return CallOutcome(claim.call_id, error_code=ErrorCode.INTERNAL_ERROR)


def _voiceprint_of(embedding_json: object) -> str | None:
    """The opaque voiceprint string inside the stored profile blob (never decoded)."""
    if isinstance(embedding_json, str):
        return embedding_json
    if isinstance(embedding_json, dict):
        value = embedding_json.get("voiceprint")
        return value if isinstance(value, str) else None
    return None


def build_call_pipeline(settings: Settings, db: CallDatabase, store: ObjectStore) -> CallPipeline:
    # httpx logs every request URL at INFO, presigned upload URLs (with their signatures) included
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    remove_orphaned_call_audio()
    return CallPipeline(
        settings=settings,
        db=db,
        store=store,
        audio=AudioPreprocessor.from_settings(settings),
        lemonfox=LemonfoxClient.from_settings(settings),
        pyannote=(
            PyannoteClient.from_settings(settings, pacer=_shared_pyannote_pacer(settings, db))
            if settings.pyannote_api_key
            else None
        ),
        llm=LlmClient.from_settings(settings),
        callback_signer=(
            CallbackSigner.from_settings(settings) if settings.scryon_transcription_callback_enabled else None
        ),
    )


def _shared_pyannote_pacer(settings: Settings, db: CallDatabase) -> SharedRequestPacer | None:
    """pyannoteAI's per-minute budget is per API key: every run worker draws from one budget."""
    per_minute = settings.scryon_pyannote_requests_per_minute
    return SharedRequestPacer(db, "pyannote", per_minute) if per_minute else None
