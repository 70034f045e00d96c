"""Signed Lemonfox callback URLs and pyannoteAI webhook signatures (signed by the simulator, which signs
as pyannoteAI documents it, independently of the adapter that verifies)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

import pytest

from scryon_dagster.adapters.webhooks import (
    LEMONFOX_CALLBACK_PATH,
    WebhookVerificationError,
    build_signed_callback_url,
    key_id_for,
    verify_callback_query,
    verify_pyannote_webhook,
)
from scryon_dagster.simulator.pyannote import sign_webhook as sign_pyannote_webhook

CURRENT = "current-secret-0123456789abcdefghijklmnop"
PREVIOUS = "previous-secret-0123456789abcdefghijklmno"
NOW = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
CALL_ID = "0b7c5a52-1f0e-4c8e-9a51-3b1f6c1e2d77"


def signed_query(secret: str = CURRENT, expires_in: timedelta = timedelta(minutes=30)) -> dict[str, str]:
    url = build_signed_callback_url(
        "https://scryon.example.com/", CALL_ID, secret, key_id_for(secret), NOW + expires_in
    )
    parts = urlsplit(url)
    assert parts.path == LEMONFOX_CALLBACK_PATH
    return dict(parse_qsl(parts.query))


def test_callback_url_round_trip() -> None:
    query = signed_query()

    assert set(query) == {"callId", "exp", "kid", "sig"}
    assert "=" not in query["sig"]  # base64url without padding
    assert verify_callback_query(query, [CURRENT], now=NOW) == CALL_ID


def test_callback_with_explicit_key_ids() -> None:
    url = build_signed_callback_url("https://h.example", CALL_ID, CURRENT, "k2025", NOW + timedelta(hours=1))
    query = dict(parse_qsl(urlsplit(url).query))

    assert verify_callback_query(query, [("k2024", PREVIOUS), ("k2025", CURRENT)], now=NOW) == CALL_ID
    with pytest.raises(WebhookVerificationError, match="unknown_kid"):
        verify_callback_query(query, [("k2024", PREVIOUS)], now=NOW)


def test_rotation_accepts_urls_signed_with_the_previous_secret() -> None:
    in_flight = signed_query(secret=PREVIOUS)

    assert verify_callback_query(in_flight, [CURRENT, PREVIOUS], now=NOW) == CALL_ID
    with pytest.raises(WebhookVerificationError) as caught:
        verify_callback_query(in_flight, [CURRENT], now=NOW)
    assert caught.value.reason == "unknown_kid"


def test_expired_callback_is_rejected() -> None:
    query = signed_query(expires_in=timedelta(seconds=-1))

    with pytest.raises(WebhookVerificationError) as caught:
        verify_callback_query(query, [CURRENT], now=NOW)
    assert caught.value.reason == "expired"


@pytest.mark.parametrize(
    ("name", "value"),
    [("callId", "another-call"), ("exp", "9999999999"), ("sig", "AAAA"), ("extra", "1")],
)
def test_tampered_callback_is_rejected(name: str, value: str) -> None:
    query = {**signed_query(), name: value}

    with pytest.raises(WebhookVerificationError) as caught:
        verify_callback_query(query, [CURRENT], now=NOW)
    assert caught.value.reason == "bad_signature"


@pytest.mark.parametrize("missing", ["callId", "exp", "kid", "sig"])
def test_callback_missing_a_parameter_is_rejected(missing: str) -> None:
    query = signed_query()
    del query[missing]

    with pytest.raises(WebhookVerificationError) as caught:
        verify_callback_query(query, [CURRENT], now=NOW)
    assert caught.value.reason == "missing_parameter"


def test_callback_with_non_ascii_key_id_is_an_unknown_key() -> None:
    with pytest.raises(WebhookVerificationError, match="unknown_kid"):
        verify_callback_query({**signed_query(), "kid": "clé"}, [CURRENT], now=NOW)


def test_callback_with_malformed_expiry_is_rejected() -> None:
    with pytest.raises(WebhookVerificationError, match="malformed_expiry"):
        verify_callback_query({**signed_query(), "exp": "tomorrow"}, [CURRENT], now=NOW)


def test_callback_url_requires_an_absolute_base() -> None:
    with pytest.raises(ValueError, match="absolute"):
        build_signed_callback_url("scryon.example.com", CALL_ID, CURRENT, "k", NOW)


BODY = b'{"jobId":"j-1","status":"succeeded","output":{"diarization":[]}}'
TIMESTAMP = int(NOW.timestamp())


def hex_signature(body: bytes, secret: str, timestamp: int) -> str:
    return hmac.new(secret.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()


def test_pyannote_signature_in_base64() -> None:
    signature = sign_pyannote_webhook(BODY, CURRENT, TIMESTAMP)

    assert base64.b64decode(signature)  # the documented encoding
    assert verify_pyannote_webhook(BODY, str(TIMESTAMP), signature, [CURRENT], now=NOW)


def test_pyannote_signature_in_hex() -> None:
    signature = hex_signature(BODY, CURRENT, TIMESTAMP)

    assert verify_pyannote_webhook(BODY, str(TIMESTAMP), signature, [CURRENT], now=NOW)
    assert verify_pyannote_webhook(BODY, str(TIMESTAMP), signature.upper(), [CURRENT], now=NOW)


def test_pyannote_signature_in_unpadded_base64url() -> None:
    signature = sign_pyannote_webhook(BODY, CURRENT, TIMESTAMP).replace("+", "-").replace("/", "_").rstrip("=")

    assert verify_pyannote_webhook(BODY, str(TIMESTAMP), signature, [CURRENT], now=NOW)


@pytest.mark.parametrize("skew", [-301, 301])
def test_pyannote_timestamp_outside_five_minutes_is_rejected(skew: int) -> None:
    timestamp = TIMESTAMP + skew
    signature = sign_pyannote_webhook(BODY, CURRENT, timestamp)

    assert not verify_pyannote_webhook(BODY, str(timestamp), signature, [CURRENT], now=NOW)


@pytest.mark.parametrize("skew", [-300, 300])
def test_pyannote_timestamp_at_the_edge_is_accepted(skew: int) -> None:
    timestamp = TIMESTAMP + skew
    signature = sign_pyannote_webhook(BODY, CURRENT, timestamp)

    assert verify_pyannote_webhook(BODY, str(timestamp), signature, [CURRENT], now=NOW)


def test_pyannote_tampered_body_or_timestamp_is_rejected() -> None:
    signature = sign_pyannote_webhook(BODY, CURRENT, TIMESTAMP)

    assert not verify_pyannote_webhook(BODY.replace(b"j-1", b"j-2"), str(TIMESTAMP), signature, [CURRENT], now=NOW)
    assert not verify_pyannote_webhook(BODY, str(TIMESTAMP + 1), signature, [CURRENT], now=NOW)


def test_pyannote_rotated_secrets() -> None:
    signed_with_previous = sign_pyannote_webhook(BODY, PREVIOUS, TIMESTAMP)

    assert verify_pyannote_webhook(BODY, str(TIMESTAMP), signed_with_previous, [CURRENT, PREVIOUS], now=NOW)
    assert not verify_pyannote_webhook(BODY, str(TIMESTAMP), signed_with_previous, [CURRENT], now=NOW)


@pytest.mark.parametrize(
    ("timestamp", "signature"),
    [
        (None, "x"),
        (str(TIMESTAMP), None),
        ("", "x"),
        ("12.5", "x"),
        ("\u0661\u0662", "x"),
        (str(TIMESTAMP), "not base64!"),
        (str(TIMESTAMP), ""),
    ],
)
def test_pyannote_missing_or_garbled_headers_are_rejected(timestamp: str | None, signature: str | None) -> None:
    assert not verify_pyannote_webhook(BODY, timestamp, signature, [CURRENT], now=NOW)


def test_pyannote_without_configured_secrets_rejects_everything() -> None:
    signature = sign_pyannote_webhook(BODY, CURRENT, TIMESTAMP)

    assert not verify_pyannote_webhook(BODY, str(TIMESTAMP), signature, [], now=NOW)
