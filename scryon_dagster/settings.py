"""Typed settings: the one place every environment variable of the system is read.

Names follow the reference system (``../shared/spec/system.md`` §8); a bad value stops start-up
with a message that names the variable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

from cryptography.hazmat.primitives import serialization
from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from scryon_dagster.domain.flags import FeatureFlag
from scryon_dagster.domain.policy import RetryPolicy

MAX_FILE_SIZE_DEFAULT = 50 * 1024 * 1024
FIREBASE_ISSUER_PREFIX = "https://securetoken.google.com/"
FIREBASE_JWKS_URL = "https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com"
"""The public keys Firebase Authentication signs ID tokens with (rotated by Google every few hours)."""
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


@dataclass(frozen=True)
class IdentityProvider:
    """An issuer of ID tokens: the ``iss`` and ``aud`` its tokens must carry, where its keys are."""

    issuer: str
    audience: str
    jwks_url: str


@dataclass(frozen=True)
class FirebaseServiceAccount:
    project_id: str
    client_email: str
    private_key_pem: str = field(repr=False)


class StorageProvider(StrEnum):
    LOCAL = "local"
    S3 = "s3"


class VoiceEmbeddingProvider(StrEnum):
    # the voice match compares pyannoteAI voiceprints; no other provider is wired in
    PYANNOTE = "pyannote"


class AudioPreprocessingChain(StrEnum):
    """The ffmpeg filters behind the two audio variants (chosen in bench/README.md, issue 18)."""

    LEVELED = "leveled"
    # the reference system's exact chain: loudnorm per variant, high-pass + afftdn for transcription
    REFERENCE = "reference"


class RunWorkerStart(StrEnum):
    """How the code server starts a run's worker process (docs/deployment.md, "Run workers")."""

    # forked from a process that has already imported Dagster and the code location (scryon_dagster.dagster_cli)
    FORKSERVER = "forkserver"
    # Dagster's own: a fresh Python per run, importing everything again (~2.8 CPU-s)
    SPAWN = "spawn"


class BatchExecutor(StrEnum):
    """Where a batch run's step executes (docs/deployment.md, "Several hosts")."""

    # inside the run worker the run launcher started (one machine, or one container per run)
    IN_PROCESS = "in_process"
    # on a Celery worker of any host, reached through SCRYON_CELERY_BROKER_URL (dagster-celery)
    CELERY = "celery"


