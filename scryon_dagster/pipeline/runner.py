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
from dataclasses import dataclass, replace
from uuid import UUID

from scryon_dagster.adapters.audio import AudioPreprocessor, PreprocessedAudio
from scryon_dagster.adapters.db.callback_queries import CallbackQueries
from scryon_dagster.adapters.db.records import ArtifactRecord, CallRecord, ClaimedCall, ProcessingEvent, UserRecord
from scryon_dagster.adapters.db.repository import CallDatabase, DatabaseUnavailableError
from scryon_dagster.adapters.db.request_slots import SharedRequestPacer
from scryon_dagster.adapters.errors import ProviderError
from scryon_dagster.adapters.lemonfox import LemonfoxClient
from scryon_dagster.adapters.llm import LlmClient
from scryon_dagster.adapters.object_store import ObjectNotFoundError, ObjectStore, ObjectStoreUnavailableError
from scryon_dagster.adapters.pyannote import PyannoteClient
from scryon_dagster.domain.audio_formats import SNIFF_HEAD_BYTES, sniff_audio_type
from scryon_dagster.domain.calls import TERMINAL_STATUSES, ArtifactType, CallStatus, Direction, ErrorCode, Stage
from scryon_dagster.domain.flags import EffectiveFlags
from scryon_dagster.domain.policy import TranscriptionInput, diarization_skip_reason, transcription_input
from scryon_dagster.domain.provider_outputs import Diarization, Identification, ProviderOutputError, RawTranscript
from scryon_dagster.domain.storage_keys import artifact_key
from scryon_dagster.pipeline.analysis_stage import reuse_stored_analysis, run_analysis
from scryon_dagster.pipeline.callbacks import RESUME_SELECTION, CallbackSigner
from scryon_dagster.pipeline.memory import MemoryHold, batch_memory_budget, call_footprint
from scryon_dagster.pipeline.outcomes import CallOutcome, MetadataValue, PipelineAsset, StageSelection
from scryon_dagster.pipeline.settle import Settlement, settle_failure
from scryon_dagster.pipeline.spend import record_diarization_cost, record_transcription_cost
from scryon_dagster.pipeline.stages import BatchBookkeeping, StageFailure, StageLog
from scryon_dagster.pipeline.transcript_stage import USER_VOICEPRINT_LABEL, build_normalized_transcript
from scryon_dagster.settings import Settings

logger = logging.getLogger(__name__)

JSON = "application/json"


