"""ffmpeg audio preprocessing, entirely in memory.

Audio never touches a disk: the input and both outputs live in anonymous memory files (Linux
``memfd_create``) that ffmpeg opens through ``/proc/self/fd``. Memory files rather than pipes because
phone recorders write MP4/M4A with the index (``moov``) at the end, which ffmpeg can only read from a
seekable input; and because one ffmpeg process can then decode once and write both variants, each
through its own filter graph (ffmpeg runs them on separate threads), without any pipe juggling.

Failures are soft: whatever goes wrong, :meth:`AudioPreprocessor.preprocess` returns the original audio
for both variants with a reason code. ffmpeg's stderr is never logged or returned: it can echo file
metadata (titles, artists) written by the recording app.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import subprocess
import threading
import wave
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from enum import StrEnum

from scryon_dagster.domain.audio_formats import SNIFF_HEAD_BYTES, AudioType, sniff_audio_type
from scryon_dagster.domain.calls import ErrorCode
from scryon_dagster.settings import Settings

logger = logging.getLogger(__name__)

OUTPUT_SAMPLE_RATE_HZ = 16_000
_OUTPUT_SAMPLE_WIDTH_BYTES = 2
_OUTPUT_BYTES_PER_SECOND = OUTPUT_SAMPLE_RATE_HZ * _OUTPUT_SAMPLE_WIDTH_BYTES
# Single-pass EBU R128 targets: speech at -16 LUFS, true peak below -1.5 dBTP.
_LOUDNORM = "loudnorm=I=-16:TP=-1.5:LRA=11"
_FFMPEG_BASE_ARGS = ("-hide_banner", "-nostdin", "-nostats", "-loglevel", "error")
_INVALID_INPUT_MARKERS = (
    b"Invalid data found",
    b"matches no streams",
    b"does not contain any stream",
    b"could not find codec parameters",
    b"moov atom not found",
)


class PreprocessingFailure(StrEnum):
    """Why the original audio was used instead of the preprocessed variants (generic, no user data)."""

    FFMPEG_UNAVAILABLE = "ffmpeg_unavailable"
    PLATFORM_UNSUPPORTED = "platform_unsupported"
    MEMORY_FILES_FAILED = "memory_files_failed"
    EMPTY_INPUT = "empty_input"
    INVALID_AUDIO = "invalid_audio"
    TIMEOUT = "timeout"
    FFMPEG_FAILED = "ffmpeg_failed"
    EMPTY_OUTPUT = "empty_output"


@dataclass(frozen=True, slots=True)
class PreprocessedAudio:
    """The two provider inputs of one call.

    When ``used_original`` is true both variants are the uploaded bytes unchanged, ``audio_type`` is
    the sniffed upload format (None if unrecognised) and ``fallback_reason``/``failure`` say why.
    ``diarization_audio`` is None when the diarization variant was not asked for.
    """

    # Out of repr so that logging the result can never dump audio.
    transcription_audio: bytes = field(repr=False)
    diarization_audio: bytes | None = field(repr=False)
    audio_type: AudioType | None
    duration_seconds: float | None
    used_original: bool
    fallback_reason: ErrorCode | None = None
    failure: PreprocessingFailure | None = None
    ffmpeg_exit_code: int | None = None

    @classmethod
    def unprocessed(
        cls,
        audio: bytes,
        *,
        fallback_reason: ErrorCode | None = None,
        failure: PreprocessingFailure | None = None,
        ffmpeg_exit_code: int | None = None,
    ) -> PreprocessedAudio:
        """The upload itself for both providers (preprocessing switched off or failed)."""
        return cls(
            transcription_audio=audio,
            diarization_audio=audio,
            audio_type=sniff_audio_type(audio[:SNIFF_HEAD_BYTES]),
            duration_seconds=wav_duration_seconds(audio),
            used_original=True,
            fallback_reason=fallback_reason,
            failure=failure,
            ffmpeg_exit_code=ffmpeg_exit_code,
        )


class _FfmpegError(Exception):
    def __init__(self, failure: PreprocessingFailure, exit_code: int | None = None) -> None:
        super().__init__(failure.value)
        self.failure = failure
        self.exit_code = exit_code


def resolve_ffmpeg(configured: str) -> str | None:
    """The ffmpeg to run: the configured one if it exists, else the binary bundled by imageio-ffmpeg."""
    if configured:
        found = shutil.which(configured)
        if found:
            return found
        logger.warning("configured ffmpeg %r not found, trying the bundled binary", configured)
    try:
        import imageio_ffmpeg

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError):
        return None


class AudioPreprocessor:
    """Builds the transcription and diarization variants of a call's audio with ffmpeg.

    Stateless and safe to share between threads; every call runs its own ffmpeg process.
    """

    def __init__(
        self,
        ffmpeg_path: str | None,
        *,
        highpass_hz: int = 80,
        denoise_enabled: bool = True,
        denoise_nr_db: float = 12,
        denoise_noise_floor_db: float = -25,
        timeout_seconds: float = 60,
        max_processes: int = 2,
    ) -> None:
        if timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be positive")
        if max_processes < 1:
            raise ValueError("max_processes must be at least 1")
        self.ffmpeg_path = ffmpeg_path
        self.timeout_seconds = timeout_seconds
        # ffmpeg is CPU-bound: a batch's 32 calls at once on two cores made every run ~30x slower and
        # pushed some past the timeout (original audio used). Callers queue here; the timeout counts
        # from ffmpeg's start.
        self._processes = threading.BoundedSemaphore(max_processes)
        resample = f"aresample={OUTPUT_SAMPLE_RATE_HZ},aformat=channel_layouts=mono"
        transcription_steps = [resample]
        if highpass_hz > 0:
            transcription_steps.append(f"highpass=f={highpass_hz}")
        if denoise_enabled:
            transcription_steps.append(f"afftdn=nr={denoise_nr_db:g}:nf={denoise_noise_floor_db:g}")
        # loudnorm works at 192 kHz internally: resample back to 16 kHz after it.
        transcription_steps += [_LOUDNORM, f"aresample={OUTPUT_SAMPLE_RATE_HZ}"]
        self.transcription_filter = ",".join(transcription_steps)
        self.diarization_filter = ",".join([resample, _LOUDNORM, f"aresample={OUTPUT_SAMPLE_RATE_HZ}"])

    @classmethod
    def from_settings(cls, settings: Settings) -> AudioPreprocessor:
        return cls(
            resolve_ffmpeg(settings.scryon_ffmpeg_path),
            highpass_hz=settings.scryon_audio_highpass_hz,
            denoise_enabled=settings.scryon_audio_denoise_enabled,
            denoise_nr_db=settings.scryon_audio_denoise_nr_db,
            denoise_noise_floor_db=settings.scryon_audio_denoise_noise_floor_db,
            timeout_seconds=settings.scryon_audio_preprocessing_timeout_seconds,
            max_processes=settings.scryon_audio_preprocessing_processes or os.cpu_count() or 1,
        )

    def preprocess(self, audio: bytes, *, diarization_variant: bool = True) -> PreprocessedAudio:
        """Mono 16 kHz 16-bit WAV variants for transcription and (when asked for) diarization; never raises
        for bad audio. Each variant costs a loudnorm pass, most of ffmpeg's time: skip the unused one."""
        try:
            transcription_pcm, diarization_pcm = self._convert(audio, diarization_variant)
        except _FfmpegError as error:
            logger.warning(
                "audio preprocessing fell back to the original audio: %s (exit code %s, %d input bytes)",
                error.failure.value,
                error.exit_code,
                len(audio),
            )
            return PreprocessedAudio.unprocessed(
                audio,
                fallback_reason=ErrorCode.AUDIO_PREPROCESSING_FAILED,
                failure=error.failure,
                ffmpeg_exit_code=error.exit_code,
            )
        return PreprocessedAudio(
            transcription_audio=_pcm_to_wav(transcription_pcm),
            diarization_audio=None if diarization_pcm is None else _pcm_to_wav(diarization_pcm),
            audio_type=AudioType.WAV,
            duration_seconds=len(transcription_pcm) / _OUTPUT_BYTES_PER_SECOND,
            used_original=False,
        )

    def probe_duration_seconds(self, audio: bytes) -> float | None:
        """The duration of ``audio``: from a WAV header when it is one, else by decoding it; None if unknown."""
        duration = wav_duration_seconds(audio)
        if duration is not None:
            return duration
        try:
            with _memory_file("probe-input", audio) as input_fd:
                progress = self._run_ffmpeg(
                    ["-i", _fd_path(input_fd), "-map", "0:a:0", "-f", "null", "-progress", "pipe:1", "-"],
                    pass_fds=(input_fd,),
                )
        except _FfmpegError:
            return None
        return _last_progress_time_seconds(progress)

    def _convert(self, audio: bytes, diarization_variant: bool) -> tuple[bytes, bytes | None]:
        if not audio:
            raise _FfmpegError(PreprocessingFailure.EMPTY_INPUT)
        with ExitStack() as stack:
            input_fd = stack.enter_context(_memory_file("audio-input", audio))
            outputs = {"transcription": (self.transcription_filter, stack.enter_context(_memory_file("transcription")))}
            if diarization_variant:
                outputs["diarization"] = (self.diarization_filter, stack.enter_context(_memory_file("diarization")))
            # One decode feeding every output, each with its own filter graph.
            self._run_ffmpeg(
                ["-i", _fd_path(input_fd), *(arg for f, fd in outputs.values() for arg in _pcm_output_args(f, fd))],
                pass_fds=(input_fd, *(fd for _, fd in outputs.values())),
            )
            pcm = {name: _read_all(fd) for name, (_, fd) in outputs.items()}
        if not all(pcm.values()):
            raise _FfmpegError(PreprocessingFailure.EMPTY_OUTPUT, 0)
        return pcm["transcription"], pcm.get("diarization")

    def _run_ffmpeg(self, args: Sequence[str], *, pass_fds: Sequence[int]) -> bytes:
        """Run ffmpeg and return its stdout; raise _FfmpegError with a generic cause on any failure."""
        if self.ffmpeg_path is None:
            raise _FfmpegError(PreprocessingFailure.FFMPEG_UNAVAILABLE)
        try:
            with self._processes:
                completed = subprocess.run(
                    [self.ffmpeg_path, *_FFMPEG_BASE_ARGS, *args],
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    pass_fds=tuple(pass_fds),
                    timeout=self.timeout_seconds,
                    check=False,
                )
        except subprocess.TimeoutExpired:
            raise _FfmpegError(PreprocessingFailure.TIMEOUT) from None
        except OSError:
            raise _FfmpegError(PreprocessingFailure.FFMPEG_UNAVAILABLE) from None
        if completed.returncode != 0:
            invalid = any(marker in completed.stderr for marker in _INVALID_INPUT_MARKERS)
            failure = PreprocessingFailure.INVALID_AUDIO if invalid else PreprocessingFailure.FFMPEG_FAILED
            raise _FfmpegError(failure, completed.returncode)
        return completed.stdout


