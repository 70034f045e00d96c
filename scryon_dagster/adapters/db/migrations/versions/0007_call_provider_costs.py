"""The per-call cost ledger: one row per paid provider request that answered, appended, never updated.

A retry or a reprocess that pays a provider again adds rows, so the ledger sums to what was spent.
Deleting a call (or a user) keeps its rows with the link cut: the money stays spent, and the daily
spend stays true. ``id`` is chosen by the writer, so a write retried after a lost commit adds nothing.
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

SCHEMA = """
CREATE TABLE IF NOT EXISTS call_provider_costs (
    id uuid PRIMARY KEY,
    call_id uuid REFERENCES call_records(id) ON DELETE SET NULL,
    user_id uuid REFERENCES users(id) ON DELETE SET NULL,
    provider text NOT NULL,
    stage text NOT NULL,
    audio_seconds double precision,
    billed_audio_seconds double precision,
    prompt_tokens integer,
    completion_tokens integer,
    estimated_cost_usd numeric(12, 6) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS call_provider_costs_call_idx ON call_provider_costs (call_id);
CREATE INDEX IF NOT EXISTS call_provider_costs_created_idx ON call_provider_costs (created_at);
"""


def upgrade() -> None:
    op.execute(SCHEMA)
