"""ID tokens (Firebase Authentication or any OpenID Connect issuer) verified against the issuer's
published public keys (JWKS) with PyJWT, and, given a Firebase project's service account, checked
against the user's Firebase record (disabled, sessions revoked).

The key set is cached; a token signed with a key id the cache does not know makes one refetch (at
most one per cool-down, so forged key ids cannot make this process hammer the issuer), which is how
a rotated key is picked up without a restart. A key the issuer stops publishing stops verifying once
the cached set expires. Only RS256 is accepted: Firebase and the common OIDC issuers sign with it, and
a fixed list keeps ``alg: none`` and algorithm-confusion tokens out.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
from jwt import PyJWKClient

from scryon_dagster.settings import FirebaseServiceAccount, IdentityProvider

ALGORITHMS = ["RS256"]
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub"]
CLOCK_SKEW_SECONDS = 10
KEY_SET_CACHE_SECONDS = 300.0
UNKNOWN_KEY_REFETCH_COOLDOWN_SECONDS = 30.0
IDENTITY_PROVIDER_TIMEOUT_SECONDS = 5.0
SUBJECT_PATTERN = re.compile(r"[\x21-\x7e]{1,128}")
"""Printable ASCII without spaces, as Firebase uids and OIDC subjects are; the users row is keyed by it."""
GOOGLE_OAUTH_URL = "https://oauth2.googleapis.com/token"
IDENTITY_TOOLKIT_URL = "https://identitytoolkit.googleapis.com/v1"
IDENTITY_TOOLKIT_SCOPE = "https://www.googleapis.com/auth/identitytoolkit"
ACCOUNT_CACHE_SECONDS = 60.0
MAX_CACHED_ACCOUNTS = 10_000
ACCESS_TOKEN_RENEWAL_MARGIN_SECONDS = 60.0


class InvalidIdToken(Exception):
    """The token is malformed, forged, expired or meant for someone else. ``reason`` is a short code
    naming the failed check, safe to log (it never quotes the token or its claims)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class IdentityProviderUnavailable(Exception):
    """The issuer's key set (or Firebase's user record) could not be read: the token may well be
    valid, so this is not a 401."""


class AccountDisabled(Exception):
    """The token is valid, but the identity provider has disabled its user."""


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
        accounts: FirebaseAccounts | None = None,
        cache_seconds: float = KEY_SET_CACHE_SECONDS,
        refetch_cooldown_seconds: float = UNKNOWN_KEY_REFETCH_COOLDOWN_SECONDS,
        timeout_seconds: float = IDENTITY_PROVIDER_TIMEOUT_SECONDS,
    ) -> None:
        self.provider = provider
        self._accounts = accounts
        self._keys = PyJWKClient(
            provider.jwks_url,
            cache_jwk_set=True,
            lifespan=cache_seconds,
            cooldown_duration=refetch_cooldown_seconds,
            timeout=timeout_seconds,
        )

    def verify(self, token: str) -> VerifiedIdentity:
        """The identity the token names; InvalidIdToken, AccountDisabled or IdentityProviderUnavailable
        otherwise. Blocking (it may fetch the key set): call it from a worker thread."""
        claims = self._verified_claims(token, self._signing_key(token))
        subject = claims["sub"]
        if not isinstance(subject, str) or not SUBJECT_PATTERN.fullmatch(subject):
            raise InvalidIdToken("subject")
        if self._accounts is not None:
            self._accounts.check(subject, issued_at=int(claims["iat"]))
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


@dataclass(frozen=True)
class _AccountState:
    disabled: bool
    valid_since: int
    """Seconds since the epoch; tokens issued earlier are revoked."""


class FirebaseAccounts:
    """A Firebase project's user records, read with its service account as the Admin SDK's
    ``verify_id_token(check_revoked=True)`` reads them: is the user disabled, and since when are their
    tokens valid (revoking a user's sessions moves that forward). Answers are cached per user for a
    minute, so a disabled or revoked user is refused within a minute rather than when the token expires."""

    def __init__(
        self,
        account: FirebaseServiceAccount,
        *,
        oauth_url: str = GOOGLE_OAUTH_URL,
        api_url: str = IDENTITY_TOOLKIT_URL,
        cache_seconds: float = ACCOUNT_CACHE_SECONDS,
        timeout_seconds: float = IDENTITY_PROVIDER_TIMEOUT_SECONDS,
    ) -> None:
        self._account = account
        self._oauth_url = oauth_url
        self._lookup_url = f"{api_url}/projects/{account.project_id}/accounts:lookup"
        self._cache_seconds = cache_seconds
        self._http = httpx.Client(timeout=timeout_seconds)
        self._lock = threading.Lock()
        self._access_token: tuple[str, float] | None = None
        self._states: dict[str, tuple[float, _AccountState]] = {}

    def check(self, uid: str, *, issued_at: int) -> None:
        state = self._state(uid)
        if state.disabled:
            raise AccountDisabled
        if issued_at < state.valid_since:
            raise InvalidIdToken("revoked")

    def _state(self, uid: str) -> _AccountState:
        now = time.monotonic()
        with self._lock:
            cached = self._states.get(uid)
        if cached is not None and cached[0] > now:
            return cached[1]
        state = self._lookup(uid)
        with self._lock:
            if len(self._states) >= MAX_CACHED_ACCOUNTS:
                self._states = {key: entry for key, entry in self._states.items() if entry[0] > now}
                if len(self._states) >= MAX_CACHED_ACCOUNTS:
                    self._states.clear()
            self._states[uid] = (now + self._cache_seconds, state)
        return state

    def _lookup(self, uid: str) -> _AccountState:
        try:
            response = self._http.post(
                self._lookup_url, json={"localId": [uid]}, headers={"Authorization": f"Bearer {self._bearer()}"}
            )
            response.raise_for_status()
            users = response.json().get("users") or []
            if not users:
                raise InvalidIdToken("account_deleted")
            return _AccountState(
                disabled=bool(users[0].get("disabled", False)), valid_since=int(users[0].get("validSince", 0))
            )
        except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise IdentityProviderUnavailable(f"Firebase account lookup failed ({type(exc).__name__})") from None

    def _bearer(self) -> str:
        """An OAuth access token of the service account (JWT bearer grant), renewed before it expires."""
        with self._lock:
            if self._access_token and self._access_token[1] > time.monotonic() + ACCESS_TOKEN_RENEWAL_MARGIN_SECONDS:
                return self._access_token[0]
        now = int(time.time())
        assertion = jwt.encode(
            {
                "iss": self._account.client_email,
                "scope": IDENTITY_TOOLKIT_SCOPE,
                "aud": self._oauth_url,
                "iat": now,
                "exp": now + 3600,
            },
            self._account.private_key_pem,
            algorithm="RS256",
        )
        response = self._http.post(
            self._oauth_url, data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}
        )
        response.raise_for_status()
        body = response.json()
        token = str(body["access_token"])
        with self._lock:
            self._access_token = (token, time.monotonic() + float(body.get("expires_in", 3600)))
        return token


def _text_claim(claims: dict[str, Any], name: str) -> str | None:
    value = claims.get(name)
    return value if isinstance(value, str) and value else None
