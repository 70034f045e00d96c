"""Lemonfox callback mode bookkeeping on call_records, and upload idempotency keys.

A call whose transcription was submitted in callback mode stays TRANSCRIBING with
``callback_state = 'AWAITING'`` (its run has released it) until the signed callback arrives
(``'RECEIVED'``), after which the QUEUED sensor resumes it from normalization. The expiry of the
signed URL is kept so that only the delivery for the current submission is accepted. Any status
change clears the callback columns, so a failed, re-queued or resumed call never looks as if it
were still waiting.
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = """
ALTER TABLE call_records ADD COLUMN IF NOT EXISTS callback_state text;
ALTER TABLE call_records ADD COLUMN IF NOT EXISTS callback_requested_at timestamptz;
ALTER TABLE call_records ADD COLUMN IF NOT EXISTS callback_expires_at timestamptz;
ALTER TABLE call_records ADD COLUMN IF NOT EXISTS callback_received_at timestamptz;
ALTER TABLE call_records DROP CONSTRAINT IF EXISTS call_records_callback_state_check;
ALTER TABLE call_records ADD CONSTRAINT call_records_callback_state_check
    CHECK (callback_state IN ('AWAITING', 'RECEIVED'));
-- serves the resume pickup: delivered callbacks whose submitting run has let go of the call
CREATE INDEX IF NOT EXISTS call_records_callback_received_idx ON call_records (callback_received_at, id)
    WHERE callback_state = 'RECEIVED' AND claim_id IS NULL;
-- serves the callback-timeout sweep
CREATE INDEX IF NOT EXISTS call_records_callback_awaiting_idx ON call_records (callback_requested_at)
    WHERE callback_state = 'AWAITING';

-- A retried upload with the same Idempotency-Key returns the call the first attempt created.
CREATE TABLE IF NOT EXISTS upload_idempotency_keys (
    user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    idempotency_key text NOT NULL,
    call_id uuid NOT NULL REFERENCES call_records(id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, idempotency_key)
);
CREATE INDEX IF NOT EXISTS upload_idempotency_keys_call_idx ON upload_idempotency_keys (call_id);

-- 0001's trigger, plus: a status change ends any callback wait.
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
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
"""


def upgrade() -> None:
    op.execute(SCHEMA)
