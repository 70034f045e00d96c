"""Intake: store a recording as TEMP_AUDIO and queue its call, all or nothing."""

from __future__ import annotations

from typing import BinaryIO
from uuid import uuid4

from scryon_dagster.adapters.db.records import CallRecord, NewCall
from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.object_store import ObjectStore, ObjectTooLargeError
from scryon_dagster.domain.audio_formats import SNIFF_HEAD_BYTES, sniff_audio_type
from scryon_dagster.domain.calls import ArtifactType
from scryon_dagster.domain.storage_keys import artifact_key


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
    user_reference: str,
    call: NewCall,
    max_bytes: int,
    user_display_name: str | None = None,
) -> CallRecord:
    """Store the audio, then insert the QUEUED call with its artifact row.

    Checks the database first so that an unreachable database writes nothing; if the insert fails
    after the upload, the uploaded object is removed again.
    """
    head = audio.read(SNIFF_HEAD_BYTES)
    audio.seek(0)
    audio_type = sniff_audio_type(head, filename)
    if audio_type is None:
        raise IntakeError("unsupported_audio_type", "unsupported audio type (expected wav, mp3, m4a, ogg, flac, ...)")
    db.check()
    user = db.find_user(user_reference) or db.ensure_user(user_reference, display_name=user_display_name)
    call_id = uuid4()
    key = artifact_key(user.id, call_id, ArtifactType.TEMP_AUDIO, audio_type.extension)
    try:
        size = store.put_stream(key, audio, audio_type.content_type, max_bytes=max_bytes)
    except ObjectTooLargeError:
        raise IntakeError("file_too_large", f"audio is larger than MAX_FILE_SIZE ({max_bytes} bytes)") from None
    try:
        return db.create_queued_call(
            call_id=call_id,
            user_id=user.id,
            call=call,
            temp_audio_key=key,
            temp_audio_content_type=audio_type.content_type,
            temp_audio_size=size,
        )
    except BaseException:
        store.delete(key)
        raise
