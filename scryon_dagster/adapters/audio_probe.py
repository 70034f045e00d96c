"""How much audio a recording really holds: ffmpeg decodes it and the samples are counted.

Intake asks before it stores anything, so a recording with nothing decodable, or too little, is
refused at the door rather than sent to the providers. Containers can claim any duration (a WAV
header written before the recording was cut short, an empty file with a valid header); decoding to
low-rate mono PCM and counting what comes out gives what is actually there.

ffmpeg reads the recording from a file descriptor rather than from a pipe: phone recorders write
MP4/M4A with the index (``moov``) at the end, which ffmpeg can only reach on a seekable input. A
stream backed by a file (the CLI's file, the API's spooled upload) is read in place, without a copy;
an in-memory stream is copied into an anonymous memory file. Linux only (``/proc/self/fd``, as
adapters/audio.py). ffmpeg's stderr is discarded: it can echo the recording's metadata.
"""

from __future__ import annotations

import functools
import io
import os
import shutil
import stat
import subprocess
import threading
import wave
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, BinaryIO, cast

from scryon_dagster.adapters.audio import resolve_ffmpeg
from scryon_dagster.settings import Settings

PROBE_SAMPLE_RATE_HZ = 8_000
_PROBE_BYTES_PER_SECOND = PROBE_SAMPLE_RATE_HZ * 2  # mono, 16-bit
EXCERPT_SAMPLE_RATE_HZ = 16_000
_READ_CHUNK_BYTES = 64 * 1024


def _pcm_output_args(sample_rate_hz: int) -> tuple[str, ...]:
    """The first audio stream as mono 16-bit PCM on stdout."""
    return ("-map", "0:a:0", "-ac", "1", "-ar", str(sample_rate_hz), "-f", "s16le", "pipe:1")


# Where ffmpeg is does not change while the process runs: found once, not on every upload (and any
# warning about a configured ffmpeg that is missing logged once).
_ffmpeg_for = functools.cache(resolve_ffmpeg)
# Decoding is CPU-bound: many uploads at once queue here instead of all competing for the cores.
# The timeout counts from ffmpeg's start.
_DECODERS = threading.BoundedSemaphore(os.cpu_count() or 1)


class AudioUndecodableError(Exception):
    """ffmpeg found no audio it could decode (not a recording, or one cut before any audio)."""


class AudioProbeUnavailableError(Exception):
    """The recording could not be measured: no ffmpeg, an unsupported platform, or a timeout."""


