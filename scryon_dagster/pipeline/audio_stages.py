"""The stages that send a call's recording to the providers: preprocessing (soft), diarization (soft,
with voice match) in parallel with transcription (hard) or its callback submission; and reading their
stored outputs back when a run re-derives without them.

Functions over ``AudioPorts`` (the call's ports and the audio providers) and the call's ``CallWork``,
whose provider outputs they fill in.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path

from scryon_dagster.adapters.audio import AudioPreprocessor, PreprocessedAudio, call_audio_directory, read_head
from scryon_dagster.adapters.db.callback_queries import CallbackQueries
from scryon_dagster.adapters.db.records import CallRecord
from scryon_dagster.adapters.errors import ProviderError
from scryon_dagster.adapters.lemonfox import LemonfoxClient
from scryon_dagster.adapters.object_store import ObjectNotFoundError
from scryon_dagster.adapters.pyannote import PyannoteClient
from scryon_dagster.domain.audio_formats import sniff_audio_type
from scryon_dagster.domain.calls import ArtifactType, Direction, ErrorCode, Stage
from scryon_dagster.domain.policy import TranscriptionInput, diarization_skip_reason, transcription_input
from scryon_dagster.domain.provider_outputs import Diarization, Identification, ProviderOutputError, RawTranscript
from scryon_dagster.pipeline.call_context import CallPorts, CallWork
from scryon_dagster.pipeline.callbacks import CallbackSigner
from scryon_dagster.pipeline.outcomes import MetadataValue, PipelineAsset
from scryon_dagster.pipeline.spend import record_diarization_cost, record_transcription_cost
from scryon_dagster.pipeline.stages import StageFailure
from scryon_dagster.pipeline.transcript_stage import USER_VOICEPRINT_LABEL
from scryon_dagster.settings import Settings


@dataclass(frozen=True)
class AudioPorts:
    """The call's ports and the providers its recording goes to; ``callback_signer`` switches
    transcription to callback mode."""

    call: CallPorts
    preprocessor: AudioPreprocessor
    lemonfox: LemonfoxClient
    pyannote: PyannoteClient | None
    callback_signer: CallbackSigner | None


def run_audio_stages(
    ports: AudioPorts, work: CallWork, audio_stages: set[PipelineAsset], diarizers: ThreadPoolExecutor
) -> dict[PipelineAsset, dict[str, MetadataValue]]:
    """Diarization ∥ transcription (or its callback submission) from the preprocessed recording. The
    recording and its variants are files in the call's audio directory, removed when this returns or raises."""
    with call_audio_directory() as directory:
        return _run_audio_stages(ports, work, audio_stages, diarizers, directory)


def _run_audio_stages(
    ports: AudioPorts,
    work: CallWork,
    audio_stages: set[PipelineAsset],
    diarizers: ThreadPoolExecutor,
    directory: Path,
) -> dict[PipelineAsset, dict[str, MetadataValue]]:
    materialized: dict[PipelineAsset, dict[str, MetadataValue]] = {}
    if (original := _original_audio(ports, work, directory)) is None:
        return materialized
    may_diarize = PipelineAsset.DIARIZATION in audio_stages and _diarization_skip_reason(ports, work) is None
    work.audio = _transcribable(
        ports,
        work,
        _preprocess(ports, work, original, directory, diarization_variant=may_diarize),
        original,
        transcribing=PipelineAsset.RAW_TRANSCRIPT in audio_stages,
    )
    diarized: Future[dict[str, MetadataValue] | None] | None = None
    if PipelineAsset.DIARIZATION in audio_stages:
        diarized = diarizers.submit(_diarize, ports, work)
    try:
        if PipelineAsset.RAW_TRANSCRIPT in audio_stages:
            if ports.callback_signer is not None:
                _submit_for_callback(ports, work, ports.callback_signer)
            else:
                materialized[PipelineAsset.RAW_TRANSCRIPT] = _transcribe(ports, work)
    finally:
        if diarized is not None:
            wait([diarized])  # its upload reads the call's audio directory, removed after this
    # The call is handed off only after this: its diarization is stored by then.
    if diarized is not None and (diarization_metadata := diarized.result()) is not None:
        materialized[PipelineAsset.DIARIZATION] = diarization_metadata
    return materialized


def _transcribable(
    ports: AudioPorts, work: CallWork, prepared: PreprocessedAudio, original: Path, *, transcribing: bool
) -> PreprocessedAudio:
    """Lemonfox's input as the policy's ``transcription_input`` decides: a long call's WAV over the upload
    limit is replaced by the recording as uploaded (diarization keeps the preprocessed variant); a call
    neither fits fails here, before any provider is paid."""
    choice = transcription_input(
        preprocessed_bytes=None if prepared.used_original else prepared.transcription_audio.stat().st_size,
        original_bytes=original.stat().st_size,
        max_upload_bytes=ports.call.settings.lemonfox_max_upload_bytes,
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
        audio_type=sniff_audio_type(read_head(original)),
        fallback_reason=ErrorCode.AUDIO_TOO_LARGE_FOR_PROVIDER,
    )