def wav_duration_seconds(audio: bytes) -> float | None:
    """The duration of a PCM WAV from its header, or None when it is not one (or the header lies)."""
    try:
        with wave.open(io.BytesIO(audio), "rb") as reader:
            frames = reader.getnframes()
            rate = reader.getframerate()
            frame_bytes = reader.getnchannels() * reader.getsampwidth()
    except (wave.Error, EOFError):
        return None
    # Streamed WAVs carry a placeholder data size; trust only a size the bytes can hold.
    if rate <= 0 or frame_bytes <= 0 or frames * frame_bytes > len(audio):
        return None
    return frames / rate


def _pcm_output_args(audio_filter: str, output_fd: int) -> list[str]:
    return [
        "-map",
        "0:a:0",
        "-af",
        audio_filter,
        "-ac",
        "1",
        "-ar",
        str(OUTPUT_SAMPLE_RATE_HZ),
        "-c:a",
        "pcm_s16le",
        "-f",
        "s16le",
        "-y",
        _fd_path(output_fd),
    ]


def _pcm_to_wav(pcm: bytes) -> bytes:
    # Raw PCM wrapped here, not a WAV muxed by ffmpeg: exact sizes in the header and no metadata chunk.
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(_OUTPUT_SAMPLE_WIDTH_BYTES)
        writer.setframerate(OUTPUT_SAMPLE_RATE_HZ)
        writer.writeframes(pcm[: len(pcm) - len(pcm) % _OUTPUT_SAMPLE_WIDTH_BYTES])
    return buffer.getvalue()


