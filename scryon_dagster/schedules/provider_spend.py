"""The daily spend view, refreshed each night once the UTC day is over (and materializable by hand)."""

import dagster as dg

from scryon_dagster.assets.provider_spend import provider_spend

provider_spend_job = dg.define_asset_job(
    name="provider_spend_job",
    selection=dg.AssetSelection.assets(provider_spend),
    description="Materialize provider_spend: the last 30 UTC days of the cost ledger, per day and provider.",
)

provider_spend_schedule = dg.ScheduleDefinition(
    name="provider_spend_schedule",
    job=provider_spend_job,
    cron_schedule="12 0 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