class SettingsError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, case_sensitive=False, extra="ignore", validate_default=True)

    # --- databases and instance -------------------------------------------------------------
    scryon_database_url: str | None = None
    """Postgres URL of the call database; unset means the embedded default server."""
    scryon_embedded_pg_dir: Path = Path("./var/postgres")
    dagster_home: Path | None = None

    # --- Lemonfox -----------------------------------------------------------------------------
    lemonfox_api_key: SecretStr | None = None
    lemonfox_base_url: str = "https://api.lemonfox.ai/v1"
    lemonfox_model: str = "whisper-1"
    lemonfox_language: str = "auto"
    lemonfox_timeout_seconds: float = Field(180, gt=0)
    lemonfox_timeout_seconds_per_audio_minute: float = Field(4, ge=0)
    """A transcription's time limit grows by this much per minute of audio; the timeout above is its floor."""
    lemonfox_max_retries: int = Field(3, ge=0)
    lemonfox_max_upload_bytes: int = Field(100_000_000, gt=0)
    """Lemonfox's documented limit for an uploaded file: larger audio fails audio_too_large_for_provider."""
    scryon_transcription_callback_enabled: bool = False
    scryon_public_base_url: str | None = None
    scryon_webhook_secret: SecretStr | None = None
    """One or more comma-separated secrets, current first; each at least 32 bytes."""
    scryon_transcription_callback_timeout_minutes: int = Field(30, gt=0)

    # --- pyannoteAI ---------------------------------------------------------------------------
    pyannote_enabled: bool = False
    pyannote_api_key: SecretStr | None = None
    pyannote_base_url: str = "https://api.pyannote.ai"
    pyannote_model: str = "precision-2"
    pyannote_max_upload_bytes: int = Field(1024**3, gt=0)
    """pyannoteAI's documented limit for a job's file: larger audio is not diarized (audio_too_large_for_provider)."""
    scryon_diarization_timeout_seconds: float = Field(300, gt=0)
    scryon_diarization_timeout_seconds_per_audio_minute: float = Field(6, ge=0)
    """A diarization job's time limit grows by this much per minute of audio; the timeout above is its floor."""
    scryon_diarization_poll_interval_seconds: float = Field(5, gt=0)
    scryon_diarization_max_retries: int = Field(2, ge=0)
    scryon_diarization_max_audio_minutes: float = Field(30, gt=0)
    scryon_diarization_hint_two_speakers: bool = True

    # --- voice embedding ----------------------------------------------------------------------
    scryon_voice_embedding_enabled: bool = False
    scryon_voice_embedding_provider: VoiceEmbeddingProvider = VoiceEmbeddingProvider.PYANNOTE
    scryon_voice_embedding_high_threshold: float = Field(0.85, ge=0, le=1)
    scryon_voice_embedding_medium_threshold: float = Field(0.75, ge=0, le=1)
    scryon_voice_sample_min_seconds: float = Field(15, gt=0)
    scryon_voice_sample_max_seconds: float = Field(45, gt=0)
    """Enrollment samples outside these bounds are refused; pyannoteAI hears the first 30 s at most."""
    scryon_voice_sample_max_size_mb: float = Field(10, gt=0)
    scryon_voice_consent_version: str = Field("v1", min_length=1, max_length=64)
    """The consent text a client showed must be this version; bump it to require consent again."""

    # --- audio --------------------------------------------------------------------------------
    scryon_audio_preprocessing_enabled: bool = True
    scryon_ffmpeg_path: str = "ffmpeg"
    scryon_audio_preprocessing_chain: AudioPreprocessingChain = AudioPreprocessingChain.LEVELED
    scryon_audio_denoise_enabled: bool = True
    # unset: the chain's own value (adapters/audio.py); 0 Hz switches the high-pass off
    scryon_audio_highpass_hz: int | None = Field(None, ge=0)
    scryon_audio_denoise_nr_db: float | None = Field(None, ge=0)
    scryon_audio_denoise_noise_floor_db: float | None = None
    scryon_audio_preprocessing_timeout_seconds: float = Field(60, gt=0)
    scryon_audio_preprocessing_seconds_per_audio_minute: float = Field(10, gt=0)
    """ffmpeg's time limit grows by this much per minute of audio done; the timeout above is its floor."""
    scryon_audio_preprocessing_processes: int | None = Field(None, gt=0)
    """ffmpeg processes at once per run worker; unset means the machine's CPU count."""
    max_file_size: int = Field(MAX_FILE_SIZE_DEFAULT, gt=0)
    scryon_min_audio_seconds: float = Field(0.5, ge=0)
    """Intake refuses a recording with less decodable audio than this."""

    # --- LLM ----------------------------------------------------------------------------------
    llm_api_key: SecretStr | None = None
    llm_base_url: str = "https://api.openai.com/v1"
    llm_model: str = "gpt-4o-mini"
    llm_timeout_seconds: float = Field(120, gt=0)
    llm_temperature: float = Field(0.2, ge=0, le=2)
    llm_max_retries: int = Field(1, ge=0)
    llm_max_prompt_tokens: int = Field(110_000, ge=20_000)
    """Input tokens one analysis request may use (estimated): gpt-4o-mini's 128k context less its 16k
    output. A longer transcript is analysed in parts and merged, never truncated."""
    llm_speaker_naming_enabled: bool = False
    llm_price_input_per_mtok_usd: float = Field(0.15, ge=0)
    llm_price_output_per_mtok_usd: float = Field(0.60, ge=0)
    scryon_analysis_enabled: bool = True

    # --- provider prices (cost estimates) and concurrency -------------------------------------
    lemonfox_price_per_audio_hour_usd: float = Field(0.17, ge=0)
    pyannote_price_per_audio_hour_usd: float = Field(0.12, ge=0)
    pyannote_min_billed_seconds: float = Field(20, ge=0)
    scryon_lemonfox_concurrency: int = Field(8, gt=0)
    scryon_pyannote_concurrency: int = Field(8, gt=0)
    scryon_pyannote_requests_per_minute: int | None = Field(95, gt=0)
    """For all processes together (reserved in the call database); pyannoteAI allows 100/min per key."""
    scryon_llm_concurrency: int = Field(8, gt=0)

    # --- object storage -----------------------------------------------------------------------
    object_storage_provider: StorageProvider = StorageProvider.LOCAL
    object_storage_bucket: str | None = None
    object_storage_endpoint: str | None = None
    object_storage_region: str | None = None
    object_storage_access_key: SecretStr | None = None
    object_storage_secret_key: SecretStr | None = None
    object_storage_path_style_access: bool = True
    object_storage_local_path: Path = Path("./var/storage")
    object_storage_temp_audio_ttl_hours: float = Field(24, gt=0)
    object_storage_retry_seconds: float = Field(30, ge=0)
    """How long a storage read or write keeps retrying transient trouble (an outage, 5xx, throttling)."""

    # --- jobs ---------------------------------------------------------------------------------
    scryon_stale_job_timeout_minutes: float = Field(15, gt=0)
    scryon_sweep_interval_ms: int = Field(300_000, gt=0)
    scryon_queued_sensor_interval_seconds: int = Field(1, gt=0)
    """Least time between QUEUED ticks. Dagster's daemon starts sensor ticks at most every 5 s, so any
    value up to 4 means every daemon loop (5 exactly skips every other loop)."""
    scryon_queued_sensor_wait_seconds: float = Field(3.5, ge=0, le=30)
    """How long an idle QUEUED tick keeps polling (every 0.25 s) for a newly queued call."""
    scryon_sensor_batch_size: int = Field(500, gt=0, le=1000)
    scryon_batch_parallel_calls: int = Field(32, gt=0, le=256)
    scryon_batch_executor: BatchExecutor = BatchExecutor.IN_PROCESS
    scryon_celery_broker_url: SecretStr | None = None
    """The Celery broker (RabbitMQ: pyamqp://user:password@host:5672//) when SCRYON_BATCH_EXECUTOR=celery."""
    scryon_run_worker_start: RunWorkerStart = RunWorkerStart.FORKSERVER
    """Read by the code servers `python -m scryon_dagster.dagster_cli` starts; SPAWN is Dagster's stock behaviour."""
    scryon_run_worker_memory_mb: int = Field(2048, gt=256)
    """A run worker's resident memory to stay within: what it holds before any call (256 MB reserved) plus the
    estimated memory of its calls in flight; calls past it wait for room, a single larger call runs alone."""
    """Audio a run worker holds at once (recordings and their decoded copies); calls past it wait."""
    scryon_max_unstarted_pickups: int = Field(5, gt=0, le=100)
    """Claims in a row whose run never starts a call before that call fails (launch_failed)."""
    scryon_event_retention_days: int = Field(30, gt=0)
    backup_retention_days: int = Field(30, gt=0)
    """Database dumps under db-backups/ older than this are pruned (the newest one is always kept)."""
    scryon_call_max_retries: int = Field(4, ge=0, le=20)
    """Automatic retries of a call's transient failures per processing cycle before it fails."""
    scryon_call_retry_base_seconds: float = Field(5, ge=0)
    scryon_call_retry_max_seconds: float = Field(300, ge=0)
    """The wait before retry n is base * 2^(n-1), at most this."""
    scryon_database_retry_seconds: float = Field(30, ge=0)
    """How long a call-database statement keeps retrying on a lost connection (a restart, a failover)."""

    # --- security and privacy -----------------------------------------------------------------
    scryon_api_key: SecretStr | None = None
    """One or more comma-separated keys, all accepted (rotation without downtime)."""
    scryon_api_local_dev: bool = False
    """Lets the HTTP API start without an identity provider or key: every request acts for the fixed
    ``local-dev`` user (a developer's machine only; ignored once an identity provider is configured)."""
    scryon_api_trusted_service: bool = False
    """Lets an API-key caller act for the user named in ``X-User-Id`` (a trusted backend only)."""
    firebase_project_id: str | None = None
    """Users are who their Firebase ID token says, verified against Google's published keys."""
    firebase_client_email: str | None = None
    firebase_private_key: SecretStr | None = None
    """With FIREBASE_CLIENT_EMAIL, the project's service account (optional): Firebase is then asked
    whether a token's user is disabled or their sessions revoked."""
    scryon_oidc_issuer: str | None = None
    """Another OpenID Connect issuer instead of Firebase: the ``iss`` of its ID tokens."""
    scryon_oidc_audience: str | None = None
    """The ``aud`` that issuer's ID tokens carry for this API."""
    scryon_oidc_jwks_url: str | None = None
    """Where that issuer publishes its public keys (https, or http on a loopback host)."""
    redact_transcripts: bool = True

    @model_validator(mode="after")
    def _check_cross_field_rules(self) -> Settings:
        if self.object_storage_provider is StorageProvider.S3 and not self.object_storage_bucket:
            raise ValueError("OBJECT_STORAGE_BUCKET is required when OBJECT_STORAGE_PROVIDER=s3")
        if self.scryon_batch_executor is BatchExecutor.CELERY:
            if self.scryon_celery_broker_url is None:
                raise ValueError("SCRYON_CELERY_BROKER_URL is required when SCRYON_BATCH_EXECUTOR=celery")
            if self.object_storage_provider is not StorageProvider.S3:
                # a batch step may run on any host: a local directory is not where the next step looks
                raise ValueError("OBJECT_STORAGE_PROVIDER=s3 is required when SCRYON_BATCH_EXECUTOR=celery")
        if self.scryon_voice_embedding_medium_threshold > self.scryon_voice_embedding_high_threshold:
            raise ValueError(
                "SCRYON_VOICE_EMBEDDING_MEDIUM_THRESHOLD must not exceed SCRYON_VOICE_EMBEDDING_HIGH_THRESHOLD"
            )
        if self.scryon_voice_sample_min_seconds > self.scryon_voice_sample_max_seconds:
            raise ValueError("SCRYON_VOICE_SAMPLE_MIN_SECONDS must not exceed SCRYON_VOICE_SAMPLE_MAX_SECONDS")
        for secret in self.webhook_secrets:
            if len(secret.encode()) < 32:
                raise ValueError("SCRYON_WEBHOOK_SECRET: every secret must be at least 32 bytes")
        if self.scryon_transcription_callback_enabled and not self.scryon_public_base_url:
            raise ValueError("SCRYON_PUBLIC_BASE_URL is required when SCRYON_TRANSCRIPTION_CALLBACK_ENABLED=true")
        if self.scryon_api_trusted_service and not self.api_keys:
            raise ValueError("SCRYON_API_KEY is required when SCRYON_API_TRUSTED_SERVICE=true")
        self._check_identity_provider()
        return self

    def _check_identity_provider(self) -> None:
        oidc = {
            "SCRYON_OIDC_ISSUER": self.scryon_oidc_issuer,
            "SCRYON_OIDC_AUDIENCE": self.scryon_oidc_audience,
            "SCRYON_OIDC_JWKS_URL": self.scryon_oidc_jwks_url,
        }
        given = [name for name, value in oidc.items() if value]
        if given and self.firebase_project_id:
            raise ValueError("set either FIREBASE_PROJECT_ID or the SCRYON_OIDC_* variables, not both")
        if given and len(given) < len(oidc):
            missing = ", ".join(name for name in oidc if name not in given)
            raise ValueError(f"{missing} must be set as well: SCRYON_OIDC_* go together")
        if self.scryon_oidc_jwks_url and not _is_key_url(self.scryon_oidc_jwks_url):
            raise ValueError("SCRYON_OIDC_JWKS_URL must be an https URL (http only on a loopback host)")
        if (self.firebase_client_email or self.firebase_private_key) and not self.firebase_service_account:
            raise ValueError("FIREBASE_CLIENT_EMAIL and FIREBASE_PRIVATE_KEY go together, with FIREBASE_PROJECT_ID")
        account = self.firebase_service_account
        if account is not None and not _is_private_key(account.private_key_pem):
            raise ValueError("FIREBASE_PRIVATE_KEY must be the service account's PEM private key")

    @property
    def webhook_secrets(self) -> list[str]:
        return _split_secret_list(self.scryon_webhook_secret)

    @property
    def api_keys(self) -> list[str]:
        return _split_secret_list(self.scryon_api_key)

    @property
    def identity_provider(self) -> IdentityProvider | None:
        """Whose ID tokens name the API's users; None when no provider is configured."""
        if self.firebase_project_id:
            return IdentityProvider(
                issuer=FIREBASE_ISSUER_PREFIX + self.firebase_project_id,
                audience=self.firebase_project_id,
                jwks_url=FIREBASE_JWKS_URL,
            )
        if self.scryon_oidc_issuer and self.scryon_oidc_audience and self.scryon_oidc_jwks_url:
            return IdentityProvider(
                issuer=self.scryon_oidc_issuer, audience=self.scryon_oidc_audience, jwks_url=self.scryon_oidc_jwks_url
            )
        return None

    @property
    def firebase_service_account(self) -> FirebaseServiceAccount | None:
        if not (self.firebase_project_id and self.firebase_client_email and self.firebase_private_key):
            return None
        # A key pasted into one line of an .env file carries its line breaks as backslash-n.
        pem = self.firebase_private_key.get_secret_value().replace("\\n", "\n")
        return FirebaseServiceAccount(self.firebase_project_id, self.firebase_client_email, pem)

    @property
    def voice_sample_max_bytes(self) -> int:
        return int(self.scryon_voice_sample_max_size_mb * 1024 * 1024)

    @property
    def stale_job_timeout_seconds(self) -> float:
        return self.scryon_stale_job_timeout_minutes * 60

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_retries=self.scryon_call_max_retries,
            base_delay_seconds=self.scryon_call_retry_base_seconds,
            max_delay_seconds=max(self.scryon_call_retry_max_seconds, self.scryon_call_retry_base_seconds),
        )

    @property
    def flag_defaults(self) -> dict[FeatureFlag, bool]:
        return {
            FeatureFlag.PYANNOTE_ENABLED: self.pyannote_enabled,
            FeatureFlag.SCRYON_VOICE_EMBEDDING_ENABLED: self.scryon_voice_embedding_enabled,
            FeatureFlag.SCRYON_ANALYSIS_ENABLED: self.scryon_analysis_enabled,
            FeatureFlag.LLM_SPEAKER_NAMING_ENABLED: self.llm_speaker_naming_enabled,
        }


def _is_key_url(url: str) -> bool:
    # Keys fetched over plain http could be swapped in transit; loopback is for tests and sidecars.
    parsed = urlparse(url)
    return parsed.scheme == "https" or (parsed.scheme == "http" and parsed.hostname in LOOPBACK_HOSTS)


def _is_private_key(pem: str) -> bool:
    try:
        serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        return False
    return True


def _split_secret_list(value: SecretStr | None) -> list[str]:
    if value is None:
        return []
    return [part.strip() for part in value.get_secret_value().split(",") if part.strip()]


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment; raise SettingsError naming each bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            variable = ".".join(str(part) for part in error["loc"]).upper()
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{variable}: {message}" if variable else message)
        raise SettingsError("invalid configuration: " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
