"""Intake: store a recording as TEMP_AUDIO and queue its call, all or nothing."""

from __future__ import annotations

import io
from dataclasses import replace
from typing import BinaryIO
from uuid import UUID, uuid4

from scryon_dagster.adapters.audio_probe import AudioProbe, AudioProbeUnavailableError, AudioUndecodableError
from scryon_dagster.adapters.db.records import CallRecord, NewCall, UserRecord
from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.object_store import ObjectStore, ObjectTooLargeError
from scryon_dagster.domain.audio_formats import SNIFF_HEAD_BYTES, sniff_audio_type
from scryon_dagster.domain.calls import ArtifactType
from scryon_dagster.domain.storage_keys import artifact_key
from scryon_dagster.settings import load_settings


class IntakeError(ValueError):
    """A recording that cannot be queued; ``code`` is short and stable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def enqueue_call(
    db: CallDatabase,
    store: ObjectStore,
    *,
    audio: BinaryIO,
    filename: str,
    user_reference: str | UUID,
    call: NewCall,
    max_bytes: int,
    user_display_name: str | None = None,
    audio_probe: AudioProbe | None = None,
) -> CallRecord:
    """Check the audio, store it, then insert the QUEUED call with its artifact row.

    Refuses, before writing anything, audio of an unknown type, over ``max_bytes``, with nothing
    decodable or shorter than the probe's minimum (``audio_probe`` defaults to the settings' one).
    Then checks the database, so that an unreachable database writes nothing; if the insert fails
    after the upload, the uploaded object is removed again. ``audio`` must be seekable.

    The call's ``duration_seconds`` is the measured decodable duration, preferred over the caller's:
    it is what the providers will hear and what costs are estimated on, whereas a recording cut short
    would otherwise carry the length its app meant to record.
    """
    head = audio.read(SNIFF_HEAD_BYTES)
    audio.seek(0)
    audio_type = sniff_audio_type(head, filename)
    if audio_type is None:
        raise IntakeError("unsupported_audio_type", "unsupported audio type (expected wav, mp3, m4a, ogg, flac, ...)")
    # Before decoding: an oversized file is refused without ffmpeg reading all of it.
    if audio.seek(0, io.SEEK_END) > max_bytes:
        raise _too_large(max_bytes)
    seconds = _decodable_seconds(audio_probe or AudioProbe.from_settings(load_settings()), audio)
    db.check()
    user = _user(db, user_reference, user_display_name)
    call_id = uuid4()
    key = artifact_key(user.id, call_id, ArtifactType.TEMP_AUDIO, audio_type.extension)
    try:
        size = store.put_stream(key, audio, audio_type.content_type, max_bytes=max_bytes)
    except ObjectTooLargeError:
        raise _too_large(max_bytes) from None
    try:
        return db.create_queued_call(
            call_id=call_id,
            user_id=user.id,
            call=replace(call, duration_seconds=seconds),
            temp_audio_key=key,
            temp_audio_content_type=audio_type.content_type,
            temp_audio_size=size,
        )
    except BaseException:
        store.delete(key)
        raise


def _user(db: CallDatabase, reference: str | UUID, display_name: str | None) -> UserRecord:
    """A UUID is the users row itself (the HTTP API's signed-in user); text is an external user id or
    a row id, and an unknown external id is created."""
    if isinstance(reference, UUID):
        user = db.get_user(reference)
        if user is None:
            raise IntakeError("unknown_user", "the user no longer exists")
        return user
    return db.find_user(reference) or db.ensure_user(reference, display_name=display_name)


def _too_large(max_bytes: int) -> IntakeError:
    return IntakeError("file_too_large", f"audio is larger than MAX_FILE_SIZE ({max_bytes} bytes)")


def _decodable_seconds(probe: AudioProbe, audio: BinaryIO) -> float:
    """The recording's decodable duration (to the millisecond), or IntakeError; ``audio`` left at its start."""
    try:
        seconds = round(probe.decodable_seconds(audio), 3)
    except AudioUndecodableError:
        raise IntakeError("audio_undecodable", "audio has no decodable sound (damaged, or not a recording)") from None
    except AudioProbeUnavailableError as exc:
        raise IntakeError("audio_check_unavailable", f"audio could not be checked: {exc}") from None
    if seconds < probe.min_seconds:
        raise IntakeError(
            "audio_too_short",
            f"audio too short: {seconds:.2f} s decodable, at least {probe.min_seconds:g} s needed"
            " (SCRYON_MIN_AUDIO_SECONDS)",
        )
    return seconds
