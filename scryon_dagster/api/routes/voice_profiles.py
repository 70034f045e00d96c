"""The caller's voice profile: enroll a voice sample, read the profile's status, delete it.

Enrollment measures the sample (ffmpeg), has pyannoteAI make a voiceprint of its first
VOICEPRINT_MAX_AUDIO_SECONDS and stores that opaque blob in ``user_voice_profiles``; the sample itself
is never stored. Processed calls then match the user's voice when SCRYON_VOICE_EMBEDDING_ENABLED is on.
With the feature off (or pyannoteAI not configured), enrolling and reading answer 404
``feature_not_available``, as in the reference; deleting always works, so that a voiceprint stored
while the feature was on can be removed after it is switched off.
"""

from __future__ import annotations

import logging
from uuid import uuid4

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from scryon_dagster.adapters.audio_probe import AudioProbe, AudioProbeUnavailableError, AudioUndecodableError
from scryon_dagster.adapters.db.api_queries import ApiUser
from scryon_dagster.adapters.db.records import VoiceProfile
from scryon_dagster.adapters.db.request_slots import SharedRequestPacer
from scryon_dagster.adapters.errors import PermanentProviderError, ProviderError
from scryon_dagster.adapters.pyannote import PROVIDER, VOICEPRINT_MAX_AUDIO_SECONDS, PyannoteClient
from scryon_dagster.api.errors import (
    AUDIO_TOO_LONG,
    AUDIO_TOO_SHORT,
    AUDIO_UNDECODABLE,
    CONSENT_REQUIRED,
    FEATURE_NOT_AVAILABLE,
    PROVIDER_ERROR,
    SERVICE_UNAVAILABLE,
    ApiError,
    error_responses,
)
from scryon_dagster.api.models import VoiceProfileStatus
from scryon_dagster.api.services import ApiServices, CurrentUser, Services
from scryon_dagster.api.uploads import AudioUpload, receive_upload
from scryon_dagster.domain.flags import EffectiveFlags

logger = logging.getLogger(__name__)

CONSENT_FIELD = "consentVersion"
SAMPLE_SIZE_SETTING = "SCRYON_VOICE_SAMPLE_MAX_SIZE_MB"

router = APIRouter(
    prefix="/api/users/me/voice-profile", tags=["voice profile"], responses=error_responses(400, 401, 403, 503)
)

_SAMPLE_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file", CONSENT_FIELD],
                "properties": {
                    "file": {
                        "type": "string",
                        "format": "binary",
                        "description": "The user speaking alone (SCRYON_VOICE_SAMPLE_MIN/MAX_SECONDS of audio).",
                    },
                    CONSENT_FIELD: {
                        "type": "string",
                        "maxLength": 64,
                        "description": "The consent version the client showed (SCRYON_VOICE_CONSENT_VERSION).",
                    },
                },
            }
        }
    },
}


@router.post(
    "",
    status_code=201,
    response_model=VoiceProfileStatus,
    summary="Enroll the caller's voice from a sample (replaces an earlier profile)",
    openapi_extra={"requestBody": _SAMPLE_BODY},
    responses=error_responses(404, 413, 415, 422, 502),
)
async def enroll_voice_profile(request: Request, services: Services, user: CurrentUser) -> VoiceProfileStatus:
    await run_in_threadpool(_require_feature, services)
    settings = services.settings
    upload = await receive_upload(
        request.headers.get("content-type"),
        request.headers.get("content-length"),
        request.stream(),
        max_file_bytes=settings.voice_sample_max_bytes,
        limit_name=SAMPLE_SIZE_SETTING,
        text_fields=frozenset({CONSENT_FIELD}),
    )
    try:
        profile = await run_in_threadpool(_enroll, services, user, upload)
    finally:
        upload.close()
    return VoiceProfileStatus.of(profile, required_consent_version=settings.scryon_voice_consent_version)


@router.get(
    "/status",
    response_model=VoiceProfileStatus,
    summary="Whether the caller has a voice profile",
    responses=error_responses(404),
)
def voice_profile_status(services: Services, user: CurrentUser) -> VoiceProfileStatus:
    _require_feature(services)
    return VoiceProfileStatus.of(
        services.db.get_voice_profile(user.id),
        required_consent_version=services.settings.scryon_voice_consent_version,
    )


