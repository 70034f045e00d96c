"""Automatic retries of transient failures, within a call's processing cycle.

A processing cycle starts when a call is queued by intake, or when it leaves COMPLETED/FAILED (the
runbook's re-queue, a run launched by hand). Within a cycle a transient failure puts the call back to
QUEUED with ``retry_after`` (the pickup leaves it alone until then) and counts ``retry_count``; outputs
stored since ``cycle_started_at`` are reused instead of paid for again. Leaving a terminal status
starts a new cycle: the count, the wait and the reuse horizon restart.
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SCHEMA = """
ALTER TABLE call_records ADD COLUMN IF NOT EXISTS retry_count integer NOT NULL DEFAULT 0;
ALTER TABLE call_records ADD COLUMN IF NOT EXISTS retry_after timestamptz;
ALTER TABLE call_records ADD COLUMN IF NOT EXISTS cycle_started_at timestamptz NOT NULL DEFAULT now();
UPDATE call_records SET cycle_started_at = created_at WHERE cycle_started_at > created_at;

CREATE OR REPLACE FUNCTION call_records_start_cycle() RETURNS trigger AS $$
BEGIN
    NEW.retry_count := 0;
    NEW.retry_after := NULL;
    NEW.cycle_started_at := now();
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS call_records_start_cycle ON call_records;
CREATE TRIGGER call_records_start_cycle BEFORE UPDATE OF status ON call_records
    FOR EACH ROW WHEN (OLD.status IN ('COMPLETED', 'FAILED') AND NEW.status NOT IN ('COMPLETED', 'FAILED'))
    EXECUTE FUNCTION call_records_start_cycle();
"""


def upgrade() -> None:
    op.execute(SCHEMA)
