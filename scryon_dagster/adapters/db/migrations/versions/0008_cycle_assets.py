"""Which assets a processing cycle rebuilds.

A run launched by hand may rebuild only some of a call's assets (a re-derivation: the normalized
transcript and the analysis, from the stored raw outputs). Its automatic retries go through the pickup,
which plans every asset; ``cycle_assets`` keeps them to what the cycle was started for, so a retried
re-derivation never pays for transcription or diarization again. NULL means every asset (intake, and
any re-queue to QUEUED, the runbook's SQL included).
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

SCHEMA = """
ALTER TABLE call_records ADD COLUMN IF NOT EXISTS cycle_assets text[];

CREATE OR REPLACE FUNCTION call_records_start_cycle() RETURNS trigger AS $$
BEGIN
    NEW.retry_count := 0;
    NEW.retry_after := NULL;
    NEW.cycle_started_at := now();
    -- a run taking the call directly says which assets it rebuilds; a re-queue rebuilds them all
    IF NEW.status = 'QUEUED' THEN
        NEW.cycle_assets := NULL;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
"""


def upgrade() -> None:
    op.execute(SCHEMA)
