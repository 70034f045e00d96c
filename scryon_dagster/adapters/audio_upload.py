"""A call's audio as a provider upload: bytes, or a file streamed from disk, so that a long call's audio is
never held whole in memory. Every attempt of a retried request sends the file from its start."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

AudioSource = bytes | Path
_CHUNK_BYTES = 64 * 1024


def audio_size(audio: AudioSource) -> int:
    return len(audio) if isinstance(audio, bytes) else audio.stat().st_size


@contextmanager
def multipart_audio(audio: AudioSource) -> Iterator[bytes | BinaryIO]:
    """The audio as a multipart file part: httpx rewinds a file part before rendering each attempt's body."""
    if isinstance(audio, bytes):
        yield audio
        return
    with audio.open("rb") as file:
        yield file


class ReplayableFileBody:
    """A request body (``content=``) read from an open file by offset: each attempt iterates it from the
    start, whatever an earlier attempt consumed, and httpx sizes it (Content-Length) from the descriptor."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file

    def fileno(self) -> int:
        return self._file.fileno()

    def __iter__(self) -> Iterator[bytes]:
        offset = 0
        while chunk := os.pread(self.fileno(), _CHUNK_BYTES, offset):
            offset += len(chunk)
            yield chunk


@contextmanager
def request_body(audio: AudioSource) -> Iterator[bytes | ReplayableFileBody]:
    if isinstance(audio, bytes):
        yield audio
        return
    with audio.open("rb") as file:
        yield ReplayableFileBody(file)
