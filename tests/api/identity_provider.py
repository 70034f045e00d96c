"""Stand-ins for the identity provider, on loopback ports, with keys made here:

- ``IdentityProviderStub``, an OpenID Connect issuer: its public keys served as a JWKS, ID tokens
  signed on demand, valid or broken in one chosen way;
- ``FirebaseAccountsStub``, Google's OAuth token endpoint and Identity Toolkit's ``accounts:lookup``
  for one Firebase project, which grant access only to an assertion signed with the service account's key.
"""

from __future__ import annotations

import base64
import functools
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from scryon_dagster.adapters.identity import IDENTITY_TOOLKIT_SCOPE
from scryon_dagster.settings import FirebaseServiceAccount, IdentityProvider

ISSUER = "https://issuer.scryon.test"
AUDIENCE = "scryon-api-test"
FIRST_KEY = "key-1"
FIREBASE_PROJECT = "scryon-test"

Reply = tuple[int, dict[str, Any]]
Route = Callable[[str, dict[str, str], bytes], Reply]
"""(path, headers, body) -> (status, JSON body)"""


class LoopbackJsonServer:
    """An HTTP server on a free loopback port, in a daemon thread, answering JSON from ``route``."""

    def __init__(self, route: Route) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer(b"")

            def do_POST(self) -> None:
                self._answer(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

            def _answer(self, body: bytes) -> None:
                status, document = route(self.path, dict(self.headers), body)
                data = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, name="identity-stub", daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class IdentityProviderStub:
    def __init__(self) -> None:
        self._private_keys: dict[str, rsa.RSAPrivateKey] = {}
        self._published: list[str] = []
        self._lock = threading.Lock()
        self.key_set_fetches = 0
        self._server = LoopbackJsonServer(self._route)
        self.add_key(FIRST_KEY)
        self.publish(FIRST_KEY)

    @property
    def jwks_url(self) -> str:
        return f"{self._server.base_url}/jwks.json"

    @property
    def provider(self) -> IdentityProvider:
        return IdentityProvider(issuer=ISSUER, audience=AUDIENCE, jwks_url=self.jwks_url)

    def settings(self) -> dict[str, str]:
        """Settings overrides that point the API at this issuer."""
        return {"scryon_oidc_issuer": ISSUER, "scryon_oidc_audience": AUDIENCE, "scryon_oidc_jwks_url": self.jwks_url}

    def add_key(self, kid: str) -> None:
        self._private_keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def publish(self, *kids: str) -> None:
        """From now on the JWKS lists exactly these keys."""
        with self._lock:
            self._published = list(kids)

    def token(
        self,
        subject: str,
        *,
        kid: str = FIRST_KEY,
        signing_key: str | None = None,
        issuer: str = ISSUER,
        audience: str = AUDIENCE,
        expires_in: float = 3600,
        issued_at: float | None = None,
        email: str | None = None,
        name: str | None = None,
    ) -> str:
        """A token naming ``kid`` in its header, signed with ``signing_key`` (default: that key)."""
        claims = _claims(subject, issuer=issuer, audience=audience, expires_in=expires_in, issued_at=issued_at)
        claims.update({claim: value for claim, value in (("email", email), ("name", name)) if value is not None})
        key = self._private_keys[signing_key or kid]
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})

    def unsigned_token(self, subject: str, *, kid: str = FIRST_KEY) -> str:
        """``alg: none``: well-formed claims and a known key id, but no signature at all."""
        parts = [{"alg": "none", "typ": "JWT", "kid": kid}, _claims(subject)]
        return ".".join(_b64(json.dumps(part).encode()) for part in parts) + "."

    def close(self) -> None:
        self._server.close()

    def _route(self, path: str, headers: dict[str, str], body: bytes) -> Reply:
        with self._lock:
            self.key_set_fetches += 1
            keys = [
                {**RSAAlgorithm.to_jwk(self._private_keys[kid].public_key(), as_dict=True), "kid": kid, "use": "sig"}
                for kid in self._published
            ]
        return 200, {"keys": keys}


class FirebaseAccountsStub:
    """Firebase's user records of one project, behind Google's OAuth grant for its service account."""

    def __init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        self.service_account = FirebaseServiceAccount(
            FIREBASE_PROJECT, f"scryon-api@{FIREBASE_PROJECT}.iam.gserviceaccount.test", pem
        )
        self.records: dict[str, dict[str, Any]] = {}
        """uid -> the record's ``disabled`` and ``validSince`` (seconds, as text)"""
        self.access_tokens_granted = 0
        self.lookups = 0
        self._granted: set[str] = set()
        self._server = LoopbackJsonServer(self._route)

    @property
    def oauth_url(self) -> str:
        return f"{self._server.base_url}/token"

    @property
    def api_url(self) -> str:
        return f"{self._server.base_url}/v1"

    def close(self) -> None:
        self._server.close()

    def _route(self, path: str, headers: dict[str, str], body: bytes) -> Reply:
        if path == "/token":
            return self._grant(body)
        if path == f"/v1/projects/{FIREBASE_PROJECT}/accounts:lookup":
            if headers.get("Authorization", "").removeprefix("Bearer ") not in self._granted:
                return 401, {"error": {"status": "UNAUTHENTICATED"}}
            self.lookups += 1
            (uid,) = json.loads(body)["localId"]
            record = self.records.get(uid)
            return 200, {"users": [{"localId": uid, **record}]} if record is not None else {}
        return 404, {}

    def _grant(self, body: bytes) -> Reply:
        form = {name: values[0] for name, values in parse_qs(body.decode()).items()}
        try:
            claims = jwt.decode(
                form["assertion"], self._key.public_key(), algorithms=["RS256"], audience=self.oauth_url
            )
        except (KeyError, jwt.InvalidTokenError):
            return 400, {"error": "invalid_grant"}
        if claims["iss"] != self.service_account.client_email or claims["scope"] != IDENTITY_TOOLKIT_SCOPE:
            return 400, {"error": "invalid_grant"}
        self.access_tokens_granted += 1
        token = f"access-{self.access_tokens_granted}"
        self._granted.add(token)
        return 200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer"}


@functools.cache
def shared_identity_provider() -> IdentityProviderStub:
    """The issuer every API test trusts by default; one per test session (its server thread is a daemon)."""
    return IdentityProviderStub()


def _claims(
    subject: str,
    *,
    issuer: str = ISSUER,
    audience: str = AUDIENCE,
    expires_in: float = 3600,
    issued_at: float | None = None,
) -> dict[str, Any]:
    now = time.time()
    iat = int(issued_at if issued_at is not None else now - 60)
    return {"iss": issuer, "aud": audience, "sub": subject, "iat": iat, "exp": int(now + expires_in)}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