@dataclass(frozen=True, slots=True)
class AudioProbe:
    """Measures recordings for intake; ``min_seconds`` is the least decodable audio intake accepts."""

    ffmpeg_path: str | None
    min_seconds: float
    timeout_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> AudioProbe:
        return cls(
            ffmpeg_path=_ffmpeg_for(settings.scryon_ffmpeg_path),
            min_seconds=settings.scryon_min_audio_seconds,
            timeout_seconds=settings.scryon_audio_preprocessing_timeout_seconds,
        )

    def decodable_seconds(self, audio: BinaryIO) -> float:
        """Seconds of audio ffmpeg decodes from ``audio`` (0.0 for an empty recording).

        Reads ``audio`` from its start and leaves it there. Raises AudioUndecodableError when nothing
        decodes, AudioProbeUnavailableError when the recording could not be measured.
        """
        decoded_bytes = 0

        def count(chunk: bytes) -> None:
            nonlocal decoded_bytes
            decoded_bytes += len(chunk)

        # Counted as it streams: a long recording's PCM is never held in memory.
        self._decode(audio, _pcm_output_args(PROBE_SAMPLE_RATE_HZ), count)
        return decoded_bytes / _PROBE_BYTES_PER_SECOND

    def excerpt_wav(self, audio: BinaryIO, *, max_seconds: float) -> bytes:
        """The first ``max_seconds`` of ``audio`` as a mono 16-bit 16 kHz WAV, whatever its container.

        For providers that take a bounded clip (pyannoteAI voiceprints: 30 s at most). Same errors as
        ``decodable_seconds``; ``audio`` is left at its start.
        """
        chunks: list[bytes] = []
        self._decode(audio, ("-t", f"{max_seconds:.3f}", *_pcm_output_args(EXCERPT_SAMPLE_RATE_HZ)), chunks.append)
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as writer:
            writer.setnchannels(1)
            writer.setsampwidth(2)
            writer.setframerate(EXCERPT_SAMPLE_RATE_HZ)
            writer.writeframes(b"".join(chunks))
        return buffer.getvalue()

    def _decode(self, audio: BinaryIO, output_args: Sequence[str], sink: Callable[[bytes], None]) -> None:
        """Decode ``audio`` with ffmpeg, handing its stdout to ``sink`` chunk by chunk.

        Raises AudioUndecodableError when ffmpeg produced nothing and failed, AudioProbeUnavailableError
        when it could not run or finish in time.
        """
        if self.ffmpeg_path is None:
            raise AudioProbeUnavailableError("ffmpeg is not available")
        with _seekable_descriptor(audio) as descriptor:
            decoded_bytes, exit_code = self._run_ffmpeg(self.ffmpeg_path, descriptor, output_args, sink)
        # A recording cut short can end in an error after its usable audio: what decoded counts.
        if decoded_bytes == 0 and exit_code != 0:
            raise AudioUndecodableError("no decodable audio")

    def _run_ffmpeg(
        self, ffmpeg_path: str, descriptor: int, output_args: Sequence[str], sink: Callable[[bytes], None]
    ) -> tuple[int, int]:
        """Run ffmpeg on the descriptor; return the bytes it produced and its exit code."""
        command = [
            ffmpeg_path,
            *("-hide_banner", "-nostdin", "-nostats", "-loglevel", "error"),
            *("-i", f"/proc/self/fd/{descriptor}"),
            *output_args,
        ]
        timed_out = threading.Event()
        with _DECODERS:
            try:
                process = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    pass_fds=(descriptor,),
                )
            except OSError:
                raise AudioProbeUnavailableError("ffmpeg could not be started") from None
            stdout = cast(IO[bytes], process.stdout)  # a pipe, as asked for above

            def stop() -> None:
                timed_out.set()
                process.kill()

            deadline = threading.Timer(self.timeout_seconds, stop)
            deadline.start()
            try:
                decoded_bytes = 0
                while chunk := stdout.read(_READ_CHUNK_BYTES):
                    decoded_bytes += len(chunk)
                    sink(chunk)
                exit_code = process.wait()
            finally:
                deadline.cancel()
                process.kill()
                process.wait()
                stdout.close()
        if timed_out.is_set():
            raise AudioProbeUnavailableError(f"ffmpeg did not finish within {self.timeout_seconds:g} s")
        return decoded_bytes, exit_code


@contextmanager
def _seekable_descriptor(audio: BinaryIO) -> Iterator[int]:
    """A descriptor of the whole recording that ffmpeg can reopen and seek; ``audio`` is left at its start."""
    if not os.path.isdir("/proc/self/fd"):
        raise AudioProbeUnavailableError("measuring audio needs Linux (/proc/self/fd)")
    audio.seek(0)
    descriptor = _file_descriptor(audio)
    if descriptor is not None:
        # Reopened through /proc, ffmpeg gets its own offset: this stream's position is untouched.
        audio.flush()  # a spooled upload's last writes must reach the file
        yield descriptor
        return
    try:
        copy = os.memfd_create("audio-probe", os.MFD_CLOEXEC)
    except OSError:
        raise AudioProbeUnavailableError("no memory file for the recording") from None
    try:
        with open(copy, "wb", closefd=False) as writer:
            shutil.copyfileobj(audio, writer, _READ_CHUNK_BYTES)
        audio.seek(0)
        yield copy
    finally:
        os.close(copy)


def _file_descriptor(audio: BinaryIO) -> int | None:
    """The descriptor of the regular file behind ``audio``, or None for an in-memory stream."""
    try:
        descriptor = audio.fileno()
        is_file = stat.S_ISREG(os.fstat(descriptor).st_mode)
    except (OSError, ValueError):  # io.UnsupportedOperation is both
        return None
    return descriptor if is_file else None
