"""SQL of the per-call cost ledger (``call_provider_costs``): appending a paid request, a call's cost, the
daily spend."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from uuid import UUID, uuid4

from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.domain.provider_spend import DailySpend, ProviderCharge, SpendProvider, SpendStage


@dataclass(frozen=True)
class CostEntry:
    """One ledger row of a call."""

    provider: SpendProvider
    stage: SpendStage
    audio_seconds: float | None
    billed_audio_seconds: float | None
    prompt_tokens: int | None
    completion_tokens: int | None
    estimated_cost_usd: float
    created_at: datetime


@dataclass(frozen=True)
class CallCost:
    """Every paid provider request of one call, oldest first (retries and reprocesses included)."""

    call_id: UUID
    entries: list[CostEntry]

    @property
    def estimated_cost_usd(self) -> float:
        return sum(entry.estimated_cost_usd for entry in self.entries)

    def cost_by_provider(self) -> dict[SpendProvider, float]:
        totals: dict[SpendProvider, float] = {}
        for entry in self.entries:
            totals[entry.provider] = totals.get(entry.provider, 0.0) + entry.estimated_cost_usd
        return totals


class CostQueries:
    def __init__(self, db: CallDatabase) -> None:
        self._db = db

    def record(self, call_id: UUID, user_id: UUID | None, charge: ProviderCharge) -> None:
        """Append one paid request. Its id is chosen here, once: a statement retried after a lost
        commit finds its own row and adds nothing."""
        self._db.query(
            """
            INSERT INTO call_provider_costs (id, call_id, user_id, provider, stage, audio_seconds,
                                             billed_audio_seconds, prompt_tokens, completion_tokens,
                                             estimated_cost_usd)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (id) DO NOTHING
            """,
            (
                uuid4(), call_id, user_id, charge.provider.value, charge.stage.value, charge.audio_seconds,
                charge.billed_audio_seconds, charge.prompt_tokens, charge.completion_tokens,
                charge.estimated_cost_usd,
            ),
        )  # fmt: skip

    def call_cost(self, call_id: UUID) -> CallCost:
        rows = self._db.query(
            """
            SELECT provider, stage, audio_seconds, billed_audio_seconds, prompt_tokens, completion_tokens,
                   estimated_cost_usd::float8 AS estimated_cost_usd, created_at
            FROM call_provider_costs WHERE call_id = %s ORDER BY created_at, id
            """,
            (call_id,),
        )
        entries = [
            CostEntry(**{**row, "provider": SpendProvider(row["provider"]), "stage": SpendStage(row["stage"])})
            for row in rows
        ]
        return CallCost(call_id=call_id, entries=entries)

    def daily_spend(self, first_day: date, last_day: date) -> list[DailySpend]:
        """Per UTC day and provider, from ``first_day`` to ``last_day`` inclusive (days without spend are
        absent), oldest day first."""
        rows = self._db.query(
            """
            SELECT (created_at AT TIME ZONE 'UTC')::date AS day, provider,
                   count(DISTINCT call_id)::int AS calls, count(*)::int AS requests,
                   COALESCE(sum(billed_audio_seconds), 0)::float8 AS billed_audio_seconds,
                   sum(estimated_cost_usd)::float8 AS estimated_cost_usd
            FROM call_provider_costs
            WHERE created_at >= (%s::date)::timestamp AT TIME ZONE 'UTC'
              AND created_at < ((%s::date) + 1)::timestamp AT TIME ZONE 'UTC'
            GROUP BY day, provider
            ORDER BY day, provider
            """,
            (first_day, last_day),
        )
        return [DailySpend(**row) for row in rows]