@dataclass
class CallWork:
    """Everything one call's stages read and produce."""

    claim: ClaimedCall
    call: CallRecord
    user: UserRecord | None
    artifacts: dict[ArtifactType, ArtifactRecord]
    flags: EffectiveFlags
    log: StageLog
    voiceprint: str | None
    """The user's opaque voiceprint, when voice match is on and the user enrolled."""
    resumed_from_callback: bool = False
    """The transcript was delivered by a Lemonfox callback; this run continues from normalization."""
    awaiting_callback: bool = False
    """The transcription was submitted in callback mode: the call waits for its delivery."""
    audio: PreprocessedAudio | None = None
    raw_transcript: RawTranscript | None = None
    diarization: Diarization | None = None
    identification: Identification | None = None

    @property
    def call_id(self) -> UUID:
        return self.call.id

    @property
    def audio_seconds(self) -> float | None:
        """The decoded audio's duration once there is one, else the one measured at intake."""
        return (self.audio.duration_seconds if self.audio else None) or self.call.duration_seconds


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

    def close(self) -> None:
        self.lemonfox.close()
        self.llm.close()
        if self.pyannote is not None:
            self.pyannote.close()

    # --- batch ----------------------------------------------------------------------------------
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
            if not self.move(work, (CallStatus.TRANSCRIBING, CallStatus.ANALYZING), CallStatus.COMPLETED):
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
        with self.memory.hold(self._memory_footprint(work, with_audio=bool(audio_stages))) as held:
            if audio_stages:
                materialized.update(self._audio_stages(work, audio_stages, diarizers, held))
                work.audio = None  # the decoded audio goes before its share of the budget is given back
                held.shrink(self._memory_footprint(work, with_audio=False))
                if work.awaiting_callback:
                    return materialized
            normalized = None
            if (
                PipelineAsset.NORMALIZED_TRANSCRIPT in selection
                and PipelineAsset.NORMALIZED_TRANSCRIPT not in materialized
            ):
                self._load_raw_outputs(work)
                if work.resumed_from_callback:
                    materialized[PipelineAsset.RAW_TRANSCRIPT] = self._delivered_transcript_metadata(work)
                normalized, metadata = build_normalized_transcript(self, work)
                materialized[PipelineAsset.NORMALIZED_TRANSCRIPT] = metadata
            if PipelineAsset.ANALYSIS in selection:
                analysis_metadata = (
                    reuse_stored_analysis(self, work) if PipelineAsset.ANALYSIS in materialized else None
                ) or run_analysis(self, work, normalized)
                if analysis_metadata is not None:
                    materialized[PipelineAsset.ANALYSIS] = analysis_metadata
        return materialized

    def _audio_stages(
        self, work: CallWork, audio_stages: set[PipelineAsset], diarizers: ThreadPoolExecutor, held: MemoryHold
    ) -> dict[PipelineAsset, dict[str, MetadataValue]]:
        """Diarization ∥ transcription (or its callback submission) from the preprocessed recording."""
        materialized: dict[PipelineAsset, dict[str, MetadataValue]] = {}
        if (original := self._original_audio(work)) is None:
            return materialized
        may_diarize = PipelineAsset.DIARIZATION in audio_stages and self._diarization_skip_reason(work) is None
        work.audio = self._transcribable(
            work,
            self._preprocess(work, original, diarization_variant=may_diarize),
            original,
            transcribing=PipelineAsset.RAW_TRANSCRIPT in audio_stages,
        )
        del original  # only the provider inputs are needed from here
        held.shrink(
            call_footprint(
                work.audio_seconds,
                provider_inputs=(work.audio.transcription_audio, work.audio.diarization_audio),
            )
        )
        diarized: Future[dict[str, MetadataValue] | None] | None = None
        if PipelineAsset.DIARIZATION in audio_stages:
            diarized = diarizers.submit(self._diarize, work)
        if PipelineAsset.RAW_TRANSCRIPT in audio_stages:
            if self.callback_signer is not None:
                self._submit_for_callback(work, self.callback_signer)
            else:
                materialized[PipelineAsset.RAW_TRANSCRIPT] = self._transcribe(work)
        # The call is handed off only after this: its diarization is stored by then.
        if diarized is not None and (diarization_metadata := diarized.result()) is not None:
            materialized[PipelineAsset.DIARIZATION] = diarization_metadata
        return materialized

    def _transcribable(
        self, work: CallWork, prepared: PreprocessedAudio, original: bytes, *, transcribing: bool
    ) -> PreprocessedAudio:
        """Lemonfox's input as the policy's ``transcription_input`` decides: a long call's WAV over the upload
        limit is replaced by the recording as uploaded (diarization keeps the preprocessed variant); a call
        neither fits fails here, before any provider is paid."""
        choice = transcription_input(
            preprocessed_bytes=None if prepared.used_original else len(prepared.transcription_audio),
            original_bytes=len(original),
            max_upload_bytes=self.settings.lemonfox_max_upload_bytes,
        )
        if choice is None and transcribing:
            with work.log.stage(Stage.TRANSCRIBED, provider="lemonfox"):
                raise StageFailure(ErrorCode.AUDIO_TOO_LARGE_FOR_PROVIDER)
        if choice is not TranscriptionInput.ORIGINAL or prepared.used_original:
            return prepared
        work.log.fell_back(Stage.AUDIO_PREPROCESSED, provider="ffmpeg", cause=ErrorCode.AUDIO_TOO_LARGE_FOR_PROVIDER)
        return replace(
            prepared,
            transcription_audio=original,
            used_original=True,
            audio_type=sniff_audio_type(original[:SNIFF_HEAD_BYTES]),
            fallback_reason=ErrorCode.AUDIO_TOO_LARGE_FOR_PROVIDER,
        )

    def _memory_footprint(self, work: CallWork, *, with_audio: bool) -> int:
        temp_audio = work.artifacts.get(ArtifactType.TEMP_AUDIO)
        stored_audio_bytes = (temp_audio.byte_size if temp_audio else 0) if with_audio else None
        return call_footprint(work.call.duration_seconds, stored_audio_bytes=stored_audio_bytes)

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

    def _original_audio(self, work: CallWork) -> bytes | None:
        """The recording, or None when it has expired but a stored transcript lets the call be
        re-derived without it (no audio provider is paid again)."""
        temp_audio = work.artifacts.get(ArtifactType.TEMP_AUDIO)
        try:
            if temp_audio is not None:
                return self.store.get_bytes(temp_audio.storage_key)
        except ObjectNotFoundError:
            pass
        if ArtifactType.RAW_TRANSCRIPT_JSON not in work.artifacts:
            raise StageFailure(ErrorCode.AUDIO_MISSING)
        work.log.skipped(Stage.TRANSCRIBED, provider="lemonfox", reason="audio_expired_stored_transcript_used")
        return None

    # --- stages ---------------------------------------------------------------------------------
    def _preprocess(self, work: CallWork, original: bytes, *, diarization_variant: bool) -> PreprocessedAudio:
        if not self.settings.scryon_audio_preprocessing_enabled:
            work.log.skipped(Stage.AUDIO_PREPROCESSED, provider="ffmpeg", reason="disabled")
            return PreprocessedAudio.unprocessed(original)
        with work.log.stage(Stage.AUDIO_PREPROCESSED, provider="ffmpeg") as stage:
            prepared = self.audio.preprocess(original, diarization_variant=diarization_variant)
            if prepared.used_original:
                stage.soft_failure(prepared.fallback_reason or ErrorCode.AUDIO_PREPROCESSING_FAILED)
        return prepared

    def _transcribe(self, work: CallWork) -> dict[str, MetadataValue]:
        assert work.audio is not None
        filename, content_type = self._upload_name(work)
        with work.log.stage(Stage.TRANSCRIBED, provider="lemonfox") as stage:
            try:
                result = self.lemonfox.transcribe(
                    work.audio.transcription_audio,
                    filename=filename,
                    content_type=content_type,
                    audio_seconds=work.audio_seconds,
                )
            except ProviderError as exc:
                raise StageFailure(exc.code) from None
            record_transcription_cost(self, work)
            size = self.store_artifact(work, ArtifactType.RAW_TRANSCRIPT_JSON, result.raw_bytes)
        work.raw_transcript = result.transcript
        return {
            **self._transcript_metadata(result.transcript, size, audio_seconds=work.audio.duration_seconds),
            "delivery": "sync",
            "provider_ms": result.request_ms,
            "attempts": result.attempts,
            "preprocessed_audio": not work.audio.used_original,
            "duration_ms": stage.elapsed_ms,
        }

    def _submit_for_callback(self, work: CallWork, signer: CallbackSigner) -> None:
        """Callback mode: mark the call as awaiting (so that even an instant delivery is accepted),
        then submit; the delivery stores the transcript and the call resumes in a later run."""
        assert work.audio is not None
        filename, content_type = self._upload_name(work)
        ticket = signer.ticket(work.call_id)
        if not self.callbacks.await_callback(work.call_id, attempt=work.claim.attempt, expires_at=ticket.expires_at):
            raise StageFailure("superseded")
        with work.log.stage(Stage.LEMONFOX_SUBMITTED, provider="lemonfox"):
            try:
                self.lemonfox.submit_with_callback(
                    work.audio.transcription_audio,
                    filename=filename,
                    content_type=content_type,
                    callback_url=ticket.url,
                )
            except ProviderError as exc:
                raise StageFailure(exc.code) from None
        # The stage's terminal event is written when the delivery arrives (or the wait times out).
        work.log.skipped(Stage.TRANSCRIBED, provider="lemonfox", reason="awaiting_callback")
        work.awaiting_callback = True

    def _delivered_transcript_metadata(self, work: CallWork) -> dict[str, MetadataValue]:
        assert work.raw_transcript is not None
        record = work.artifacts.get(ArtifactType.RAW_TRANSCRIPT_JSON)
        size = record.byte_size if record is not None else None
        return {
            **self._transcript_metadata(work.raw_transcript, size, audio_seconds=work.call.duration_seconds),
            "delivery": "callback",
        }

    def _transcript_metadata(
        self, transcript: RawTranscript, size: int | None, *, audio_seconds: float | None
    ) -> dict[str, MetadataValue]:
        return {
            "provider": "lemonfox",
            "model": self.settings.lemonfox_model,
            "language": transcript.language,
            "audio_seconds": _round(transcript.duration or audio_seconds),
            "segments": len(transcript.segments),
            "size_bytes": size,
        }

    def _diarize(self, work: CallWork) -> dict[str, MetadataValue] | None:
        """Soft: a problem leaves the call to Lemonfox's own speaker labels — unless it is transient and
        the call has a retry left: then the call is retried for it (its transcript is kept and reused)
        rather than completed with worse speaker attribution."""
        assert work.audio is not None
        skip_reason = self._diarization_skip_reason(work)
        if skip_reason is not None:
            work.log.skipped(Stage.DIARIZED, provider="pyannote", reason=skip_reason)
            return None
        assert self.pyannote is not None
        assert work.audio.diarization_audio is not None, "the diarization variant is made whenever pyannote may run"
        with work.log.stage(Stage.DIARIZED, provider="pyannote") as stage:
            try:
                media_url = self.pyannote.upload_media(
                    work.audio.diarization_audio, f"scryon-{work.call_id}-{work.claim.attempt}"
                )
                raw_bytes = self._diarize_or_identify(work, media_url)
            except ProviderError as exc:
                stage.soft_failure(exc.code)
            else:
                record_diarization_cost(self, work)
                size = self.store_artifact(work, ArtifactType.DIARIZATION_JSON, raw_bytes)
        if stage.soft_code is not None:
            retry_left = self.settings.retry_policy.delay_before_retry(stage.soft_code, work.claim.retry_count)
            if self.callback_signer is None and retry_left is not None:
                raise StageFailure(stage.soft_code)
            work.log.fell_back(Stage.PYANNOTE_FAILED_FALLBACK, provider="pyannote", cause=stage.soft_code)
            return None
        assert work.diarization is not None
        return {
            "provider": "pyannote",
            "model": self.settings.pyannote_model,
            "speakers": work.diarization.speaker_count,
            "turns": len(work.diarization.diarization),
            "voice_identification": work.identification is not None,
            "size_bytes": size,
            "duration_ms": stage.elapsed_ms,
        }

    def _diarization_skip_reason(self, work: CallWork) -> str | None:
        """The policy's decision, on the decoded audio's duration once there is one."""
        return diarization_skip_reason(
            enabled=work.flags.diarization,
            configured=self.pyannote is not None,
            audio_seconds=work.audio_seconds,
            max_audio_minutes=self.settings.scryon_diarization_max_audio_minutes,
        )

    def _diarize_or_identify(self, work: CallWork, media_url: str) -> bytes:
        """One pyannote job: identify (diarization plus the user's voiceprint) when voice match is on
        and the user has a voiceprint, plain diarization otherwise — one job keeps speaker ids consistent."""
        assert self.pyannote is not None
        max_speakers = self._speaker_hint(work.call)
        if work.voiceprint is not None:
            with work.log.stage(Stage.VOICE_MATCH, provider="pyannote") as stage:
                try:
                    identified = self.pyannote.identify(
                        media_url,
                        [(USER_VOICEPRINT_LABEL, work.voiceprint)],
                        max_speakers=max_speakers,
                        audio_seconds=work.audio_seconds,
                    )
                except ProviderError as exc:
                    stage.soft_failure(exc.code)
                else:
                    work.identification = identified.identification
                    work.diarization = Diarization(diarization=identified.identification.diarization)
                    return identified.raw_bytes
        result = self.pyannote.diarize(
            media_url, max_speakers=max_speakers, exclusive=True, audio_seconds=work.audio_seconds
        )
        work.diarization = result.diarization
        return result.raw_bytes

    def _voiceprint(self, user_id: UUID) -> str | None:
        profile = self.db.get_voice_profile(user_id)
        return _voiceprint_of(profile.embedding_json) if profile is not None else None

    def _speaker_hint(self, call: CallRecord) -> int | None:
        two_party = call.direction in (Direction.INCOMING, Direction.OUTGOING)
        return 2 if two_party and self.settings.scryon_diarization_hint_two_speakers else None

    def _load_raw_outputs(self, work: CallWork) -> None:
        """Read the stored provider outputs this run did not produce (re-derivation without providers)."""
        if work.raw_transcript is None:
            raw = self.read_artifact(work, ArtifactType.RAW_TRANSCRIPT_JSON)
            if raw is None:
                raise StageFailure(ErrorCode.ARTIFACT_MISSING)
            try:
                work.raw_transcript = RawTranscript.parse(raw)
            except ProviderOutputError:
                raise StageFailure(ErrorCode.TRANSCRIPTION_INVALID_OUTPUT) from None
        if work.diarization is None and work.flags.diarization:
            stored = self.read_artifact(work, ArtifactType.DIARIZATION_JSON)
            if stored is not None:
                try:
                    work.diarization = Diarization.parse(stored)
                    work.identification = Identification.parse(stored) if b'"voiceprints"' in stored else None
                except ProviderOutputError:
                    work.log.skipped(Stage.DIARIZED, provider="pyannote", reason="stored_output_unreadable")

    # --- storage and status helpers -------------------------------------------------------------
    def _upload_name(self, work: CallWork) -> tuple[str, str]:
        assert work.audio is not None
        if not work.audio.used_original:
            return "audio.wav", "audio/wav"
        temp_audio = work.artifacts[ArtifactType.TEMP_AUDIO]
        return temp_audio.storage_key.rsplit("/", 1)[-1], temp_audio.content_type

    def read_artifact(self, work: CallWork, artifact_type: ArtifactType) -> bytes | None:
        record = work.artifacts.get(artifact_type)
        if record is None:
            return None
        try:
            return self.store.get_bytes(record.storage_key)
        except ObjectNotFoundError:
            return None

    def store_artifact(
        self,
        work: CallWork,
        artifact_type: ArtifactType,
        data: bytes,
        *,
        content_type: str = JSON,
        schema_version: int | None = None,
    ) -> int:
        """Overwrite the artifact in place (same key, same call_artifacts row)."""
        key = artifact_key(work.call.user_id, work.call_id, artifact_type)
        size = self.store.put_bytes(key, data, content_type)
        self.db.upsert_artifact(
            work.call_id,
            artifact_type,
            storage_key=key,
            content_type=content_type,
            byte_size=size,
            schema_version=schema_version,
        )
        return size

    def move(self, work: CallWork, expected: CallStatus | tuple[CallStatus, ...], target: CallStatus) -> bool:
        return self.db.transition(work.call_id, expected, target, attempt=work.claim.attempt)


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


def _round(value: float | None) -> float | None:
    return round(value, 2) if value is not None else None


def build_call_pipeline(settings: Settings, db: CallDatabase, store: ObjectStore) -> CallPipeline:
    # httpx logs every request URL at INFO, presigned upload URLs (with their signatures) included
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
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
