"""THE Definitions of the scryon_dagster code location."""

import warnings

import dagster as dg

from scryon_dagster.assets.calls import call_pipeline
from scryon_dagster.assets.provider_spend import provider_spend
from scryon_dagster.jobs.calls import (
    check_stored_artifacts_job,
    process_calls_job,
    process_listed_calls_job,
    rederive_transcripts_job,
)
from scryon_dagster.jobs.flags import set_feature_flag_job
from scryon_dagster.jobs.runbook import RUNBOOK_JOBS
from scryon_dagster.resources import build_resources
from scryon_dagster.schedules.provider_spend import provider_spend_job, provider_spend_schedule
from scryon_dagster.schedules.runbook import RUNBOOK_SCHEDULES
from scryon_dagster.sensors.queued_calls import crashed_batch_sensor, queued_calls_sensor

# Dagster re-creates our sensors when it binds their jobs and passes its own `owners` along: the beta
# warning that raises is about Dagster's call, not ours, and printed on every start of every process.
warnings.filterwarnings(
    "ignore", message="Parameter `owners` of initializer `SensorDefinition", category=dg.BetaWarning
)

defs = dg.Definitions(
    assets=[call_pipeline, provider_spend],
    jobs=[
        process_calls_job,
        process_listed_calls_job,
        rederive_transcripts_job,
        check_stored_artifacts_job,
        set_feature_flag_job,
        *RUNBOOK_JOBS,
        provider_spend_job,
    ],
    schedules=[*RUNBOOK_SCHEDULES, provider_spend_schedule],
    sensors=[queued_calls_sensor, crashed_batch_sensor],
    resources=build_resources(),
    executor=dg.in_process_executor,
)
