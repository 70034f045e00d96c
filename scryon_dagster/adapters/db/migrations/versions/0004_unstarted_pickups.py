"""How many times in a row a call was claimed by a batch whose run never started it.

A claim whose run never starts its call is given back to the pickup. Without a count, a call (or a
batch) whose run fails before starting it would be claimed and given back forever; with it, the
release after the last allowed pickup fails the call instead (``launch_failed``), visibly, and the
runbook's re-queue brings it back. Any status change (the call started, failed or was re-queued)
starts the count again.
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SCHEMA = """
ALTER TABLE call_records ADD COLUMN IF NOT EXISTS unstarted_pickups integer NOT NULL DEFAULT 0;

CREATE OR REPLACE FUNCTION call_records_restart_pickup_count() RETURNS trigger AS $$
BEGIN
    NEW.unstarted_pickups := 0;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS call_records_restart_pickup_count ON call_records;
CREATE TRIGGER call_records_restart_pickup_count BEFORE UPDATE OF status ON call_records
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION call_records_restart_pickup_count();
"""


def upgrade() -> None:
    op.execute(SCHEMA)
