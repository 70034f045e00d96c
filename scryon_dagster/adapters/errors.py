"""One error taxonomy for every provider adapter.

Callers decide what to do from the class (retry later or not) and record ``code`` (a value of
:class:`~scryon_dagster.domain.calls.ErrorCode`) on the call. Messages carry only the provider name,
HTTP status, attempt counts and short provider error identifiers: never an API key, audio, transcript
text or a provider's free-text error body.
"""

from __future__ import annotations

from scryon_dagster.domain.calls import ErrorCode


class ProviderError(Exception):
    """A provider call that did not produce a usable result."""

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        code: ErrorCode,
        provider: str,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.provider = provider
        self.status_code = status_code

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code.value!r}, provider={self.provider!r}, "
            f"status_code={self.status_code!r}, message={str(self)!r})"
        )


class PermanentProviderError(ProviderError):
    """Repeating the same request cannot help: 4xx (other than 408/409/429), quota or payment
    exhausted, a failed job, or output the pipeline cannot read."""

    retryable = False


def refuse_oversized_upload(size_bytes: int, *, max_bytes: int, provider: str) -> None:
    """Raise ``audio_too_large_for_provider`` (permanent) for audio over a provider's documented upload
    limit, before it is sent: the provider would refuse it (413) after the whole upload, and the same
    audio can never fit."""
    if size_bytes > max_bytes:
        raise PermanentProviderError(
            f"{provider} upload of {size_bytes} bytes is over its limit of {max_bytes} bytes",
            code=ErrorCode.AUDIO_TOO_LARGE_FOR_PROVIDER,
            provider=provider,
        )


class RetryableProviderError(ProviderError):
    """Transient: network failure, timeout, 5xx, 408 or 409; ``retry_after`` is the provider's minimum
    wait in seconds when it said one (a 503's ``Retry-After``)."""

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        code: ErrorCode,
        provider: str,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, code=code, provider=provider, status_code=status_code)
        self.retry_after = retry_after


class RateLimitedError(RetryableProviderError):
    """HTTP 429 that is not quota exhaustion."""

    def __init__(
        self,
        message: str,
        *,
        code: ErrorCode,
        provider: str,
        status_code: int | None = 429,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, code=code, provider=provider, status_code=status_code, retry_after=retry_after)
