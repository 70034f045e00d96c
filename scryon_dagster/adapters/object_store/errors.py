"""Object-store errors, and the key form that is safe to put in them (and in logs)."""

from __future__ import annotations

import re

_LOGGABLE_SEGMENT = re.compile(r"[a-z]+(\.[a-z]+)?|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class ObjectStoreError(Exception):
    """Base of every object-store failure."""


class InvalidObjectKeyError(ObjectStoreError, ValueError):
    """The key or prefix is malformed or would escape the store."""


class ObjectNotFoundError(ObjectStoreError):
    def __init__(self, key: str) -> None:
        super().__init__(f"object not found: {loggable_key(key)}")
        self.key = key


class ObjectTooLargeError(ObjectStoreError):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"object exceeds the limit of {max_bytes} bytes")
        self.max_bytes = max_bytes


class ObjectStoreUnavailableError(ObjectStoreError):
    """The bucket or directory cannot be reached or used (network, credentials, permissions).

    ``transient`` is false when only a configuration fix helps (bad credentials, a missing bucket):
    stores retry only transient unavailability.
    """

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


def loggable_key(key: str) -> str:
    """``key`` with every segment that is neither a UUID nor a plain lowercase word masked."""
    return "/".join(segment if _LOGGABLE_SEGMENT.fullmatch(segment) else "<name>" for segment in key.split("/"))
