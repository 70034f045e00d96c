"""``provider_spend``: the daily provider spend an operator reads in Dagster, summed from the per-call cost
ledger. Its metadata holds numbers only (per UTC day and provider), never a call's names or text."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from scryon_dagster.adapters.db.cost_queries import CostQueries
from scryon_dagster.domain.provider_spend import DailySpend, total_cost_usd
from scryon_dagster.resources import CallDatabaseResource

SPEND_TABLE_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("day", "string", description="UTC day"),
        dg.TableColumn("provider", "string"),
        dg.TableColumn("calls", "int", description="calls with paid requests that day"),
        dg.TableColumn("requests", "int", description="paid requests (retries and reprocesses included)"),
        dg.TableColumn("audio_hours", "float", description="billed audio hours (pyannote: its minimum per job)"),
        dg.TableColumn("estimated_usd", "float", description="at the configured prices"),
    ]
)


class ProviderSpendConfig(dg.Config):
    days: int = 30
    """The last this many UTC days, today included."""


@dg.asset(
    group_name="operations",
    kinds={"postgres"},
    description="Daily provider spend (calls, billed audio hours, estimated USD per day and provider) from "
    "the per-call cost ledger call_provider_costs.",
)
def provider_spend(config: ProviderSpendConfig, database: CallDatabaseResource) -> dg.MaterializeResult[None]:
    if config.days < 1:
        raise dg.Failure(description="days must be at least 1; nothing was read")
    last_day = datetime.now(UTC).date()
    spend = CostQueries(database.db).daily_spend(last_day - timedelta(days=config.days - 1), last_day)
    return dg.MaterializeResult(
        metadata={
            "daily_spend": dg.MetadataValue.table(_spend_rows(spend), schema=SPEND_TABLE_SCHEMA),
            "days": config.days,
            "total_estimated_usd": dg.MetadataValue.float(round(total_cost_usd(spend), 6)),
        }
    )


def _spend_rows(spend: list[DailySpend]) -> list[dg.TableRecord]:
    return [
        dg.TableRecord(
            {
                "day": day.day.isoformat(),
                "provider": day.provider,
                "calls": day.calls,
                "requests": day.requests,
                "audio_hours": round(day.billed_audio_hours, 4),
                "estimated_usd": round(day.estimated_cost_usd, 6),
            }
        )
        for day in spend
    ]
