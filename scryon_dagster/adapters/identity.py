"""ID tokens (Firebase Authentication or any OpenID Connect issuer) verified against the issuer's
published public keys (JWKS) with PyJWT.

The key set is cached; a token signed with a key id the cache does not know makes one refetch (at
most one per cool-down, so forged key ids cannot make this process hammer the issuer), which is how
a rotated key is picked up without a restart. A key the issuer stops publishing stops verifying once
the cached set expires. Only RS256 is accepted: Firebase and the common OIDC issuers sign with it, and
a fixed list keeps ``alg: none`` and algorithm-confusion tokens out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import jwt
from jwt import PyJWKClient

from scryon_dagster.settings import IdentityProvider

ALGORITHMS = ["RS256"]
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub"]
CLOCK_SKEW_SECONDS = 10
KEY_SET_CACHE_SECONDS = 300.0
UNKNOWN_KEY_REFETCH_COOLDOWN_SECONDS = 30.0
KEY_SET_TIMEOUT_SECONDS = 5.0
SUBJECT_PATTERN = re.compile(r"[\x21-\x7e]{1,128}")
"""Printable ASCII without spaces, as Firebase uids and OIDC subjects are; the users row is keyed by it."""


class InvalidIdToken(Exception):
    """The token is malformed, forged, expired or meant for someone else. ``reason`` is a short code
    naming the failed check, safe to log (it never quotes the token or its claims)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class IdentityProviderUnavailable(Exception):
    """The issuer's key set could not be fetched: the token may well be valid, so this is not a 401."""


@dataclass(frozen=True)
class VerifiedIdentity:
    """Who a valid token names. ``email`` and ``name`` are personal data: kept out of ``repr`` (logs)."""

    subject: str
    email: str | None = field(default=None, repr=False)
    name: str | None = field(default=None, repr=False)


class IdTokenVerifier:
    """Checks signature, algorithm, expiry, issuer and audience of ID tokens from one issuer."""

    def __init__(
        self,
        provider: IdentityProvider,
        *,
        cache_seconds: float = KEY_SET_CACHE_SECONDS,
        refetch_cooldown_seconds: float = UNKNOWN_KEY_REFETCH_COOLDOWN_SECONDS,
        timeout_seconds: float = KEY_SET_TIMEOUT_SECONDS,
    ) -> None:
        self.provider = provider
        self._keys = PyJWKClient(
            provider.jwks_url,
            cache_jwk_set=True,
            lifespan=cache_seconds,
            cooldown_duration=refetch_cooldown_seconds,
            timeout=timeout_seconds,
        )

    def verify(self, token: str) -> VerifiedIdentity:
        """The identity the token names; InvalidIdToken or IdentityProviderUnavailable otherwise.
        Blocking (it may fetch the key set): call it from a worker thread."""
        claims = self._verified_claims(token, self._signing_key(token))
        subject = claims["sub"]
        if not isinstance(subject, str) or not SUBJECT_PATTERN.fullmatch(subject):
            raise InvalidIdToken("subject")
        return VerifiedIdentity(subject=subject, email=_text_claim(claims, "email"), name=_text_claim(claims, "name"))

    def _signing_key(self, token: str) -> jwt.PyJWK:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise InvalidIdToken("malformed") from None
        # Checked before any key lookup: an unsigned or differently signed token never reaches the issuer.
        if header.get("alg") not in ALGORITHMS:
            raise InvalidIdToken("algorithm")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidIdToken("key_id_missing")
        try:
            return self._keys.get_signing_key(kid)
        except jwt.PyJWKClientConnectionError:
            raise IdentityProviderUnavailable("the issuer's key set could not be fetched") from None
        except jwt.PyJWKClientError:
            raise InvalidIdToken("key_id_unknown") from None
        except jwt.PyJWKSetError:
            raise IdentityProviderUnavailable("the issuer's key set holds no usable key") from None

    def _verified_claims(self, token: str, key: jwt.PyJWK) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                key,
                algorithms=ALGORITHMS,
                audience=self.provider.audience,
                issuer=self.provider.issuer,
                leeway=CLOCK_SKEW_SECONDS,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidIdToken("expired") from None
        except jwt.InvalidAudienceError:
            raise InvalidIdToken("audience") from None
        except jwt.InvalidIssuerError:
            raise InvalidIdToken("issuer") from None
        except jwt.InvalidSignatureError:
            raise InvalidIdToken("signature") from None
        except (jwt.InvalidTokenError, jwt.InvalidKeyError):
            raise InvalidIdToken("claims") from None


def _text_claim(claims: dict[str, Any], name: str) -> str | None:
    value = claims.get(name)
    return value if isinstance(value, str) and value else None