def _original_audio(ports: AudioPorts, work: CallWork, directory: Path) -> Path | None:
    """The recording, streamed into ``directory``; or None when it has expired but a stored transcript lets
    the call be re-derived without it (no audio provider is paid again)."""
    temp_audio = work.artifacts.get(ArtifactType.TEMP_AUDIO)
    try:
        if temp_audio is not None:
            original = directory / "original"
            ports.call.store.download_to(temp_audio.storage_key, original)
            return original
    except ObjectNotFoundError:
        pass
    if ArtifactType.RAW_TRANSCRIPT_JSON not in work.artifacts:
        raise StageFailure(ErrorCode.AUDIO_MISSING)
    work.log.skipped(Stage.TRANSCRIBED, provider="lemonfox", reason="audio_expired_stored_transcript_used")
    return None


def _preprocess(
    ports: AudioPorts, work: CallWork, original: Path, directory: Path, *, diarization_variant: bool
) -> PreprocessedAudio:
    if not ports.call.settings.scryon_audio_preprocessing_enabled:
        work.log.skipped(Stage.AUDIO_PREPROCESSED, provider="ffmpeg", reason="disabled")
        return PreprocessedAudio.unprocessed(original)
    with work.log.stage(Stage.AUDIO_PREPROCESSED, provider="ffmpeg") as stage:
        prepared = ports.preprocessor.preprocess(original, directory, diarization_variant=diarization_variant)
        if prepared.used_original:
            stage.soft_failure(prepared.fallback_reason or ErrorCode.AUDIO_PREPROCESSING_FAILED)
    return prepared


def _transcribe(ports: AudioPorts, work: CallWork) -> dict[str, MetadataValue]:
    assert work.audio is not None
    filename, content_type = _upload_name(ports, work)
    with work.log.stage(Stage.TRANSCRIBED, provider="lemonfox") as stage:
        try:
            result = ports.lemonfox.transcribe(
                work.audio.transcription_audio,
                filename=filename,
                content_type=content_type,
                audio_seconds=work.audio_seconds,
            )
        except ProviderError as exc:
            raise StageFailure(exc.code) from None
        record_transcription_cost(ports.call, work)
        size = ports.call.store_artifact(work, ArtifactType.RAW_TRANSCRIPT_JSON, result.raw_bytes)
    work.raw_transcript = result.transcript
    return {
        **_transcript_metadata(ports.call.settings, result.transcript, size, audio_seconds=work.audio.duration_seconds),
        "delivery": "sync",
        "provider_ms": result.request_ms,
        "attempts": result.attempts,
        "preprocessed_audio": not work.audio.used_original,
        "duration_ms": stage.elapsed_ms,
    }


