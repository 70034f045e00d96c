"""Signing and verifying provider deliveries.

Lemonfox signs nothing, so its callback URL is a capability we sign ourselves:
``{public_base_url}/webhooks/lemonfox?callId=..&exp=..&kid=..&sig=..`` where ``sig`` is the base64url
HMAC-SHA256 of the canonical query (every parameter except ``sig``, sorted, percent-encoded).
pyannoteAI signs ``v0:{timestamp}:{raw body}`` with HMAC-SHA256 (base64 documented, hex seen in one
sample: both accepted). Several secrets are accepted at once so a secret can be rotated without
failing deliveries already in flight. Comparisons are constant-time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from urllib.parse import quote, urlencode

LEMONFOX_CALLBACK_PATH = "/webhooks/lemonfox"
PYANNOTE_TOLERANCE_SECONDS = 300
_SIGNED_QUERY_PARAMETERS = ("callId", "exp", "kid")


class WebhookVerificationError(ValueError):
    """A delivery that must be rejected; ``reason`` is a short stable code safe to log."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"webhook rejected: {reason}")
        self.reason = reason


def key_id_for(secret: str) -> str:
    """A short public id for a secret, so a signed URL names the key that signed it."""
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


def canonical_callback_query(parameters: Mapping[str, str]) -> str:
    pairs = sorted((key, value) for key, value in parameters.items() if key != "sig")
    return "&".join(f"{quote(key, safe='')}={quote(value, safe='')}" for key, value in pairs)


def _callback_signature(parameters: Mapping[str, str], secret: str) -> str:
    digest = hmac.new(secret.encode(), canonical_callback_query(parameters).encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _unix_seconds(moment: datetime | float | None) -> float:
    if moment is None:
        return time.time()
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            raise ValueError("datetimes must be timezone-aware")
        return moment.timestamp()
    return float(moment)


def build_signed_callback_url(
    public_base_url: str, call_id: str, secret: str, kid: str, expires_at: datetime | float
) -> str:
    """The Lemonfox ``callback_url`` for one call, valid until ``expires_at``."""
    if not public_base_url.startswith(("https://", "http://")):
        raise ValueError("public_base_url must be an absolute http(s) URL")
    if not call_id or not kid or not secret:
        raise ValueError("call_id, kid and secret are required")
    parameters = {"callId": call_id, "exp": str(int(_unix_seconds(expires_at))), "kid": kid}
    parameters["sig"] = _callback_signature(parameters, secret)
    return f"{public_base_url.rstrip('/')}{LEMONFOX_CALLBACK_PATH}?{urlencode(parameters)}"


def verify_callback_query(
    query: Mapping[str, str],
    secrets: Sequence[tuple[str, str]] | Sequence[str],
    now: datetime | float | None = None,
) -> str:
    """Return the call id of a genuine, unexpired callback URL; raise :class:`WebhookVerificationError`.

    ``secrets`` are ``(kid, secret)`` pairs, or bare secrets whose kid is :func:`key_id_for`.
    """
    if any(not query.get(name) for name in (*_SIGNED_QUERY_PARAMETERS, "sig")):
        raise WebhookVerificationError("missing_parameter")
    try:
        expires_at = int(query["exp"])
    except ValueError:
        raise WebhookVerificationError("malformed_expiry") from None
    if expires_at < _unix_seconds(now):
        raise WebhookVerificationError("expired")
    keyed = [(entry if isinstance(entry, tuple) else (key_id_for(entry), entry)) for entry in secrets]
    candidates = [secret for kid, secret in keyed if hmac.compare_digest(kid.encode(), query["kid"].encode())]
    if not candidates:
        raise WebhookVerificationError("unknown_kid")
    signed = {key: value for key, value in query.items() if key != "sig"}
    presented = query["sig"].rstrip("=").encode()
    if not any(hmac.compare_digest(presented, _callback_signature(signed, s).encode()) for s in candidates):
        raise WebhookVerificationError("bad_signature")
    return query["callId"]


def _pyannote_digest(raw_body: bytes, secret: str, timestamp: str) -> bytes:
    return hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + raw_body, hashlib.sha256).digest()


def _decode_signature(signature: str) -> bytes | None:
    value = signature.strip().removeprefix("v0=")
    if len(value) == 64:
        try:
            return bytes.fromhex(value)
        except ValueError:
            pass
    try:
        padded = value + "=" * (-len(value) % 4)
        decoded = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        return None
    return decoded if len(decoded) == hashlib.sha256().digest_size else None


def verify_pyannote_webhook(
    raw_body: bytes,
    timestamp_header: str | None,
    signature_header: str | None,
    secrets: Sequence[str],
    now: datetime | float | None = None,
) -> bool:
    """True when the delivery is signed by any secret and its timestamp is within ±300 s of ``now``.

    Pass the body exactly as received, before any JSON parsing.
    """
    if not timestamp_header or not signature_header or not secrets:
        return False
    timestamp = timestamp_header.strip()
    if not (timestamp.isascii() and timestamp.isdigit()):
        return False
    if abs(_unix_seconds(now) - int(timestamp)) > PYANNOTE_TOLERANCE_SECONDS:
        return False
    presented = _decode_signature(signature_header)
    if presented is None:
        return False
    # Evaluate every secret so timing does not reveal which one matched.
    matches = [hmac.compare_digest(presented, _pyannote_digest(raw_body, s, timestamp)) for s in secrets]
    return any(matches)
