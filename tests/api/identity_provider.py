"""A stand-in OpenID Connect issuer: RSA keys made here, their public halves served as a JWKS on a
loopback port, and ID tokens signed on demand, valid or broken in one chosen way."""

from __future__ import annotations

import base64
import functools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from scryon_dagster.settings import IdentityProvider

ISSUER = "https://issuer.scryon.test"
AUDIENCE = "scryon-api-test"
FIRST_KEY = "key-1"


class IdentityProviderStub:
    def __init__(self) -> None:
        self._private_keys: dict[str, rsa.RSAPrivateKey] = {}
        self._published: list[str] = []
        self._lock = threading.Lock()
        self.key_set_fetches = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, name="jwks-stub", daemon=True)
        self._thread.start()
        self.add_key(FIRST_KEY)
        self.publish(FIRST_KEY)

    @property
    def jwks_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/jwks.json"

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
        email: str | None = None,
        name: str | None = None,
    ) -> str:
        """A token naming ``kid`` in its header, signed with ``signing_key`` (default: that key)."""
        claims = _claims(subject, issuer=issuer, audience=audience, expires_in=expires_in)
        claims.update({claim: value for claim, value in (("email", email), ("name", name)) if value is not None})
        key = self._private_keys[signing_key or kid]
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})

    def unsigned_token(self, subject: str, *, kid: str = FIRST_KEY) -> str:
        """``alg: none``: well-formed claims and a known key id, but no signature at all."""
        parts = [{"alg": "none", "typ": "JWT", "kid": kid}, _claims(subject)]
        return ".".join(_b64(json.dumps(part).encode()) for part in parts) + "."

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _jwks(self) -> bytes:
        with self._lock:
            self.key_set_fetches += 1
            keys = [
                {**RSAAlgorithm.to_jwk(self._private_keys[kid].public_key(), as_dict=True), "kid": kid, "use": "sig"}
                for kid in self._published
            ]
        return json.dumps({"keys": keys}).encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = stub._jwks()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@functools.cache
def shared_identity_provider() -> IdentityProviderStub:
    """The issuer every API test trusts by default; one per test session (its server thread is a daemon)."""
    return IdentityProviderStub()


def _claims(
    subject: str, *, issuer: str = ISSUER, audience: str = AUDIENCE, expires_in: float = 3600
) -> dict[str, Any]:
    now = time.time()
    return {"iss": issuer, "aud": audience, "sub": subject, "iat": int(now) - 60, "exp": int(now + expires_in)}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
