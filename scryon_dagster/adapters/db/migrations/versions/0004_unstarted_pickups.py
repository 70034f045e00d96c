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

-- 0002's trigger, plus: a status change starts the unstarted-pickup count again.
CREATE OR REPLACE FUNCTION call_records_touch() RETURNS trigger AS $$
BEGIN
    NEW.updated_at := now();
    IF NEW.status = 'QUEUED' AND OLD.status <> 'QUEUED' THEN
        NEW.claim_id := NULL;
        NEW.claimed_at := NULL;
    END IF;
    IF NEW.status <> OLD.status THEN
        NEW.callback_state := NULL;
        NEW.callback_requested_at := NULL;
        NEW.callback_expires_at := NULL;
        NEW.callback_received_at := NULL;
        NEW.unstarted_pickups := 0;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
"""


def upgrade() -> None:
    op.execute(SCHEMA)