def _last_progress_time_seconds(progress: bytes) -> float | None:
    for line in reversed(progress.splitlines()):
        name, _, value = line.partition(b"=")
        if name == b"out_time_us" and value.strip().isdigit():
            return int(value) / 1_000_000
    return None


@contextmanager
def _memory_file(name: str, content: bytes = b"") -> Iterator[int]:
    """An anonymous in-memory file descriptor (never on disk), closed on exit."""
    if not hasattr(os, "memfd_create"):
        raise _FfmpegError(PreprocessingFailure.PLATFORM_UNSUPPORTED)
    try:
        fd = os.memfd_create(name, os.MFD_CLOEXEC)
    except OSError:  # out of descriptors or memory
        raise _FfmpegError(PreprocessingFailure.MEMORY_FILES_FAILED) from None
    try:
        if content:
            _write_all(fd, content)
        yield fd
    finally:
        os.close(fd)


def _fd_path(fd: int) -> str:
    # Reopening by path gives ffmpeg its own file offset, so the file is seekable from the start.
    return f"/proc/self/fd/{fd}"


def _write_all(fd: int, content: bytes) -> None:
    try:
        with open(fd, "wb", closefd=False) as writer:
            writer.write(content)
    except OSError:
        raise _FfmpegError(PreprocessingFailure.MEMORY_FILES_FAILED) from None


def _read_all(fd: int) -> bytes:
    try:
        with open(fd, "rb", closefd=False) as reader:
            reader.seek(0)
            return reader.read()
    except OSError:
        raise _FfmpegError(PreprocessingFailure.MEMORY_FILES_FAILED) from None
