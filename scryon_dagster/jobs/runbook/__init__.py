"""The operators' runbook as jobs launched from the UI (Launchpad config with safe defaults).

Each job validates its config before changing anything, writes a short summary (counts and ids, never
personal data) as the step's output metadata, and is safe to run twice. The work itself lives in
``pipeline/maintenance``; these ops translate config, run it and report: ``housekeeping`` (sweeps,
pruning), ``reprocess``, ``restore`` (deletion, reconcile, backups).
"""

from scryon_dagster.jobs.runbook.housekeeping import (
    prune_history_job,
    reap_orphan_artifacts_job,
    sweep_stale_calls_job,
    sweep_temp_audio_job,
)
from scryon_dagster.jobs.runbook.reprocess import (
    backfill_normalization_job,
    reprocess_call_job,
    reprocess_user_calls_job,
)
from scryon_dagster.jobs.runbook.restore import backup_database_job, delete_call_job, reconcile_storage_job

RUNBOOK_JOBS = [
    sweep_stale_calls_job,
    sweep_temp_audio_job,
    reap_orphan_artifacts_job,
    prune_history_job,
    reprocess_call_job,
    reprocess_user_calls_job,
    backfill_normalization_job,
    delete_call_job,
    reconcile_storage_job,
    backup_database_job,
]

__all__ = [
    "RUNBOOK_JOBS",
    "backfill_normalization_job",
    "backup_database_job",
    "delete_call_job",
    "prune_history_job",
    "reap_orphan_artifacts_job",
    "reconcile_storage_job",
    "reprocess_call_job",
    "reprocess_user_calls_job",
    "sweep_stale_calls_job",
    "sweep_temp_audio_job",
]
