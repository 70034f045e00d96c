"""Who the caller of a calls route is.

A user is who a verified ID token says (``Authorization: Bearer <token>`` from the configured
identity provider: Firebase, or any OpenID Connect issuer), never what a header claims. The user row
is found or created from the token's subject, email and name; a user disabled here (``users.disabled``)
or, with a Firebase service account, in Firebase is refused (403).

``SCRYON_API_KEY`` holds keys of service callers (one or more, comma-separated, all accepted, so a
key rotates without downtime), sent as ``X-API-Key: <key>``, ``X-Scryon-Api-Key: <key>`` (the
reference's header) or ``Authorization: Bearer <key>`` and compared in constant time. A key alone
names no user. Only in trusted-service mode (``SCRYON_API_TRUSTED_SERVICE=true``, off by default) may
a key's caller act for the user named in ``X-User-Id``. Without any identity provider, local-dev mode
acts for the fixed ``local-dev`` user.

Which credentials an app reads is fixed when it starts; the router dependency declares exactly
those, so the OpenAPI document lists them.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Callable, Sequence
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from scryon_dagster.adapters.db.api_queries import ApiQueries, ApiUser
from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.adapters.identity import (
    AccountDisabled,
    FirebaseAccounts,
    IdentityProviderUnavailable,
    IdTokenVerifier,
    InvalidIdToken,
)
from scryon_dagster.api.errors import (
    AUTH_DISABLED,
    AUTH_INVALID,
    AUTH_MISSING,
    SERVICE_UNAVAILABLE,
    VALIDATION_FAILED,
    ApiError,
)
from scryon_dagster.settings import Settings

logger = logging.getLogger(__name__)

LOCAL_DEV_USER = "local-dev"
USER_ID_PATTERN = r"^[\x21-\x7e]{1,128}$"
"""Printable ASCII without spaces: Firebase uids, OIDC subjects, emails, UUIDs."""
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


class ApiConfigurationError(ValueError):
    """The API cannot start as configured; the message names the variable."""


class ApiKeyGuard:
    """Accepts any configured key; each comparison takes the same time whatever the key."""

    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ApiConfigurationError("SCRYON_API_KEY must hold at least one key")
        # Comparing fixed-length digests keeps the key lengths out of the timing as well.
        self._digests = [_digest(key) for key in keys]

    def accepts(self, presented: str) -> bool:
        candidate = _digest(presented)
        matches = [hmac.compare_digest(candidate, digest) for digest in self._digests]
        return any(matches)


class Authenticator:
    """Resolves a request's credentials to the ``users`` row it acts for, or refuses it."""

    def __init__(
        self,
        db: CallDatabase,
        *,
        verifier: IdTokenVerifier | None,
        api_keys: list[str],
        trusted_service: bool,
        local_dev: bool,
    ) -> None:
        self._queries = ApiQueries(db)
        self._verifier = verifier
        self._keys = ApiKeyGuard(api_keys) if api_keys else None
        self._trusted_service = trusted_service and self._keys is not None
        # The reference's shortcut: only while no identity provider is configured.
        self._local_dev = local_dev and verifier is None

    @classmethod
    def from_settings(
        cls, settings: Settings, db: CallDatabase, *, local_dev: bool, verifier: IdTokenVerifier | None = None
    ) -> Authenticator:
        """The configured authenticator; ApiConfigurationError when no caller could ever name a user."""
        provider = settings.identity_provider
        if verifier is None and provider is not None:
            account = settings.firebase_service_account
            verifier = IdTokenVerifier(provider, accounts=FirebaseAccounts(account) if account else None)
        keys = settings.api_keys
        if verifier is None and not local_dev:
            if not keys:
                raise ApiConfigurationError(
                    "neither an identity provider (FIREBASE_PROJECT_ID, or SCRYON_OIDC_ISSUER, SCRYON_OIDC_AUDIENCE "
                    "and SCRYON_OIDC_JWKS_URL) nor SCRYON_API_KEY is set; set one, or on a developer's machine "
                    "start with `scryon-dagster api --local-dev` (or SCRYON_API_LOCAL_DEV=true)"
                )
            if not settings.scryon_api_trusted_service:
                raise ApiConfigurationError(
                    "SCRYON_API_KEY alone names no user: set an identity provider (FIREBASE_PROJECT_ID or "
                    "SCRYON_OIDC_*), or SCRYON_API_TRUSTED_SERVICE=true when only a trusted backend calls the API"
                )
        return cls(
            db,
            verifier=verifier,
            api_keys=keys,
            trusted_service=settings.scryon_api_trusted_service,
            local_dev=local_dev,
        )

    def describe(self) -> str:
        """The mode, for the start-up log line: no keys, no issuer secrets."""
        parts = [f"ID tokens from {self._verifier.provider.issuer}" if self._verifier else "no identity provider"]
        if self._keys:
            parts.append("API keys naming users (trusted service)" if self._trusted_service else "service API keys")
        if self._local_dev:
            parts.append(f"local-dev user {LOCAL_DEV_USER!r}")
        return ", ".join(parts)

    @property
    def open_to_anyone(self) -> bool:
        return self._local_dev and self._keys is None

    def dependency(self) -> Callable[..., None]:
        """The calls router's dependency: stores the caller's user as ``request.state.user``."""
        bearer_scheme = HTTPBearer(
            auto_error=False,
            scheme_name="BearerAuth",
            bearerFormat="JWT" if self._verifier else None,
            description=_bearer_description(tokens=self._verifier is not None, keys=self._keys is not None),
        )
        bearer_credential: Any = Depends(bearer_scheme) if self._verifier or self._keys else Depends(_undeclared)
        api_key_credential: Any = self._key_header("X-API-Key", "ApiKeyAuth")
        scryon_api_key_credential: Any = self._key_header("X-Scryon-Api-Key", "ScryonApiKeyAuth")
        named_user_header: Any = Depends(_named_user) if self._trusted_service else Depends(_undeclared)

        def authenticate(
            request: Request,
            bearer: HTTPAuthorizationCredentials | None = bearer_credential,
            api_key: str | None = api_key_credential,
            scryon_api_key: str | None = scryon_api_key_credential,
            named_user: str | None = named_user_header,
        ) -> None:
            presented = [key for key in (api_key, scryon_api_key) if key is not None]
            request.state.user = self.user_for(bearer.credentials if bearer else None, presented, named_user)

        return authenticate

    def user_for(self, bearer: str | None, api_keys: Sequence[str], named_user: str | None) -> ApiUser:
        """The user the credentials stand for (``api_keys``: the keys sent in the key headers, each of
        which must be valid). Blocking (database, maybe the issuer's key set)."""
        if any(not self._is_key(key) for key in api_keys):
            raise ApiError(401, AUTH_INVALID, "the API key is not valid", headers=_CHALLENGE)
        bearer_is_key = bearer is not None and self._is_key(bearer)
        if bearer is not None and not bearer_is_key:
            if self._verifier is None:
                raise ApiError(401, AUTH_INVALID, "the API key is not valid", headers=_CHALLENGE)
            return self._token_user(self._verifier, bearer)
        service_caller = bearer_is_key or bool(api_keys)
        if self._keys is not None and not service_caller:
            raise ApiError(401, AUTH_MISSING, "credentials are required", headers=_CHALLENGE)
        if service_caller and self._trusted_service:
            if named_user is None:
                raise ApiError(400, VALIDATION_FAILED, "the X-User-Id header is required")
            if not re.fullmatch(USER_ID_PATTERN, named_user):
                raise ApiError(400, VALIDATION_FAILED, "X-User-Id: printable ASCII without spaces, 1 to 128 characters")
            return self._signed_in(named_user)
        if self._local_dev:
            return self._signed_in(LOCAL_DEV_USER)
        message = "an API key names no user: send the user's ID token" if service_caller else "an ID token is required"
        raise ApiError(401, AUTH_MISSING, message, headers=_CHALLENGE)

    def _key_header(self, name: str, scheme_name: str) -> Any:
        """A key header, declared only when keys are configured."""
        if self._keys is None:
            return Depends(_undeclared)
        return Depends(APIKeyHeader(name=name, auto_error=False, scheme_name=scheme_name))

    def _is_key(self, presented: str) -> bool:
        return self._keys is not None and self._keys.accepts(presented)

    def _token_user(self, verifier: IdTokenVerifier, token: str) -> ApiUser:
        try:
            identity = verifier.verify(token)
        except InvalidIdToken as exc:
            logger.info("ID token refused (%s)", exc.reason)
            raise ApiError(401, AUTH_INVALID, "the ID token is not valid", headers=_CHALLENGE) from None
        except AccountDisabled:
            raise ApiError(403, AUTH_DISABLED, "this user is disabled") from None
        except IdentityProviderUnavailable:
            logger.warning("ID token not checked: the identity provider is unreachable")
            raise ApiError(503, SERVICE_UNAVAILABLE, "the identity provider is unavailable; retry later") from None
        return self._signed_in(identity.subject, email=identity.email, display_name=identity.name)

    def _signed_in(
        self, external_user_id: str, *, email: str | None = None, display_name: str | None = None
    ) -> ApiUser:
        user = self._queries.sign_in(external_user_id, email=email, display_name=display_name)
        if user.disabled:
            raise ApiError(403, AUTH_DISABLED, "this user is disabled")
        return user


def _undeclared() -> None:
    """Stands in for a credential this configuration does not read (and the document does not list)."""


def _named_user(
    x_user_id: Annotated[
        str | None,
        # The pattern is documented but checked in user_for, after the key: FastAPI would skip the
        # whole authentication on a malformed header and answer 400 to a caller with no key at all.
        Header(
            description="Trusted-service mode: the user an API-key caller acts for.",
            json_schema_extra={"pattern": USER_ID_PATTERN},
        ),
    ] = None,
) -> str | None:
    return x_user_id


def _bearer_description(*, tokens: bool, keys: bool) -> str:
    forms = (["an ID token of the identity provider"] if tokens else []) + (["a service's API key"] if keys else [])
    return "`Authorization: Bearer <credential>`: " + " or ".join(forms)


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()
