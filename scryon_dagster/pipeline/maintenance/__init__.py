"""The runbook's maintenance work without Dagster, one module per concern: ``sweeps`` (stale calls,
temporary audio, orphan objects), ``history`` (pruning), ``reprocess`` (planning and its cost),
``deletion`` and ``reconcile`` (after a restore).

Every function validates its arguments before changing anything (a bad one raises MaintenanceError),
is safe to run twice (a second run finds nothing left to do) and reports ids and counts only: the
reports end up in Dagster metadata, which anyone with UI access can read.
"""

from scryon_dagster.domain.analysis.cost import ANALYSIS_COMPLETION_TOKENS_ESTIMATE
from scryon_dagster.pipeline.maintenance._checks import MaintenanceError
from scryon_dagster.pipeline.maintenance.deletion import DeleteReport, delete_calls
from scryon_dagster.pipeline.maintenance.history import (
    finished_calls_before,
    prune_events,
    prune_idempotency_keys,
)
from scryon_dagster.pipeline.maintenance.reconcile import ReconcileReport, forget_missing_artifacts, reconcile_storage
from scryon_dagster.pipeline.maintenance.reprocess import (
    ReprocessPlan,
    calls_needing_renormalization,
    plan_call_reprocess,
    plan_user_reprocess,
    present_inputs,
)
from scryon_dagster.pipeline.maintenance.sweeps import (
    OrphanReport,
    SweepReport,
    TempAudioSweepReport,
    reap_orphan_artifacts,
    sweep_stale_calls,
    sweep_temp_audio,
)

__all__ = [
    "ANALYSIS_COMPLETION_TOKENS_ESTIMATE",
    "DeleteReport",
    "MaintenanceError",
    "OrphanReport",
    "ReconcileReport",
    "ReprocessPlan",
    "SweepReport",
    "TempAudioSweepReport",
    "calls_needing_renormalization",
    "delete_calls",
    "finished_calls_before",
    "forget_missing_artifacts",
    "plan_call_reprocess",
    "plan_user_reprocess",
    "present_inputs",
    "prune_events",
    "prune_idempotency_keys",
    "reap_orphan_artifacts",
    "reconcile_storage",
    "sweep_stale_calls",
    "sweep_temp_audio",
]
