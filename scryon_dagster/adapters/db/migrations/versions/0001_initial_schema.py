"""Initial schema: users, calls, artifacts, action items, events, voice profiles, flags, sentiment.

Idempotent DDL (IF NOT EXISTS) so the first migration also adopts a database that already has the
reference system's tables. Applied migrations never change; new ones get a new file.
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    external_user_id text NOT NULL UNIQUE,
    email text,
    display_name text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS call_records (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    title text,
    notes text,
    contact_name text,
    contact_id text,
    phone_number text,
    organization text,
    direction text NOT NULL DEFAULT 'UNKNOWN'
        CHECK (direction IN ('INCOMING', 'OUTGOING', 'UNKNOWN')),
    recorded_at timestamptz,
    duration_seconds double precision,
    status text NOT NULL DEFAULT 'QUEUED'
        CHECK (status IN ('QUEUED', 'TRANSCRIBING', 'ANALYZING', 'COMPLETED', 'FAILED')),
    error_reason text,
    -- pickup bookkeeping: which sensor batch claimed the call, and how many attempts it has had
    claim_id uuid,
    claimed_at timestamptz,
    attempt integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- adopting a reference database: our pickup bookkeeping columns may be missing
ALTER TABLE call_records ADD COLUMN IF NOT EXISTS claim_id uuid;
ALTER TABLE call_records ADD COLUMN IF NOT EXISTS claimed_at timestamptz;
ALTER TABLE call_records ADD COLUMN IF NOT EXISTS attempt integer NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS call_records_user_created_idx ON call_records (user_id, created_at DESC);
-- serves the QUEUED pickup: only unclaimed QUEUED rows, in arrival order
CREATE INDEX IF NOT EXISTS call_records_queued_pickup_idx ON call_records (created_at, id)
    WHERE status = 'QUEUED' AND claim_id IS NULL;
CREATE INDEX IF NOT EXISTS call_records_active_updated_idx ON call_records (updated_at)
    WHERE status IN ('QUEUED', 'TRANSCRIBING', 'ANALYZING');
CREATE INDEX IF NOT EXISTS call_records_claim_idx ON call_records (claim_id) WHERE claim_id IS NOT NULL;

CREATE TABLE IF NOT EXISTS call_artifacts (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    call_id uuid NOT NULL REFERENCES call_records(id) ON DELETE CASCADE,
    artifact_type text NOT NULL CHECK (artifact_type IN
        ('TEMP_AUDIO', 'DIARIZATION_JSON', 'RAW_TRANSCRIPT_JSON', 'NORMALIZED_TRANSCRIPT_JSON', 'ANALYSIS_JSON')),
    storage_key text NOT NULL,
    content_type text NOT NULL,
    byte_size bigint NOT NULL CHECK (byte_size >= 0),
    schema_version integer,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT call_artifacts_call_type_key UNIQUE (call_id, artifact_type)
);
ALTER TABLE call_artifacts ADD COLUMN IF NOT EXISTS schema_version integer;
CREATE INDEX IF NOT EXISTS call_artifacts_type_created_idx ON call_artifacts (artifact_type, created_at);

CREATE TABLE IF NOT EXISTS action_items (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    call_record_id uuid NOT NULL REFERENCES call_records(id) ON DELETE CASCADE,
    title text NOT NULL,
    description text,
    due_date date,
    priority text CHECK (priority IN ('LOW', 'MEDIUM', 'HIGH')),
    status text NOT NULL DEFAULT 'OPEN' CHECK (status IN ('OPEN', 'IN_PROGRESS', 'DONE', 'DISMISSED')),
    source text NOT NULL DEFAULT 'AI' CHECK (source IN ('AI', 'MANUAL')),
    intent text,
    intent_metadata_json jsonb,
    owner_speaker_id text,
    owner_speaker_label text,
    owner_display_name text,
    owner_role text,
    source_segment_ids_json jsonb,
    source_text text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz
);
CREATE INDEX IF NOT EXISTS action_items_call_idx ON action_items (call_record_id);

CREATE TABLE IF NOT EXISTS call_processing_events (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    call_id uuid NOT NULL REFERENCES call_records(id) ON DELETE CASCADE,
    user_id uuid,
    stage text NOT NULL,
    status text NOT NULL CHECK (status IN ('STARTED', 'COMPLETED', 'FAILED', 'SKIPPED')),
    provider text,
    duration_ms bigint,
    error_code text,
    error_message text,
    -- clock time, so that events written in one transaction keep their order
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS call_processing_events_call_idx ON call_processing_events (call_id, created_at);
CREATE INDEX IF NOT EXISTS call_processing_events_created_idx ON call_processing_events (created_at);

CREATE TABLE IF NOT EXISTS user_voice_profiles (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL UNIQUE REFERENCES users(id) ON DELETE CASCADE,
    provider text NOT NULL,
    model text,
    model_version text,
    embedding_json jsonb NOT NULL,
    consent_version text,
    sample_duration_seconds double precision,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS feature_flags (
    flag_key text PRIMARY KEY,
    enabled boolean NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text
);

CREATE TABLE IF NOT EXISTS call_sentiment_summary (
    call_record_id uuid PRIMARY KEY REFERENCES call_records(id) ON DELETE CASCADE,
    user_id uuid NOT NULL,
    recorded_at timestamptz,
    sentiment_overall text,
    user_sentiment text,
    contact_sentiment text,
    tone_overall text,
    tone_formality text,
    tone_energy text,
    tone_pace text,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS call_llm_usage (
    call_id uuid PRIMARY KEY REFERENCES call_records(id) ON DELETE CASCADE,
    model text,
    prompt_tokens integer NOT NULL DEFAULT 0,
    completion_tokens integer NOT NULL DEFAULT 0,
    cached_tokens integer NOT NULL DEFAULT 0,
    estimated_cost_usd numeric(12, 6) NOT NULL DEFAULT 0,
    request_id text,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Every change bumps updated_at, and putting a call back to QUEUED (by the pipeline or by the
-- runbook's plain SQL) releases its pickup claim so that it runs again exactly once.
CREATE OR REPLACE FUNCTION call_records_touch() RETURNS trigger AS $$
BEGIN
    NEW.updated_at := now();
    IF NEW.status = 'QUEUED' AND OLD.status <> 'QUEUED' THEN
        NEW.claim_id := NULL;
        NEW.claimed_at := NULL;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS call_records_touch ON call_records;
CREATE TRIGGER call_records_touch BEFORE UPDATE ON call_records
    FOR EACH ROW EXECUTE FUNCTION call_records_touch();
"""


def upgrade() -> None:
    op.execute(SCHEMA)