@router.delete(
    "",
    status_code=204,
    response_class=Response,
    summary="Delete the caller's voice profile (idempotent)",
)
def delete_voice_profile(services: Services, user: CurrentUser) -> Response:
    # pyannoteAI keeps no voiceprint of ours (it returned the blob), so deleting the row is the whole job.
    if services.db.delete_voice_profile(user.id):
        logger.info("voice profile of user %s deleted", user.id)
    return Response(status_code=204)


def _require_feature(services: ApiServices) -> None:
    settings = services.settings
    flags = EffectiveFlags.resolve(settings.flag_defaults, services.db.get_feature_flags())
    if not flags.voice_embedding or settings.pyannote_api_key is None:
        raise ApiError(404, FEATURE_NOT_AVAILABLE, "voice profiles are not enabled on this server")


def _enroll(services: ApiServices, user: ApiUser, upload: AudioUpload) -> VoiceProfile:
    settings = services.settings
    consent_version = settings.scryon_voice_consent_version
    if upload.fields.get(CONSENT_FIELD) != consent_version:
        raise ApiError(
            400,
            CONSENT_REQUIRED,
            f"the user must accept voice-profile consent version {consent_version}",
            details={"requiredConsentVersion": consent_version},
        )
    probe = AudioProbe.from_settings(settings)
    limits = {
        "minSeconds": settings.scryon_voice_sample_min_seconds,
        "maxSeconds": settings.scryon_voice_sample_max_seconds,
    }
    try:
        seconds = round(probe.decodable_seconds(upload.audio), 2)
        if seconds < settings.scryon_voice_sample_min_seconds:
            raise ApiError(
                422, AUDIO_TOO_SHORT, "the voice sample is too short", details={**limits, "seconds": seconds}
            )
        if seconds > settings.scryon_voice_sample_max_seconds:
            raise ApiError(422, AUDIO_TOO_LONG, "the voice sample is too long", details={**limits, "seconds": seconds})
        clip = probe.excerpt_wav(upload.audio, max_seconds=VOICEPRINT_MAX_AUDIO_SECONDS)
    except AudioUndecodableError:
        raise ApiError(422, AUDIO_UNDECODABLE, "the voice sample holds no decodable audio") from None
    except AudioProbeUnavailableError:
        raise ApiError(503, SERVICE_UNAVAILABLE, "the voice sample could not be measured; retry later") from None
    voiceprint = _create_voiceprint(services, user, clip)
    profile = services.db.save_voice_profile(
        user.id,
        provider=PROVIDER,
        model=settings.pyannote_model,
        embedding_json={"voiceprint": voiceprint},
        consent_version=consent_version,
        sample_duration_seconds=seconds,
    )
    logger.info("voice profile of user %s stored (%.1f s sample)", user.id, seconds)
    return profile


def _create_voiceprint(services: ApiServices, user: ApiUser, clip: bytes) -> str:
    settings = services.settings
    per_minute = settings.scryon_pyannote_requests_per_minute
    # The run workers' budget: pyannoteAI's per-minute limit is per API key, enrollment included.
    pacer = SharedRequestPacer(services.db, PROVIDER, per_minute) if per_minute else None
    try:
        with PyannoteClient.from_settings(settings, pacer=pacer) as client:
            media_url = client.upload_media(clip, f"scryon-voiceprint-{user.id}-{uuid4().hex[:12]}")
            return client.create_voiceprint(media_url)
    except PermanentProviderError as exc:
        logger.warning("voiceprint of user %s refused by %s (%s)", user.id, PROVIDER, exc.code)
        raise ApiError(
            502, PROVIDER_ERROR, "the voice provider refused the sample", details={"cause": exc.code.value}
        ) from None
    except ProviderError as exc:
        logger.warning("voiceprint of user %s not made: %s unavailable (%s)", user.id, PROVIDER, exc.code)
        raise ApiError(503, SERVICE_UNAVAILABLE, "the voice provider is unavailable; retry later") from None
