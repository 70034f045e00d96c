from __future__ import annotations

import psycopg
import pytest

from scryon_dagster.adapters.db.migrate import current_revision, head_revision, upgrade_to_head

EXPECTED_TABLES = {
    "users",
    "call_records",
    "call_artifacts",
    "action_items",
    "call_processing_events",
    "user_voice_profiles",
    "call_sentiment_summary",
    "feature_flags",
    "call_llm_usage",
}


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {row[0] for row in rows}


def test_upgrade_from_empty_creates_every_table_and_records_the_version(empty_database_url: str) -> None:
    assert current_revision(empty_database_url) is None

    assert upgrade_to_head(empty_database_url) == head_revision()

    assert _tables(empty_database_url) >= EXPECTED_TABLES
    assert current_revision(empty_database_url) == head_revision()


def test_upgrade_twice_changes_nothing(empty_database_url: str) -> None:
    upgrade_to_head(empty_database_url)
    before = _tables(empty_database_url)

    upgrade_to_head(empty_database_url)

    assert _tables(empty_database_url) == before
    assert current_revision(empty_database_url) == head_revision()


def test_upgrade_adopts_a_database_that_already_has_the_reference_tables(empty_database_url: str) -> None:
    with psycopg.connect(empty_database_url) as conn:
        conn.execute(
            """
            CREATE TABLE users (id uuid PRIMARY KEY, external_user_id text UNIQUE NOT NULL, email text,
                                display_name text, created_at timestamptz DEFAULT now(),
                                updated_at timestamptz DEFAULT now());
            CREATE TABLE call_records (id uuid PRIMARY KEY, user_id uuid REFERENCES users(id) ON DELETE CASCADE,
                                       title text, notes text, contact_name text, contact_id text,
                                       phone_number text, organization text, direction text DEFAULT 'UNKNOWN',
                                       recorded_at timestamptz, duration_seconds double precision,
                                       status text NOT NULL, error_reason text,
                                       created_at timestamptz DEFAULT now(), updated_at timestamptz DEFAULT now());
            INSERT INTO users (id, external_user_id) VALUES ('00000000-0000-0000-0000-000000000001', 'u1');
            INSERT INTO call_records (id, user_id, status)
                VALUES ('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-000000000001', 'QUEUED');
            """
        )

    upgrade_to_head(empty_database_url)

    with psycopg.connect(empty_database_url) as conn:
        row = conn.execute("SELECT status, claim_id, attempt FROM call_records").fetchone()
    assert row == ("QUEUED", None, 0)
    assert _tables(empty_database_url) >= EXPECTED_TABLES


@pytest.mark.parametrize(
    ("table", "constraint_sql"),
    [
        ("call_artifacts", "UNIQUE (call_id, artifact_type)"),
    ],
)
def test_artifact_uniqueness_constraint_exists(database_url: str, table: str, constraint_sql: str) -> None:
    with psycopg.connect(database_url) as conn:
        definitions = [
            row[0]
            for row in conn.execute(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass", (table,)
            ).fetchall()
        ]
    assert constraint_sql in definitions
