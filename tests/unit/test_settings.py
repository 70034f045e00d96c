from __future__ import annotations

from pathlib import Path

import pytest

from scryon_dagster.settings import Settings, SettingsError, StorageProvider, load_settings

ENV_EXAMPLE = Path(__file__).parents[2] / ".env.example"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


def test_reference_defaults() -> None:
    settings = load_settings()
    assert settings.lemonfox_base_url == "https://api.lemonfox.ai/v1"
    assert settings.lemonfox_timeout_seconds == 180
    assert settings.pyannote_enabled is False
    assert settings.scryon_diarization_max_audio_minutes == 30
    assert settings.scryon_voice_embedding_high_threshold == 0.85
    assert settings.object_storage_provider is StorageProvider.LOCAL
    assert settings.object_storage_temp_audio_ttl_hours == 24
    assert settings.scryon_sweep_interval_ms == 300_000
    assert settings.scryon_analysis_enabled is True
    assert settings.max_file_size == 50 * 1024 * 1024


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OBJECT_STORAGE_TEMP_AUDIO_TTL_HOURS", "a day"),
        ("OBJECT_STORAGE_PROVIDER", "ftp"),
        ("LEMONFOX_TIMEOUT_SECONDS", "-1"),
        ("PYANNOTE_ENABLED", "maybe"),
        ("SCRYON_VOICE_EMBEDDING_PROVIDER", "openai"),
    ],
)
def test_a_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable):
        load_settings()


def test_voice_sample_limits_follow_the_reference_and_must_be_ordered(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert (settings.scryon_voice_sample_min_seconds, settings.scryon_voice_sample_max_seconds) == (15, 45)
    assert settings.voice_sample_max_bytes == 10 * 1024 * 1024
    assert settings.scryon_voice_consent_version == "v1"
    monkeypatch.setenv("SCRYON_VOICE_SAMPLE_MIN_SECONDS", "60")
    with pytest.raises(SettingsError, match="SCRYON_VOICE_SAMPLE_MIN_SECONDS"):
        load_settings()


def test_s3_without_a_bucket_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OBJECT_STORAGE_PROVIDER", "s3")
    with pytest.raises(SettingsError, match="OBJECT_STORAGE_BUCKET"):
        load_settings()


def test_short_webhook_secrets_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCRYON_WEBHOOK_SECRET", "x" * 40 + ",short")
    with pytest.raises(SettingsError, match="SCRYON_WEBHOOK_SECRET"):
        load_settings()


def test_several_api_keys_and_secrets_are_split(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCRYON_API_KEY", "new-key, old-key")
    monkeypatch.setenv("SCRYON_WEBHOOK_SECRET", "a" * 32 + "," + "b" * 32)
    settings = load_settings()
    assert settings.api_keys == ["new-key", "old-key"]
    assert settings.webhook_secrets == ["a" * 32, "b" * 32]


def test_env_example_lists_every_variable() -> None:
    listed = {line.split("=", 1)[0] for line in ENV_EXAMPLE.read_text().splitlines() if "=" in line}
    assert listed == {name.upper() for name in Settings.model_fields}
