"""Do the stored artifacts still read as their documented shapes? Used by the asset checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.object_store import ObjectNotFoundError, ObjectStore
from scryon_dagster.domain.analysis import parse_analysis
from scryon_dagster.domain.calls import ArtifactType
from scryon_dagster.domain.provider_outputs import Diarization, RawTranscript
from scryon_dagster.domain.transcript.models import NormalizedTranscript

PARSERS: dict[ArtifactType, Callable[[bytes], object]] = {
    ArtifactType.DIARIZATION_JSON: Diarization.parse,
    ArtifactType.RAW_TRANSCRIPT_JSON: RawTranscript.parse,
    ArtifactType.NORMALIZED_TRANSCRIPT_JSON: NormalizedTranscript.parse,
    ArtifactType.ANALYSIS_JSON: parse_analysis,
}


@dataclass(frozen=True)
class ArtifactCheckReport:
    checked: int
    unreadable: list[UUID]
    missing: list[UUID]

    @property
    def passed(self) -> bool:
        return not self.unreadable and not self.missing


def check_recent_artifacts(
    db: CallDatabase, store: ObjectStore, artifact_type: ArtifactType, *, limit: int
) -> ArtifactCheckReport:
    """Parse the most recently written artifacts of one type with the readers clients rely on."""
    parse = PARSERS[artifact_type]
    unreadable: list[UUID] = []
    missing: list[UUID] = []
    records = db.recent_artifacts(artifact_type, limit)
    for record in records:
        try:
            parse(store.get_bytes(record.storage_key))
        except ObjectNotFoundError:
            missing.append(record.call_id)
        except ValueError:  # every reader raises a ValueError subclass that never quotes content
            unreadable.append(record.call_id)
    return ArtifactCheckReport(checked=len(records), unreadable=unreadable, missing=missing)
