"""The API-key guard and the caller's user.

``SCRYON_API_KEY`` holds one or more comma-separated keys, all accepted, so a key can be rotated
without downtime. A key arrives as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>`` and is
compared in constant time against every configured key. The key authenticates the calling service;
the user it acts for is named by ``X-User-Id`` and every call lookup is scoped to that user.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from scryon_dagster.api.errors import AUTH_INVALID, AUTH_MISSING, ApiError

bearer_scheme = HTTPBearer(auto_error=False, scheme_name="BearerAuth", description="`Authorization: Bearer <key>`")
api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="ApiKeyAuth")


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

    def dependency(self) -> Callable[..., None]:
        def require_api_key(
            bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
            api_key: Annotated[str | None, Depends(api_key_scheme)],
        ) -> None:
            presented = [value for value in (bearer.credentials if bearer else None, api_key) if value]
            if not presented:
                raise ApiError(401, AUTH_MISSING, "an API key is required", headers={"WWW-Authenticate": "Bearer"})
            if not all(self.accepts(value) for value in presented):
                raise ApiError(401, AUTH_INVALID, "the API key is not valid", headers={"WWW-Authenticate": "Bearer"})

        return require_api_key


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()
