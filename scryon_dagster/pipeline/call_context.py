"""What one call's stages work with, so that each stage is a plain function of its inputs:

``CallWork`` is the call, what is known of it and what its stages have produced so far; ``CallPorts``
is how a stage reaches the world (the call's artifacts in storage, its status in the call database,
the LLM, the settings). The runner builds both; no stage reaches back into the runner.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from scryon_dagster.adapters.audio import PreprocessedAudio
from scryon_dagster.adapters.db.records import ArtifactRecord, CallRecord, ClaimedCall, UserRecord
from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.llm import LlmClient
from scryon_dagster.adapters.object_store import ObjectNotFoundError, ObjectStore
from scryon_dagster.domain.calls import ArtifactType, CallStatus
from scryon_dagster.domain.flags import EffectiveFlags
from scryon_dagster.domain.provider_outputs import Diarization, Identification, RawTranscript
from scryon_dagster.domain.storage_keys import artifact_key
from scryon_dagster.pipeline.stages import StageLog
from scryon_dagster.settings import Settings

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


@dataclass(frozen=True)
class CallPorts:
    """The stages' way out: artifacts, status moves, the LLM and settings (one per run)."""

    settings: Settings
    db: CallDatabase
    store: ObjectStore
    llm: LlmClient

    def read_artifact(self, work: CallWork, artifact_type: ArtifactType) -> bytes | None:
        """The call's stored artifact, or None when it has no row or its object is gone."""
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
        """Overwrite the artifact in place (same key, same call_artifacts row); its size."""
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
        """The call's guarded status move for this attempt; False when it has moved on."""
        return self.db.transition(work.call_id, expected, target, attempt=work.claim.attempt)
