"""Object storage: S3-compatible buckets, a local directory, and an in-memory fake, all alike
(``s3``, ``local``, ``memory``; the key rules and base class in ``base``, ``errors``, ``retry``).

The three stores accept the same keys, return the same results and raise the same errors, so code
and tests written against one hold for the others. Keys come from ``domain.storage_keys``; this module
only checks that a key is well formed (no empty, ``.`` or ``..`` segments, no leading ``/``).

Error messages never carry the file-name part of a key: TEMP_AUDIO keys end with the uploaded file
name, which can hold a contact's name or number. The exception's ``key`` attribute keeps it whole.

Transient trouble (a network outage, 5xx, throttling, a storage volume that is briefly gone) is retried
with bounded exponential backoff for up to ``retry_seconds`` (``OBJECT_STORAGE_RETRY_SECONDS``), then
raised as ObjectStoreUnavailableError. ObjectNotFoundError means the object is truly absent, never
that the bucket or directory could not be reached.
"""

from __future__ import annotations

from pydantic import SecretStr

from scryon_dagster.adapters.object_store.base import (
    DEFAULT_PRESIGN_SECONDS,
    MAX_KEY_BYTES,
    MAX_PRESIGN_SECONDS,
    ObjectInfo,
    ObjectStore,
    validate_key,
    validate_prefix,
)
from scryon_dagster.adapters.object_store.errors import (
    InvalidObjectKeyError,
    ObjectNotFoundError,
    ObjectStoreError,
    ObjectStoreUnavailableError,
    ObjectTooLargeError,
    loggable_key,
)
from scryon_dagster.adapters.object_store.local import LocalDirectoryStore
from scryon_dagster.adapters.object_store.memory import InMemoryObjectStore
from scryon_dagster.adapters.object_store.s3 import S3ObjectStore
from scryon_dagster.settings import Settings, StorageProvider

__all__ = [
    "DEFAULT_PRESIGN_SECONDS",
    "MAX_KEY_BYTES",
    "MAX_PRESIGN_SECONDS",
    "InMemoryObjectStore",
    "InvalidObjectKeyError",
    "LocalDirectoryStore",
    "ObjectInfo",
    "ObjectNotFoundError",
    "ObjectStore",
    "ObjectStoreError",
    "ObjectStoreUnavailableError",
    "ObjectTooLargeError",
    "S3ObjectStore",
    "build_object_store",
    "loggable_key",
    "validate_key",
    "validate_prefix",
]


def build_object_store(settings: Settings) -> ObjectStore:
    """The store the settings select: a local directory or an S3-compatible bucket."""
    retry_seconds = settings.object_storage_retry_seconds
    if settings.object_storage_provider is StorageProvider.LOCAL:
        return LocalDirectoryStore(settings.object_storage_local_path, retry_seconds=retry_seconds)
    if not settings.object_storage_bucket:
        raise ValueError("OBJECT_STORAGE_BUCKET is required when OBJECT_STORAGE_PROVIDER=s3")
    return S3ObjectStore(
        settings.object_storage_bucket,
        endpoint_url=settings.object_storage_endpoint,
        region=settings.object_storage_region,
        access_key_id=_secret_value(settings.object_storage_access_key),
        secret_access_key=_secret_value(settings.object_storage_secret_key),
        path_style=settings.object_storage_path_style_access,
        retry_seconds=retry_seconds,
    )


def _secret_value(secret: SecretStr | None) -> str | None:
    return None if secret is None else secret.get_secret_value()