def _submit_for_callback(ports: AudioPorts, work: CallWork, signer: CallbackSigner) -> None:
    """Callback mode: mark the call as awaiting (so that even an instant delivery is accepted),
    then submit; the delivery stores the transcript and the call resumes in a later run."""
    assert work.audio is not None
    filename, content_type = _upload_name(ports, work)
    ticket = signer.ticket(work.call_id)
    if not CallbackQueries(ports.call.db).await_callback(
        work.call_id, attempt=work.claim.attempt, expires_at=ticket.expires_at
    ):
        raise StageFailure("superseded")
    with work.log.stage(Stage.LEMONFOX_SUBMITTED, provider="lemonfox"):
        try:
            ports.lemonfox.submit_with_callback(
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


def delivered_transcript_metadata(settings: Settings, work: CallWork) -> dict[str, MetadataValue]:
    assert work.raw_transcript is not None
    record = work.artifacts.get(ArtifactType.RAW_TRANSCRIPT_JSON)
    size = record.byte_size if record is not None else None
    return {
        **_transcript_metadata(settings, work.raw_transcript, size, audio_seconds=work.call.duration_seconds),
        "delivery": "callback",
    }


def _transcript_metadata(
    settings: Settings, transcript: RawTranscript, size: int | None, *, audio_seconds: float | None
) -> dict[str, MetadataValue]:
    return {
        "provider": "lemonfox",
        "model": settings.lemonfox_model,
        "language": transcript.language,
        "audio_seconds": _round(transcript.duration or audio_seconds),
        "segments": len(transcript.segments),
        "size_bytes": size,
    }


def _diarize(ports: AudioPorts, work: CallWork) -> dict[str, MetadataValue] | None:
    """Soft: a problem leaves the call to Lemonfox's own speaker labels — unless it is transient and
    the call has a retry left: then the call is retried for it (its transcript is kept and reused)
    rather than completed with worse speaker attribution."""
    assert work.audio is not None
    skip_reason = _diarization_skip_reason(ports, work)
    if skip_reason is not None:
        work.log.skipped(Stage.DIARIZED, provider="pyannote", reason=skip_reason)
        return None
    assert ports.pyannote is not None
    assert work.audio.diarization_audio is not None, "the diarization variant is made whenever pyannote may run"
    with work.log.stage(Stage.DIARIZED, provider="pyannote") as stage:
        try:
            media_url = ports.pyannote.upload_media(
                work.audio.diarization_audio, f"scryon-{work.call_id}-{work.claim.attempt}"
            )
            raw_bytes = _diarize_or_identify(ports, work, media_url)
        except ProviderError as exc:
            stage.soft_failure(exc.code)
        else:
            record_diarization_cost(ports.call, work)
            size = ports.call.store_artifact(work, ArtifactType.DIARIZATION_JSON, raw_bytes)
    if stage.soft_code is not None:
        retry_left = ports.call.settings.retry_policy.delay_before_retry(stage.soft_code, work.claim.retry_count)
        if ports.callback_signer is None and retry_left is not None:
            raise StageFailure(stage.soft_code)
        work.log.fell_back(Stage.PYANNOTE_FAILED_FALLBACK, provider="pyannote", cause=stage.soft_code)
        return None
    assert work.diarization is not None
    return {
        "provider": "pyannote",
        "model": ports.call.settings.pyannote_model,
        "speakers": work.diarization.speaker_count,
        "turns": len(work.diarization.diarization),
        "voice_identification": work.identification is not None,
        "size_bytes": size,
        "duration_ms": stage.elapsed_ms,
    }


def _diarization_skip_reason(ports: AudioPorts, work: CallWork) -> str | None:
    """The policy's decision, on the decoded audio's duration once there is one."""
    return diarization_skip_reason(
        enabled=work.flags.diarization,
        configured=ports.pyannote is not None,
        audio_seconds=work.audio_seconds,
        max_audio_minutes=ports.call.settings.scryon_diarization_max_audio_minutes,
    )


def _diarize_or_identify(ports: AudioPorts, work: CallWork, media_url: str) -> bytes:
    """One pyannote job: identify (diarization plus the user's voiceprint) when voice match is on
    and the user has a voiceprint, plain diarization otherwise — one job keeps speaker ids consistent."""
    assert ports.pyannote is not None
    max_speakers = _speaker_hint(ports, work.call)
    if work.voiceprint is not None:
        with work.log.stage(Stage.VOICE_MATCH, provider="pyannote") as stage:
            try:
                identified = ports.pyannote.identify(
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
    result = ports.pyannote.diarize(
        media_url, max_speakers=max_speakers, exclusive=True, audio_seconds=work.audio_seconds
    )
    work.diarization = result.diarization
    return result.raw_bytes


def _speaker_hint(ports: AudioPorts, call: CallRecord) -> int | None:
    two_party = call.direction in (Direction.INCOMING, Direction.OUTGOING)
    return 2 if two_party and ports.call.settings.scryon_diarization_hint_two_speakers else None


def load_stored_provider_outputs(ports: CallPorts, work: CallWork) -> None:
    """Read the stored provider outputs this run did not produce (re-derivation without providers)."""
    if work.raw_transcript is None:
        raw = ports.read_artifact(work, ArtifactType.RAW_TRANSCRIPT_JSON)
        if raw is None:
            raise StageFailure(ErrorCode.ARTIFACT_MISSING)
        try:
            work.raw_transcript = RawTranscript.parse(raw)
        except ProviderOutputError:
            raise StageFailure(ErrorCode.TRANSCRIPTION_INVALID_OUTPUT) from None
    if work.diarization is None and work.flags.diarization:
        stored = ports.read_artifact(work, ArtifactType.DIARIZATION_JSON)
        if stored is not None:
            try:
                work.diarization = Diarization.parse(stored)
                work.identification = Identification.parse(stored) if b'"voiceprints"' in stored else None
            except ProviderOutputError:
                work.log.skipped(Stage.DIARIZED, provider="pyannote", reason="stored_output_unreadable")


def _upload_name(ports: AudioPorts, work: CallWork) -> tuple[str, str]:
    assert work.audio is not None
    if not work.audio.used_original:
        return "audio.wav", "audio/wav"
    temp_audio = work.artifacts[ArtifactType.TEMP_AUDIO]
    return temp_audio.storage_key.rsplit("/", 1)[-1], temp_audio.content_type


def _round(value: float | None) -> float | None:
    return round(value, 2) if value is not None else None
