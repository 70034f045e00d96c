"""How long is this audio? WAV from its header; anything else by decoding it with ffmpeg.

The simulator keeps only the duration of what it receives, never the audio itself.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile

import imageio_ffmpeg

DECODE_TIMEOUT_SECONDS = 120
# Without ffmpeg, compressed audio is assumed to be ~32 kbit/s (typical of phone recordings).
_FALLBACK_BYTES_PER_SECOND = 4000
_UNKNOWN_SIZE = (0, 0xFFFFFFFF)
_RAW_PCM_OUTPUT = ("-f", "s16le", "-ac", "1", "-ar", "16000", "pipe:1")


class UndecodableAudioError(ValueError):
    """The bytes are not audio the simulator can measure."""


def wav_duration(data: bytes) -> float | None:
    """Duration of a RIFF/WAVE file, or None when ``data`` is not one.

    Walks the chunks itself instead of trusting the data chunk's size: ffmpeg writing to a pipe
    leaves that size at 0 or 0xFFFFFFFF, and non-PCM formats (float) are fine too.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    position, byte_rate = 12, 0
    while position + 8 <= len(data):
        chunk_id = data[position : position + 4]
        (size,) = struct.unpack_from("<I", data, position + 4)
        body = position + 8
        if chunk_id == b"fmt " and size >= 16:
            (byte_rate,) = struct.unpack_from("<I", data, body + 8)
        elif chunk_id == b"data":
            available = len(data) - body
            length = available if size in _UNKNOWN_SIZE else min(size, available)
            if byte_rate <= 0:
                raise UndecodableAudioError("WAV data chunk before a valid fmt chunk")
            return length / byte_rate
        position = body + size + (size & 1)
    raise UndecodableAudioError("WAV file without a data chunk")


def _ffmpeg_executable() -> str | None:
    try:
        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except RuntimeError:  # no bundled binary for this platform: try the system's
        return shutil.which("ffmpeg")


def probe_duration(data: bytes) -> float:
    """Seconds of audio in ``data``; raise :class:`UndecodableAudioError` when it is not audio."""
    if not data:
        raise UndecodableAudioError("empty audio")
    duration = wav_duration(data)
    if duration is not None:
        return duration
    executable = _ffmpeg_executable()
    if executable is None:
        return len(data) / _FALLBACK_BYTES_PER_SECOND
    # A file, not a pipe: MP4/M4A keep their index at the end, which ffmpeg cannot seek to in a pipe.
    with tempfile.NamedTemporaryFile(suffix=".audio") as source:
        source.write(data)
        source.flush()
        result = subprocess.run(
            [executable, "-hide_banner", "-loglevel", "error", "-i", source.name, *_RAW_PCM_OUTPUT],
            capture_output=True,
            timeout=DECODE_TIMEOUT_SECONDS,
            check=False,
        )
    if result.returncode != 0 or not result.stdout:
        raise UndecodableAudioError("ffmpeg could not decode the audio")
    return len(result.stdout) / (2 * 16000)
