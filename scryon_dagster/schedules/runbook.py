"""What the reference ran on timers, as schedules (running by default; each job also launches by hand)."""

import dagster as dg

from scryon_dagster.jobs.calls import check_stored_artifacts_job
from scryon_dagster.jobs.runbook import (
    backup_database_job,
    prune_history_job,
    reap_orphan_artifacts_job,
    sweep_stale_calls_job,
    sweep_temp_audio_job,
)
from scryon_dagster.settings import load_settings


def every_n_minutes_cron(interval_ms: int) -> str:
    """A cron for SCRYON_SWEEP_INTERVAL_MS (cron has minute resolution: at least every minute)."""
    minutes = max(1, round(interval_ms / 60_000))
    if minutes >= 60:
        hours = min(24, max(1, round(minutes / 60)))
        return "0 * * * *" if hours == 1 else f"0 */{hours} * * *"
    return "* * * * *" if minutes == 1 else f"*/{minutes} * * * *"


sweep_stale_calls_schedule = dg.ScheduleDefinition(
    name="sweep_stale_calls_schedule",
    job=sweep_stale_calls_job,
    cron_schedule=every_n_minutes_cron(load_settings().scryon_sweep_interval_ms),
    run_config={"ops": {"sweep_stale_calls_op": {"config": {"scheduled": True}}}},
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
sweep_temp_audio_schedule = dg.ScheduleDefinition(
    name="sweep_temp_audio_schedule",
    job=sweep_temp_audio_job,
    cron_schedule="17 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
reap_orphan_artifacts_schedule = dg.ScheduleDefinition(
    name="reap_orphan_artifacts_schedule",
    job=reap_orphan_artifacts_job,
    cron_schedule="37 3 * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
prune_history_schedule = dg.ScheduleDefinition(
    name="prune_history_schedule",
    job=prune_history_job,
    cron_schedule="47 4 * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
check_stored_artifacts_schedule = dg.ScheduleDefinition(
    name="check_stored_artifacts_schedule",
    job=check_stored_artifacts_job,
    cron_schedule="7 5 * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)

# Nightly, in the quiet hours before the daily housekeeping; each dump is one consistent snapshot.
backup_database_schedule = dg.ScheduleDefinition(
    name="backup_database_schedule",
    job=backup_database_job,
    cron_schedule="7 2 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)

RUNBOOK_SCHEDULES = [
    sweep_stale_calls_schedule,
    sweep_temp_audio_schedule,
    reap_orphan_artifacts_schedule,
    prune_history_schedule,
    check_stored_artifacts_schedule,
    backup_database_schedule,
]
