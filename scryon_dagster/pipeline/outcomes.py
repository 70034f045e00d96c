"""What one batch of calls reports back: per call, success or a stable error code, and per asset
the privacy-safe metadata (ids, counts, durations, sizes, versions) the orchestrator may show."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from uuid import UUID

from scryon_dagster.domain.calls import ArtifactType, Stage

MetadataValue = str | int | float | bool | None


class PipelineAsset(StrEnum):
    """The per-call assets, in dependency order."""

    DIARIZATION = "diarization"
    RAW_TRANSCRIPT = "raw_transcript"
    NORMALIZED_TRANSCRIPT = "normalized_transcript"
    ANALYSIS = "analysis"

    @property
    def artifact_type(self) -> ArtifactType:
        """The stored artifact that holds this asset's output for a call."""
        return _ARTIFACT_TYPES[self]

    @property
    def upstream(self) -> frozenset[PipelineAsset]:
        """The assets this one is computed from."""
        return _UPSTREAM[self]

    @property
    def stages(self) -> frozenset[Stage]:
        """The stages whose skip or failure leaves this asset unproduced."""
        return _STAGES[self]


_ARTIFACT_TYPES = {
    PipelineAsset.DIARIZATION: ArtifactType.DIARIZATION_JSON,
    PipelineAsset.RAW_TRANSCRIPT: ArtifactType.RAW_TRANSCRIPT_JSON,
    PipelineAsset.NORMALIZED_TRANSCRIPT: ArtifactType.NORMALIZED_TRANSCRIPT_JSON,
    PipelineAsset.ANALYSIS: ArtifactType.ANALYSIS_JSON,
}
_UPSTREAM = {
    PipelineAsset.DIARIZATION: frozenset(),
    PipelineAsset.RAW_TRANSCRIPT: frozenset(),
    PipelineAsset.NORMALIZED_TRANSCRIPT: frozenset({PipelineAsset.DIARIZATION, PipelineAsset.RAW_TRANSCRIPT}),
    PipelineAsset.ANALYSIS: frozenset({PipelineAsset.NORMALIZED_TRANSCRIPT}),
}
_STAGES = {
    PipelineAsset.DIARIZATION: frozenset({Stage.DIARIZED}),
    PipelineAsset.RAW_TRANSCRIPT: frozenset({Stage.TRANSCRIBED}),
    PipelineAsset.NORMALIZED_TRANSCRIPT: frozenset(
        {Stage.TRANSCRIPT_ALIGNED, Stage.TRANSCRIPT_NORMALIZED, Stage.SPEAKER_REFINED}
    ),
    PipelineAsset.ANALYSIS: frozenset({Stage.ANALYZED}),
}


class NotMaterialized(StrEnum):
    """Reason codes for a planned asset a call did not produce, besides the stages' own skip reasons
    (``disabled``, ``audio_too_long``, ...) and failure codes (``lemonfox_rate_limited``, ...)."""

    UPSTREAM_FAILED = "upstream_failed"
    """An asset it is computed from failed for this call."""
    CALL_FAILED = "call_failed"
    """Produced, or not reached, but the call failed later: a failed call records no output."""
    RETRY_PENDING = "retry_pending"
    """The call went back to the queue for an automatic retry; the retry's run materializes it."""
    NOT_RUN = "not_run"
    """The call finished without running this stage and no stage said why (e.g. its audio expired)."""


