"""The call database's named statements (users, calls, artifacts, events, analysis outputs, flags,
voice profiles) on top of the status machine and claims of ``lifecycle``; the maintenance, callback,
cost and API queries have their own classes beside it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from enum import Enum
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from scryon_dagster.adapters.db.connection import DatabaseError as DatabaseError
from scryon_dagster.adapters.db.connection import DatabaseUnavailableError as DatabaseUnavailableError
from scryon_dagster.adapters.db.lifecycle import CallLifecycle
from scryon_dagster.adapters.db.lifecycle import IllegalTransitionError as IllegalTransitionError
from scryon_dagster.adapters.db.records import (
    ArtifactRecord,
    CallRecord,
    LlmUsage,
    NewCall,
    ProcessingEvent,
    UserRecord,
    VoiceProfile,
)
from scryon_dagster.adapters.db.rows import ARTIFACT_COLUMNS, CALL_COLUMNS, artifact_record, call_record
from scryon_dagster.domain.analysis import ActionItemDraft, SentimentSummary
from scryon_dagster.domain.calls import ArtifactType


class CallDatabase(CallLifecycle):
    """The call database (Postgres is the source of truth). Thread-safe; one per process."""

    # --- users ----------------------------------------------------------------------------------
    def ensure_user(
        self, external_user_id: str, *, display_name: str | None = None, email: str | None = None
    ) -> UserRecord:
        rows = self.query(
            """
            INSERT INTO users (external_user_id, display_name, email) VALUES (%s, %s, %s)
            ON CONFLICT (external_user_id) DO UPDATE
                SET display_name = COALESCE(EXCLUDED.display_name, users.display_name),
                    email = COALESCE(EXCLUDED.email, users.email),
                    updated_at = CASE WHEN EXCLUDED.display_name IS NULL AND EXCLUDED.email IS NULL
                                      THEN users.updated_at ELSE now() END
            RETURNING id, external_user_id, email, display_name
            """,
            (external_user_id, display_name, email),
        )
        return UserRecord(**rows[0])

    def find_user(self, reference: str) -> UserRecord | None:
        """A user by id (UUID text) or by external user id."""
        rows = self.query(
            "SELECT id, external_user_id, email, display_name FROM users WHERE external_user_id = %s OR id::text = %s",
            (reference, reference),
        )
        return UserRecord(**rows[0]) if rows else None

    def get_user(self, user_id: UUID) -> UserRecord | None:
        rows = self.query("SELECT id, external_user_id, email, display_name FROM users WHERE id = %s", (user_id,))
        return UserRecord(**rows[0]) if rows else None

    # --- calls ----------------------------------------------------------------------------------
    def create_queued_call(
        self,
        *,
        call_id: UUID,
        user_id: UUID,
        call: NewCall,
        temp_audio_key: str,
        temp_audio_content_type: str,
        temp_audio_size: int,
    ) -> CallRecord:
        """Insert the call as QUEUED together with its TEMP_AUDIO artifact, in one transaction."""

        def insert(cur: psycopg.Cursor[dict[str, Any]], retried: bool) -> dict[str, Any] | None:
            cur.execute(
                f"""
                INSERT INTO call_records (id, user_id, title, notes, contact_name, contact_id,
                    phone_number, organization, direction, recorded_at, duration_seconds, status)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'QUEUED')
                ON CONFLICT (id) DO NOTHING
                RETURNING {CALL_COLUMNS}
                """,
                (
                    call_id, user_id, call.title, call.notes, call.contact_name, call.contact_id,
                    call.phone_number, call.organization, call.direction.value, call.recorded_at,
                    call.duration_seconds,
                ),
            )  # fmt: skip
            row = cur.fetchone()
            if row is None and retried:  # the first try committed; only its answer was lost
                cur.execute(f"SELECT {CALL_COLUMNS} FROM call_records WHERE id = %s", (call_id,))
                return cur.fetchone()
            cur.execute(
                """
                INSERT INTO call_artifacts (call_id, artifact_type, storage_key, content_type, byte_size)
                VALUES (%s, 'TEMP_AUDIO', %s, %s, %s)
                """,
                (call_id, temp_audio_key, temp_audio_content_type, temp_audio_size),
            )
            return row

        row = self.run(insert)
        if row is None:
            raise DatabaseError("a call with this id exists already")
        return call_record(row)

    def get_call(self, call_id: UUID) -> CallRecord | None:
        rows = self.query(f"SELECT {CALL_COLUMNS} FROM call_records WHERE id = %s", (call_id,))
        return call_record(rows[0]) if rows else None

    def get_calls(self, call_ids: Iterable[UUID]) -> dict[UUID, CallRecord]:
        ids = list(call_ids)
        if not ids:
            return {}
        rows = self.query(f"SELECT {CALL_COLUMNS} FROM call_records WHERE id = ANY(%s)", (ids,))
        return {row["id"]: call_record(row) for row in rows}

    def delete_call(self, call_id: UUID) -> bool:
        """Delete the call row; artifacts, action items, events, sentiment and usage rows cascade.
        Callers delete the call's objects first (see ``pipeline.maintenance.delete_calls``)."""
        return bool(self.query("DELETE FROM call_records WHERE id = %s RETURNING id", (call_id,)))

    # --- artifacts ------------------------------------------------------------------------------
    def upsert_artifact(
        self,
        call_id: UUID,
        artifact_type: ArtifactType,
        *,
        storage_key: str,
        content_type: str,
        byte_size: int,
        schema_version: int | None = None,
    ) -> None:
        """Register an artifact; a rewrite replaces the (call, type) row in place."""
        self.query(
            """
            INSERT INTO call_artifacts (call_id, artifact_type, storage_key, content_type, byte_size,
                                        schema_version)
            VALUES (%s, %s, %s, %s, %s, %s)
            ON CONFLICT (call_id, artifact_type) DO UPDATE
                SET storage_key = EXCLUDED.storage_key, content_type = EXCLUDED.content_type,
                    byte_size = EXCLUDED.byte_size, schema_version = EXCLUDED.schema_version,
                    created_at = now()
            """,
            (call_id, artifact_type.value, storage_key, content_type, byte_size, schema_version),
        )

    def get_artifacts(self, call_id: UUID) -> dict[ArtifactType, ArtifactRecord]:
        rows = self.query(f"SELECT {ARTIFACT_COLUMNS} FROM call_artifacts WHERE call_id = %s", (call_id,))
        return {ArtifactType(row["artifact_type"]): artifact_record(row) for row in rows}

    def recent_artifacts(self, artifact_type: ArtifactType, limit: int) -> list[ArtifactRecord]:
        rows = self.query(
            f"SELECT {ARTIFACT_COLUMNS} FROM call_artifacts WHERE artifact_type = %s "
            "ORDER BY created_at DESC, id LIMIT %s",
            (artifact_type.value, limit),
        )
        return [artifact_record(row) for row in rows]

    def delete_artifact(self, call_id: UUID, artifact_type: ArtifactType) -> bool:
        rows = self.query(
            "DELETE FROM call_artifacts WHERE call_id = %s AND artifact_type = %s RETURNING id",
            (call_id, artifact_type.value),
        )
        return bool(rows)

    # --- events ---------------------------------------------------------------------------------
    def record_events(self, events: Sequence[ProcessingEvent]) -> None:
        if not events:
            return

        def insert(cur: psycopg.Cursor[dict[str, Any]], retried: bool) -> None:
            cur.executemany(
                    """
                    INSERT INTO call_processing_events (call_id, user_id, stage, status, provider,
                        duration_ms, error_code, error_message)
                    VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
                    """,
                    [
                        (e.call_id, e.user_id, e.stage, e.status, e.provider, e.duration_ms, e.error_code,
                         e.error_message)
                        for e in events
                    ],
            )  # fmt: skip

        self.run(insert)

    def list_events(self, call_id: UUID) -> list[ProcessingEvent]:
        rows = self.query(
            "SELECT call_id, user_id, stage, status, provider, duration_ms, error_code, error_message, created_at "
            "FROM call_processing_events WHERE call_id = %s ORDER BY created_at, id",
            (call_id,),
        )
        return [ProcessingEvent(**row) for row in rows]

    # --- analysis outputs -----------------------------------------------------------------------
    def replace_ai_outputs(
        self,
        call_id: UUID,
        user_id: UUID,
        *,
        recorded_at: datetime | None,
        action_items: Sequence[ActionItemDraft],
        sentiment: SentimentSummary | None,
    ) -> None:
        """In one transaction: the call's AI action items replaced (MANUAL ones kept) and its sentiment
        summary upserted (or removed when the analysis has none)."""

        def replace(cur: psycopg.Cursor[dict[str, Any]], retried: bool) -> None:
            cur.execute("DELETE FROM action_items WHERE call_record_id = %s AND source = 'AI'", (call_id,))
            cur.executemany(
                """
                INSERT INTO action_items (call_record_id, title, description, due_date, priority, status, source,
                    intent, intent_metadata_json, owner_speaker_id, owner_speaker_label, owner_display_name,
                    owner_role, source_segment_ids_json, source_text)
                VALUES (%s, %s, %s, %s, %s, 'OPEN', 'AI', %s, %s, %s, %s, %s, %s, %s, %s)
                """,
                [
                    (
                        call_id, item.title, item.description, item.due_date, _value(item.priority),
                        _value(item.intent), _jsonb(item.intent_metadata_json), item.owner_speaker_id,
                        item.owner_speaker_label, item.owner_display_name, _value(item.owner_role),
                        Jsonb(item.source_segment_ids_json), item.source_text,
                    )
                    for item in action_items
                ],
            )  # fmt: skip
            if sentiment is None:
                cur.execute("DELETE FROM call_sentiment_summary WHERE call_record_id = %s", (call_id,))
                return
            cur.execute(
                """
                INSERT INTO call_sentiment_summary (call_record_id, user_id, recorded_at, sentiment_overall,
                    user_sentiment, contact_sentiment, tone_overall, tone_formality, tone_energy, tone_pace)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                ON CONFLICT (call_record_id) DO UPDATE SET
                    user_id = EXCLUDED.user_id, recorded_at = EXCLUDED.recorded_at,
                    sentiment_overall = EXCLUDED.sentiment_overall, user_sentiment = EXCLUDED.user_sentiment,
                    contact_sentiment = EXCLUDED.contact_sentiment, tone_overall = EXCLUDED.tone_overall,
                    tone_formality = EXCLUDED.tone_formality, tone_energy = EXCLUDED.tone_energy,
                    tone_pace = EXCLUDED.tone_pace, created_at = now()
                """,
                (
                    call_id, user_id, recorded_at, _value(sentiment.sentiment_overall),
                    _value(sentiment.user_sentiment), _value(sentiment.contact_sentiment),
                    _value(sentiment.tone_overall), _value(sentiment.tone_formality),
                    _value(sentiment.tone_energy), _value(sentiment.tone_pace),
                ),
            )  # fmt: skip

        self.run(replace)

    def list_action_items(self, call_id: UUID) -> list[dict[str, Any]]:
        return self.query(
            "SELECT title, description, due_date, priority, status, source, intent, intent_metadata_json, "
            "owner_speaker_id, owner_speaker_label, owner_display_name, owner_role, source_segment_ids_json, "
            "source_text FROM action_items WHERE call_record_id = %s ORDER BY created_at, id",
            (call_id,),
        )

    def get_sentiment_summary(self, call_id: UUID) -> dict[str, Any] | None:
        rows = self.query("SELECT * FROM call_sentiment_summary WHERE call_record_id = %s", (call_id,))
        return rows[0] if rows else None

    def record_llm_usage(self, call_id: UUID, usage: LlmUsage) -> None:
        self.query(
            """
            INSERT INTO call_llm_usage (call_id, model, prompt_tokens, completion_tokens, cached_tokens,
                                        estimated_cost_usd, request_id)
            VALUES (%s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (call_id) DO UPDATE SET
                model = EXCLUDED.model, prompt_tokens = EXCLUDED.prompt_tokens,
                completion_tokens = EXCLUDED.completion_tokens, cached_tokens = EXCLUDED.cached_tokens,
                estimated_cost_usd = EXCLUDED.estimated_cost_usd, request_id = EXCLUDED.request_id,
                updated_at = now()
            """,
            (
                call_id, usage.model, usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens,
                usage.estimated_cost_usd, usage.request_id,
            ),
        )  # fmt: skip

    def get_llm_usage(self, call_id: UUID) -> LlmUsage | None:
        rows = self.query(
            "SELECT model, prompt_tokens, completion_tokens, cached_tokens, estimated_cost_usd::float8 "
            "AS estimated_cost_usd, request_id FROM call_llm_usage WHERE call_id = %s",
            (call_id,),
        )
        return LlmUsage(**rows[0]) if rows else None

    # --- feature flags and voice profiles -------------------------------------------------------
    def get_feature_flags(self) -> dict[str, bool]:
        return {row["flag_key"]: row["enabled"] for row in self.query("SELECT flag_key, enabled FROM feature_flags")}

    def set_feature_flag(self, flag_key: str, enabled: bool, *, updated_by: str) -> None:
        self.query(
            """
            INSERT INTO feature_flags (flag_key, enabled, updated_by) VALUES (%s, %s, %s)
            ON CONFLICT (flag_key) DO UPDATE
                SET enabled = EXCLUDED.enabled, updated_by = EXCLUDED.updated_by, updated_at = now()
            """,
            (flag_key, enabled, updated_by),
        )

    def get_voice_profile(self, user_id: UUID) -> VoiceProfile | None:
        rows = self.query(
            "SELECT user_id, provider, model, embedding_json, consent_version, sample_duration_seconds, "
            "created_at, updated_at FROM user_voice_profiles WHERE user_id = %s",
            (user_id,),
        )
        return VoiceProfile(**rows[0]) if rows else None

    def save_voice_profile(
        self,
        user_id: UUID,
        *,
        provider: str,
        model: str | None,
        embedding_json: object,
        consent_version: str,
        sample_duration_seconds: float | None = None,
    ) -> VoiceProfile:
        """Create the user's profile, or replace it (at most one per user); the stored row."""
        rows = self.query(
            """
            INSERT INTO user_voice_profiles
                (user_id, provider, model, embedding_json, consent_version, sample_duration_seconds)
            VALUES (%s, %s, %s, %s, %s, %s)
            ON CONFLICT (user_id) DO UPDATE
                SET provider = EXCLUDED.provider, model = EXCLUDED.model,
                    embedding_json = EXCLUDED.embedding_json, consent_version = EXCLUDED.consent_version,
                    sample_duration_seconds = EXCLUDED.sample_duration_seconds, updated_at = now()
            RETURNING user_id, provider, model, embedding_json, consent_version, sample_duration_seconds,
                      created_at, updated_at
            """,
            (user_id, provider, model, Jsonb(embedding_json), consent_version, sample_duration_seconds),
        )
        return VoiceProfile(**rows[0])

    def delete_voice_profile(self, user_id: UUID) -> bool:
        """Whether the user had a profile (it is gone either way)."""
        return bool(self.query("DELETE FROM user_voice_profiles WHERE user_id = %s RETURNING id", (user_id,)))


def _value(member: Enum | None) -> Any:
    return member.value if member is not None else None


def _jsonb(value: object | None) -> Jsonb | None:
    return Jsonb(value) if value is not None else None
