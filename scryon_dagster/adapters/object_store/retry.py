"""Retrying transient unavailability with bounded exponential backoff (``OBJECT_STORAGE_RETRY_SECONDS``)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception,
    stop_before_delay,
    wait_exponential_jitter,
)

from scryon_dagster.adapters.object_store.errors import ObjectStoreUnavailableError

logger = logging.getLogger(__name__)

# Backoff between attempts: 0.2 s doubling (plus up to 0.2 s of jitter), at most 2 s, so a store back
# from an outage is used again within about two seconds.
_RETRY_FIRST_WAIT_SECONDS = 0.2
_RETRY_MAX_WAIT_SECONDS = 2.0

_T = TypeVar("_T")
_P = ParamSpec("_P")


def _is_transient(error: BaseException) -> bool:
    return isinstance(error, ObjectStoreUnavailableError) and error.transient


def _log_retry(operation: str, state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome is not None else None
    wait = state.next_action.sleep if state.next_action is not None else 0.0
    # One warning per operation, the further retries quieter: an outage would otherwise repeat a line
    # per call and retry. Store errors carry codes and statuses only: no key names, no URLs.
    level = logging.WARNING if state.attempt_number == 1 else logging.INFO
    logger.log(
        level, "object storage %s unavailable (%s); retry %d in %.1f s", operation, error, state.attempt_number, wait
    )


def retry_transient(operation: str, window_seconds: float, attempt: Callable[[], _T]) -> _T:
    """Run ``attempt``; retry transient unavailability with backoff until ``window_seconds`` have passed."""
    if window_seconds <= 0:
        return attempt()
    retrying = Retrying(
        retry=retry_if_exception(_is_transient),
        # No attempt starts past the window: the whole call lasts at most the window plus one attempt.
        stop=stop_before_delay(window_seconds),
        wait=wait_exponential_jitter(
            multiplier=_RETRY_FIRST_WAIT_SECONDS, max=_RETRY_MAX_WAIT_SECONDS, jitter=_RETRY_FIRST_WAIT_SECONDS
        ),
        before_sleep=functools.partial(_log_retry, operation),
    )
    try:
        return retrying(attempt)
    except RetryError as exhausted:
        raise ObjectStoreUnavailableError(
            f"{exhausted.last_attempt.exception()} (still failing after {window_seconds:g} s of retries)"
        ) from None


class _RetryingStore(Protocol):
    retry_seconds: float


_StoreT = TypeVar("_StoreT", bound=_RetryingStore)


def retried_method(method: Callable[Concatenate[_StoreT, _P], _T]) -> Callable[Concatenate[_StoreT, _P], _T]:
    """Retry a store operation on transient unavailability within the store's ``retry_seconds``."""

    @functools.wraps(method)
    def retried(store: _StoreT, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        return retry_transient(method.__name__, store.retry_seconds, lambda: method(store, *args, **kwargs))

    return retried
