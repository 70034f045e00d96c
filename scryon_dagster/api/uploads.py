"""Streaming multipart intake: the audio part goes to a spooled temporary file as it arrives.

Only the first megabyte stays in memory (the rest spills to a temporary file), the size limit is
enforced while reading, so an oversized upload is refused without being stored, and the small
text parts are bounded too. The spool is then streamed to object storage.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import BinaryIO, cast

import anyio.to_thread
from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header

from scryon_dagster.api.errors import PAYLOAD_TOO_LARGE, UNSUPPORTED_MEDIA_TYPE, VALIDATION_FAILED, ApiError

FILE_FIELD = "file"
CALL_TEXT_FIELDS = frozenset({"metadata", "title"})
"""The text parts of a call upload beside its ``file``."""
SPOOL_MEMORY_BYTES = 1024 * 1024
MAX_TEXT_FIELD_BYTES = 64 * 1024
MAX_PARTS = 8
_FORM_OVERHEAD_BYTES = MAX_PARTS * (MAX_TEXT_FIELD_BYTES + 1024)
"""An upper bound on everything besides the audio: a longer Content-Length is refused unread."""


@dataclass
class AudioUpload:
    """A received upload; ``audio`` is positioned at its start. Close it when done."""

    audio: BinaryIO
    filename: str
    size: int
    fields: dict[str, str]

    def close(self) -> None:
        self.audio.close()


def _bad_request(message: str) -> ApiError:
    return ApiError(400, VALIDATION_FAILED, message)


def _too_large(max_file_bytes: int, limit_name: str) -> ApiError:
    return ApiError(413, PAYLOAD_TOO_LARGE, f"the audio file exceeds {limit_name} ({max_file_bytes} bytes)")


@dataclass
class _Part:
    name: str = ""
    filename: str | None = None
    text: bytearray = field(default_factory=bytearray)
    headers: dict[bytes, bytes] = field(default_factory=dict)


class _UploadCollector:
    """Receives the multipart parser's callbacks; file bytes are queued for the spool."""

    def __init__(self, max_file_bytes: int, limit_name: str, text_fields: frozenset[str]) -> None:
        self.max_file_bytes = max_file_bytes
        self.limit_name = limit_name
        self.text_fields = text_fields
        # typeshed types the spool as IO[bytes]; it is a binary file object in every respect
        self.spool = cast(BinaryIO, tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES))  # noqa: SIM115
        self.pending: list[bytes] = []
        self.file_size = 0
        self.filename: str | None = None
        self.fields: dict[str, str] = {}
        self.parts = 0
        self.finished = False
        self._part = _Part()
        self._header_name = b""
        self._header_value = b""

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise _bad_request(f"too many form parts (at most {MAX_PARTS})")
        self._part = _Part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._part.headers[self._header_name.strip().lower()] = self._header_value.strip()
        self._header_name = b""
        self._header_value = b""

    def on_headers_finished(self) -> None:
        disposition, options = parse_options_header(self._part.headers.get(b"content-disposition"))
        if disposition != b"form-data" or b"name" not in options:
            raise _bad_request("every form part needs Content-Disposition: form-data with a name")
        self._part.name = _text(options[b"name"], "form part name")
        if self._part.name == FILE_FIELD:
            if self.filename is not None:
                raise _bad_request("exactly one 'file' part is allowed")
            self.filename = _text(options.get(b"filename", b""), "file name")
        elif self._part.name not in self.text_fields:
            allowed = ", ".join([FILE_FIELD, *sorted(self.text_fields)])
            raise _bad_request(f"unexpected form part (allowed: {allowed})")
        elif self._part.name in self.fields:
            raise _bad_request("each form part may appear once")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._part.name == FILE_FIELD:
            self.file_size += len(chunk)
            if self.file_size > self.max_file_bytes:
                raise _too_large(self.max_file_bytes, self.limit_name)
            self.pending.append(chunk)
            return
        if len(self._part.text) + len(chunk) > MAX_TEXT_FIELD_BYTES:
            raise _bad_request(f"form part too long (at most {MAX_TEXT_FIELD_BYTES} bytes)")
        self._part.text.extend(chunk)

    def on_part_end(self) -> None:
        if self._part.name in self.text_fields:
            self.fields[self._part.name] = _text(bytes(self._part.text), f"'{self._part.name}' part")

    def on_end(self) -> None:
        self.finished = True

    def take_pending(self) -> bytes:
        data, self.pending = b"".join(self.pending), []
        return data


def declared_length(content_length: str | None) -> int | None:
    """The request's Content-Length when it is a plain number (the body is still counted as read)."""
    return int(content_length) if content_length is not None and content_length.isdigit() else None


def _text(value: bytes, what: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise _bad_request(f"{what} is not valid UTF-8") from None


async def receive_upload(
    content_type: str | None,
    content_length: str | None,
    body: AsyncIterator[bytes],
    *,
    max_file_bytes: int,
    limit_name: str = "MAX_FILE_SIZE",
    text_fields: frozenset[str] = CALL_TEXT_FIELDS,
) -> AudioUpload:
    """Read a ``multipart/form-data`` body with a ``file`` part and optional ``text_fields`` parts.

    Raises ApiError: 415 when the body is not multipart, 413 past ``max_file_bytes`` (the setting
    ``limit_name``), 400 otherwise.
    """
    media_type, parameters = parse_options_header(content_type)
    if media_type != b"multipart/form-data":
        raise ApiError(415, UNSUPPORTED_MEDIA_TYPE, "the request body must be multipart/form-data")
    boundary = parameters.get(b"boundary")
    if not boundary:
        raise _bad_request("the multipart Content-Type has no boundary")
    declared = declared_length(content_length)
    if declared is not None and declared > max_file_bytes + _FORM_OVERHEAD_BYTES:
        raise _too_large(max_file_bytes, limit_name)
    collector = _UploadCollector(max_file_bytes, limit_name, text_fields)
    try:
        parser = MultipartParser(
            boundary,
            {
                "on_part_begin": collector.on_part_begin,
                "on_part_data": collector.on_part_data,
                "on_part_end": collector.on_part_end,
                "on_header_field": collector.on_header_field,
                "on_header_value": collector.on_header_value,
                "on_header_end": collector.on_header_end,
                "on_headers_finished": collector.on_headers_finished,
                "on_end": collector.on_end,
            },
        )
        async for chunk in body:
            parser.write(chunk)
            if collector.pending:
                # Past the in-memory threshold the spool writes to disk: keep that off the event loop.
                await anyio.to_thread.run_sync(collector.spool.write, collector.take_pending())
        parser.finalize()
        if not collector.finished:
            raise _bad_request("the multipart body is incomplete")
        if collector.filename is None:
            raise _bad_request("a 'file' part with the audio is required")
        if collector.file_size == 0:
            raise _bad_request("the audio file is empty")
        collector.spool.seek(0)
    except FormParserError:
        collector.spool.close()
        raise _bad_request("malformed multipart body") from None
    except BaseException:
        collector.spool.close()
        raise
    return AudioUpload(
        audio=collector.spool, filename=collector.filename, size=collector.file_size, fields=collector.fields
    )