@dataclass(frozen=True)
class StageSelection:
    """Which assets a run (re)builds; unselected ones are read from storage when needed."""

    assets: frozenset[PipelineAsset]

    @classmethod
    def of(cls, names: Iterable[str]) -> StageSelection:
        return cls(frozenset(PipelineAsset(name) for name in names))

    @classmethod
    def everything(cls) -> StageSelection:
        return cls(frozenset(PipelineAsset))

    @classmethod
    def for_new_calls(cls, *, diarization: bool) -> StageSelection:
        """Every stage, diarization only when it can happen: a stage that is not planned is never shown
        as failed (when a neighbour fails the batch) or in progress."""
        return cls(frozenset(a for a in PipelineAsset if diarization or a is not PipelineAsset.DIARIZATION))

    @property
    def names(self) -> list[str]:
        return sorted(asset.value for asset in self.assets)

    def within(self, cycle_assets: Iterable[str] | None) -> StageSelection:
        """What of this selection a call's processing cycle rebuilds (None: everything): a retried
        re-derivation that the pickup plans in full still rebuilds only what the cycle was started for."""
        if cycle_assets is None:
            return self
        return StageSelection(self.assets & {PipelineAsset(name) for name in cycle_assets})

    @property
    def needs_audio(self) -> bool:
        """Only diarization and transcription call a provider with the audio."""
        return bool(self.assets & {PipelineAsset.DIARIZATION, PipelineAsset.RAW_TRANSCRIPT})

    def stored_inputs(self, *, analysis_enabled: bool = True) -> frozenset[ArtifactType]:
        """The stored artifacts the selected stages read: the recording for the audio stages, the raw
        transcript to re-normalize without transcribing, the normalized one to analyse without
        normalizing (when analysis is switched on)."""
        needed: set[ArtifactType] = set()
        if self.needs_audio:
            needed.add(ArtifactType.TEMP_AUDIO)
        normalizes = PipelineAsset.NORMALIZED_TRANSCRIPT in self.assets
        if normalizes and PipelineAsset.RAW_TRANSCRIPT not in self.assets:
            needed.add(ArtifactType.RAW_TRANSCRIPT_JSON)
        if analysis_enabled and PipelineAsset.ANALYSIS in self.assets and not normalizes:
            needed.add(ArtifactType.NORMALIZED_TRANSCRIPT_JSON)
        return frozenset(needed)

    def __contains__(self, asset: object) -> bool:
        return asset in self.assets


@dataclass(frozen=True)
class CallOutcome:
    """Exactly one of: materialized (succeeded), ``error_code`` (failed), ``retry_of`` (a transient
    failure, back in the queue for its retry) or ``left_alone`` (not this run's to finish)."""

    call_id: UUID
    error_code: str | None = None
    materialized: Mapping[PipelineAsset, Mapping[str, MetadataValue]] = field(default_factory=dict)
    retry_of: str | None = None
    left_alone: str | None = None
    stage_reasons: Mapping[Stage, str] = field(default_factory=dict)
    """The last skip reason or failure code of each stage that was skipped or failed (soft or hard)."""

    @property
    def succeeded(self) -> bool:
        return self.error_code is None and self.retry_of is None and self.left_alone is None

    @property
    def failed(self) -> bool:
        return self.error_code is not None

    def not_materialized(self, planned: Iterable[PipelineAsset]) -> dict[PipelineAsset, str]:
        """Why each planned asset has no materialization for this call, as a reason code: the stage's
        own skip reason or failure code, else one of ``NotMaterialized``, else the run's reason for
        leaving the call alone."""
        reasons: dict[PipelineAsset, str] = {}
        failed: set[PipelineAsset] = set()
        for asset in PipelineAsset:  # dependency order, so that a failure reaches what derives from it
            if asset not in planned or (self.succeeded and asset in self.materialized):
                continue
            own = next((self.stage_reasons[stage] for stage in asset.stages if stage in self.stage_reasons), None)
            failure_code = self.error_code or self.retry_of
            if own is not None and own == failure_code:
                failed.add(asset)
            if own is not None:
                reasons[asset] = own
            elif asset.upstream & failed:
                failed.add(asset)
                reasons[asset] = NotMaterialized.UPSTREAM_FAILED.value
            elif self.error_code is not None:
                reasons[asset] = NotMaterialized.CALL_FAILED.value
            elif self.retry_of is not None:
                reasons[asset] = NotMaterialized.RETRY_PENDING.value
            else:
                reasons[asset] = self.left_alone or NotMaterialized.NOT_RUN.value
        return reasons
