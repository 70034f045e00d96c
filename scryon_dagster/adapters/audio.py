"""ffmpeg audio preprocessing, file to file.

A call's audio is never held whole in memory (a decoded two-hour call is ~230 MB): the recording and the
variants are files in the call's own temporary directory (:func:`call_audio_directory`: private to its
owner, removed when the call ends), which ffmpeg opens through ``/proc/self/fd`` so that no path has to be
quoted inside a filter graph. Files rather than pipes because phone recorders write MP4/M4A with the index
(``moov``) at the end, which ffmpeg can only read from a seekable input; and because one ffmpeg process can
then decode once and write both variants from one filter graph (``asplit`` after the shared steps),
without any pipe juggling. The default chain gives
both providers the same audio, so it has a single output.

Decoding happens inside the filter graph (the ``amovie`` source of a ``lavfi`` input): the ffmpeg CLI runs
demuxing, decoding, filtering and encoding in threads of their own and hands every decoded frame from one
to the next, which for a phone recording's small AAC frames cost ~40,000 context switches and a quarter of
the CPU of a 5-minute call; in the graph they are one thread (bench/README.md, issue 18). ``amovie`` stops
at the first damaged packet, where ffmpeg's own decoding skips it: whenever the in-graph run reports an
error, the call is converted again the ordinary way (``-i``, then ``-filter_complex``), so damaged audio
is never cut short.

ffmpeg's time limit grows with the audio it has produced (a floor, or a budget per audio minute), read
from its ``-progress`` reports: a two-hour call gets the time it needs, a stalled conversion does not.

Failures are soft: whatever goes wrong, :meth:`AudioPreprocessor.preprocess` returns the original audio
for both variants with a reason code. ffmpeg's stderr is never logged or returned: it can echo file
metadata (titles, artists) written by the recording app.

(Over 400 lines because the chains, the ffmpeg run with its fallbacks and the call's audio files are one
contract — what goes in and out of ffmpeg — and each part is changed with the others.)
"""

from __future__ import annotations

import logging
import os
import select
import shutil
import subprocess
import tempfile
import threading
import time
import wave
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

from scryon_dagster.adapters.object_store.base import open_private_file
from scryon_dagster.domain.audio_formats import SNIFF_HEAD_BYTES, AudioType, sniff_audio_type
from scryon_dagster.domain.calls import ErrorCode
from scryon_dagster.settings import AudioPreprocessingChain, Settings

logger = logging.getLogger(__name__)

OUTPUT_SAMPLE_RATE_HZ = 16_000
_OUTPUT_SAMPLE_WIDTH_BYTES = 2
_WAV_CHUNK_BYTES = 1024 * 1024
_TO_16KHZ_MONO = (f"aresample={OUTPUT_SAMPLE_RATE_HZ}", "aformat=channel_layouts=mono")
# The leveled chain filters in single precision: afftdn (most of the chain's cost) otherwise inherits
# dynaudnorm's double precision and costs ~40 % more, for no audible difference.
_TO_16KHZ_MONO_FLOAT = (f"aresample={OUTPUT_SAMPLE_RATE_HZ}", "aformat=sample_fmts=fltp:channel_layouts=mono")
# Every output ends in the PCM the providers get, so that it can be copied out without an encoder.
_TO_OUTPUT_PCM = f"aformat=sample_fmts=s16:sample_rates={OUTPUT_SAMPLE_RATE_HZ}:channel_layouts=mono"
# The reference chain's single-pass EBU R128 targets: speech at -16 LUFS, true peak below -1.5 dBTP.
_LOUDNORM = "loudnorm=I=-16:TP=-1.5:LRA=11"
# Per-speaker levelling: gain follows each 200-ms frame's peak (to -6 dBFS, at most +20 dB), smoothed over
# 11 frames so that the quiet party of a call comes up to the loud one within a turn; frames peaking
# under -40 dBFS (pauses, once denoised) are not raised.
_LEVEL = "dynaudnorm=f=200:g=11:p=0.5:m=10:t=0.01"
_FFMPEG_BASE_ARGS = ("-hide_banner", "-nostdin", "-nostats", "-loglevel", "error")
_INVALID_INPUT_MARKERS = (
    b"Invalid data found",
    b"matches no streams",
    b"does not contain any stream",
    b"could not find codec parameters",
    b"moov atom not found",
    b"No audio stream",
)


class PreprocessingFailure(StrEnum):
    """Why the original audio was used instead of the preprocessed variants (generic, no user data)."""

    FFMPEG_UNAVAILABLE = "ffmpeg_unavailable"
    PLATFORM_UNSUPPORTED = "platform_unsupported"
    MEMORY_FILES_FAILED = "memory_files_failed"
    TEMPORARY_FILES_FAILED = "temporary_files_failed"
    EMPTY_INPUT = "empty_input"
    INVALID_AUDIO = "invalid_audio"
    TIMEOUT = "timeout"
    FFMPEG_FAILED = "ffmpeg_failed"
    EMPTY_OUTPUT = "empty_output"


@dataclass(frozen=True, slots=True)
class PreprocessedAudio:
    """The two provider inputs of one call.

    Files in the call's audio directory. When ``used_original`` is true both variants are the uploaded
    recording unchanged, ``audio_type`` is the sniffed upload format (None if unrecognised) and
    ``fallback_reason``/``failure`` say why. ``diarization_audio`` is None when the diarization variant was
    not asked for.
    """

    transcription_audio: Path
    diarization_audio: Path | None
    audio_type: AudioType | None
    duration_seconds: float | None
    used_original: bool
    fallback_reason: ErrorCode | None = None
    failure: PreprocessingFailure | None = None
    ffmpeg_exit_code: int | None = None

    @classmethod
    def unprocessed(
        cls,
        audio: Path,
        *,
        fallback_reason: ErrorCode | None = None,
        failure: PreprocessingFailure | None = None,
        ffmpeg_exit_code: int | None = None,
    ) -> PreprocessedAudio:
        """The upload itself for both providers (preprocessing switched off or failed)."""
        return cls(
            transcription_audio=audio,
            diarization_audio=audio,
            audio_type=sniff_audio_type(read_head(audio)),
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


# Failures that converting the ordinary way would only repeat.
_FINAL_FAILURES = frozenset(
    {
        PreprocessingFailure.FFMPEG_UNAVAILABLE,
        PreprocessingFailure.PLATFORM_UNSUPPORTED,
        PreprocessingFailure.MEMORY_FILES_FAILED,
        PreprocessingFailure.INVALID_AUDIO,
        PreprocessingFailure.TIMEOUT,
    }
)


class _DecodingStopped(Exception):
    """The in-graph decoding reported an error: its output may end early."""


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


@dataclass(frozen=True, slots=True)
class FilterGraph:
    """ffmpeg filter steps of the two variants; ``shared`` runs once, before the graph splits in two.

    When both variants have the same steps (the leveled chain) there is no split: one output serves both.
    """

    shared: tuple[str, ...]
    transcription: tuple[str, ...] = ()
    diarization: tuple[str, ...] = ()

    @property
    def splits(self) -> bool:
        return self.transcription != self.diarization

    def outputs(self, *, diarization_variant: bool) -> tuple[str, ...]:
        """The graph's output labels: ``transcription`` always, ``diarization`` when it is made separately."""
        return ("transcription", "diarization") if diarization_variant and self.splits else ("transcription",)

    def filter_complex(self, *, diarization_variant: bool) -> str:
        """One graph from the decoded first audio stream of ``-i`` to each of :meth:`outputs`, by label."""
        return self._graph("[0:a:0]anull", self.outputs(diarization_variant=diarization_variant))

    def decoding_graph(self, input_path: str, *, diarization_variant: bool) -> str:
        """One graph that decodes the first audio stream of ``input_path`` itself (a ``lavfi`` input); its
        outputs are the streams 0, 1 of that input, in the order of :meth:`outputs`."""
        # The stream specifier's colon is escaped twice: once for the graph, once for the filter's options.
        source = f"amovie={input_path}:s=a\\\\:0"
        return self._graph(
            source, [f"out{index}" for index in range(len(self.outputs(diarization_variant=diarization_variant)))]
        )

    def _graph(self, source: str, labels: Sequence[str]) -> str:
        shared = ",".join((source, *self.shared))
        if len(labels) == 1:
            return ",".join((shared, *self.transcription, _TO_OUTPUT_PCM)) + f"[{labels[0]}]"
        transcription, diarization = labels
        return ";".join(
            (
                f"{shared},asplit=2[to_transcription][to_diarization]",
                ",".join(("[to_transcription]anull", *self.transcription, _TO_OUTPUT_PCM)) + f"[{transcription}]",
                ",".join(("[to_diarization]anull", *self.diarization, _TO_OUTPUT_PCM)) + f"[{diarization}]",
            )
        )


@dataclass(frozen=True, slots=True)
class ChainTuning:
    """The high-pass and denoiser settings; None leaves the chain's own value (0 Hz: no high-pass)."""

    highpass_hz: int | None = None
    denoise_enabled: bool = True
    denoise_nr_db: float | None = None
    denoise_noise_floor_db: float | None = None


_CHAIN_DEFAULTS = {
    AudioPreprocessingChain.LEVELED: ChainTuning(highpass_hz=120, denoise_nr_db=12, denoise_noise_floor_db=-40),
    AudioPreprocessingChain.REFERENCE: ChainTuning(highpass_hz=80, denoise_nr_db=12, denoise_noise_floor_db=-25),
}


def build_filter_graph(chain: AudioPreprocessingChain, tuning: ChainTuning = ChainTuning()) -> FilterGraph:
    """The filter graph of ``chain`` (bench/README.md, issue 18, says why these steps) with ``tuning`` applied."""
    defaults = _CHAIN_DEFAULTS[chain]
    highpass_hz = defaults.highpass_hz if tuning.highpass_hz is None else tuning.highpass_hz
    nr_db = defaults.denoise_nr_db if tuning.denoise_nr_db is None else tuning.denoise_nr_db
    floor_db = (
        defaults.denoise_noise_floor_db if tuning.denoise_noise_floor_db is None else tuning.denoise_noise_floor_db
    )
    denoise = (f"afftdn=nr={nr_db:g}:nf={floor_db:g}",) if tuning.denoise_enabled else ()
    if chain is AudioPreprocessingChain.REFERENCE:
        highpass = (f"highpass=f={highpass_hz}",) if highpass_hz else ()
        # loudnorm works at 192 kHz internally: resample back to 16 kHz after it.
        normalize = (_LOUDNORM, f"aresample={OUTPUT_SAMPLE_RATE_HZ}")
        return FilterGraph(
            shared=_TO_16KHZ_MONO, transcription=(*highpass, *denoise, *normalize), diarization=normalize
        )
    # Two 2-pole stages: 24 dB/octave, steep enough for mains hum under a male voice's pitch.
    steep_highpass = (f"highpass=f={highpass_hz}:p=2",) * 2 if highpass_hz else ()
    # Denoise before levelling, while the noise is still stationary; both providers get the same audio.
    return FilterGraph(shared=(*_TO_16KHZ_MONO_FLOAT, *steep_highpass, *denoise, _LEVEL))


class AudioPreprocessor:
    """Builds the transcription and diarization variants of a call's audio with ffmpeg.

    Stateless and safe to share between threads; every call runs its own ffmpeg process.
    """

    def __init__(
        self,
        ffmpeg_path: str | None,
        *,
        graph: FilterGraph | None = None,
        timeout_seconds: float = 60,
        seconds_per_audio_minute: float = 10,
        max_processes: int = 2,
    ) -> None:
        if timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be positive")
        if seconds_per_audio_minute <= 0:
            raise ValueError("seconds_per_audio_minute must be positive")
        if max_processes < 1:
            raise ValueError("max_processes must be at least 1")
        self.ffmpeg_path = ffmpeg_path
        self.graph = graph or build_filter_graph(AudioPreprocessingChain.LEVELED)
        # The time limit: this floor, or this much per minute of audio produced, whichever is longer.
        self.timeout_seconds = timeout_seconds
        self.seconds_per_audio_minute = seconds_per_audio_minute
        # ffmpeg is CPU-bound: a batch's 32 calls at once on two cores made every run ~30x slower and
        # pushed some past the timeout (original audio used). Callers queue here; the timeout counts
        # from ffmpeg's start.
        self._processes = threading.BoundedSemaphore(max_processes)

    @classmethod
    def from_settings(cls, settings: Settings) -> AudioPreprocessor:
        tuning = ChainTuning(
            highpass_hz=settings.scryon_audio_highpass_hz,
            denoise_enabled=settings.scryon_audio_denoise_enabled,
            denoise_nr_db=settings.scryon_audio_denoise_nr_db,
            denoise_noise_floor_db=settings.scryon_audio_denoise_noise_floor_db,
        )
        return cls(
            resolve_ffmpeg(settings.scryon_ffmpeg_path),
            graph=build_filter_graph(settings.scryon_audio_preprocessing_chain, tuning),
            timeout_seconds=settings.scryon_audio_preprocessing_timeout_seconds,
            seconds_per_audio_minute=settings.scryon_audio_preprocessing_seconds_per_audio_minute,
            max_processes=settings.scryon_audio_preprocessing_processes or os.cpu_count() or 1,
        )

    def preprocess(self, audio: Path, directory: Path, *, diarization_variant: bool = True) -> PreprocessedAudio:
        """Mono 16 kHz 16-bit WAV variants of the recording ``audio`` for transcription and (when asked for)
        diarization, written to ``directory`` (the call's); never raises for bad audio. A separate
        diarization variant costs its own filter steps: skip it when unused."""
        try:
            pcm = self._convert(audio, directory, diarization_variant)
            wavs = {variant: _pcm_to_wav(pcm_path, directory / f"{variant}.wav") for variant, pcm_path in pcm.items()}
        except _FfmpegError as error:
            logger.warning(
                "audio preprocessing fell back to the original audio: %s (exit code %s, %d input bytes)",
                error.failure.value,
                error.exit_code,
                audio.stat().st_size,
            )
            return PreprocessedAudio.unprocessed(
                audio,
                fallback_reason=ErrorCode.AUDIO_PREPROCESSING_FAILED,
                failure=error.failure,
                ffmpeg_exit_code=error.exit_code,
            )
        duration_seconds = wav_duration_seconds(wavs["transcription"])
        diarization_audio = None
        if diarization_variant:
            # Without a split both providers get the same audio: one file, not two.
            diarization_audio = wavs.get("diarization", wavs["transcription"])
        return PreprocessedAudio(
            transcription_audio=wavs["transcription"],
            diarization_audio=diarization_audio,
            audio_type=AudioType.WAV,
            duration_seconds=duration_seconds,
            used_original=False,
        )

    def probe_duration_seconds(self, audio: Path) -> float | None:
        """The duration of ``audio``: from a WAV header when it is one, else by decoding it; None if unknown."""
        duration = wav_duration_seconds(audio)
        if duration is not None:
            return duration
        try:
            with _opened_file(audio, "rb") as input_file:
                input_fd = input_file.fileno()
                return self._run_ffmpeg(
                    ["-i", _fd_path(input_fd), "-map", "0:a:0", "-f", "null", "-"], pass_fds=(input_fd,)
                )
        except _FfmpegError:
            return None

    def _convert(self, audio: Path, directory: Path, diarization_variant: bool) -> dict[str, Path]:
        """Raw PCM files of each of the graph's outputs, by output label: decoded in the graph, or the ordinary
        way when that reported an error or failed for a reason the ordinary way might not share."""
        with _opened_file(audio, "rb") as input_file:
            if os.fstat(input_file.fileno()).st_size == 0:
                raise _FfmpegError(PreprocessingFailure.EMPTY_INPUT)
            try:
                return self._convert_once(input_file.fileno(), directory, diarization_variant, decode_in_graph=True)
            except _DecodingStopped:
                pass
            except _FfmpegError as error:
                if error.failure in _FINAL_FAILURES:
                    raise
            return self._convert_once(input_file.fileno(), directory, diarization_variant, decode_in_graph=False)

    def _convert_once(
        self, input_fd: int, directory: Path, diarization_variant: bool, *, decode_in_graph: bool
    ) -> dict[str, Path]:
        """One ffmpeg run, one decode and one graph: the shared steps run once, then asplit feeds each variant's
        own steps."""
        variants = self.graph.outputs(diarization_variant=diarization_variant)
        if decode_in_graph:
            graph = self.graph.decoding_graph(_fd_path(input_fd), diarization_variant=diarization_variant)
            source = ["-f", "lavfi", "-i", graph]
            outputs = [f"0:{index}" for index in range(len(variants))]
        else:
            graph = self.graph.filter_complex(diarization_variant=diarization_variant)
            source = ["-i", _fd_path(input_fd), "-filter_complex", graph]
            outputs = [f"[{variant}]" for variant in variants]
        pcm = {variant: directory / f"{variant}.pcm" for variant in variants}
        with ExitStack() as stack:
            output_fds = {
                variant: stack.enter_context(_opened_file(path, "wb")).fileno() for variant, path in pcm.items()
            }
            self._run_ffmpeg(
                [
                    *source,
                    *(
                        arg
                        for output, fd in zip(outputs, output_fds.values(), strict=True)
                        for arg in _pcm_output_args(output, fd)
                    ),
                ],
                pass_fds=(input_fd, *output_fds.values()),
                stop_on_errors=decode_in_graph,
            )
        if not all(path.stat().st_size for path in pcm.values()):
            raise _FfmpegError(PreprocessingFailure.EMPTY_OUTPUT, 0)
        return pcm

    def time_limit_seconds(self, audio_seconds_done: float) -> float:
        """How long ffmpeg may have run by the time it has produced ``audio_seconds_done`` of audio."""
        return max(self.timeout_seconds, self.seconds_per_audio_minute * audio_seconds_done / 60)

    def _run_ffmpeg(
        self, args: Sequence[str], *, pass_fds: Sequence[int], stop_on_errors: bool = False
    ) -> float | None:
        """Run ffmpeg; return the seconds of audio it reported producing (None if it reported none), or raise
        _FfmpegError with a generic cause on any failure (with ``stop_on_errors``, _DecodingStopped when it
        succeeded but reported errors)."""
        if self.ffmpeg_path is None:
            raise _FfmpegError(PreprocessingFailure.FFMPEG_UNAVAILABLE)
        # stderr goes to a memory file: nothing to drain while ffmpeg runs, read once it has exited.
        with self._processes, _memory_file("ffmpeg-stderr") as stderr_fd:
            try:
                process = subprocess.Popen(
                    [self.ffmpeg_path, *_FFMPEG_BASE_ARGS, "-progress", "pipe:1", *args],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=stderr_fd,
                    pass_fds=tuple(pass_fds),
                )
            except OSError:
                raise _FfmpegError(PreprocessingFailure.FFMPEG_UNAVAILABLE) from None
            with process:
                try:
                    audio_seconds = self._follow_progress(process)
                except _FfmpegError:
                    process.kill()
                    raise
            stderr = _read_all(stderr_fd)
        if process.returncode != 0:
            invalid = any(marker in stderr for marker in _INVALID_INPUT_MARKERS)
            failure = PreprocessingFailure.INVALID_AUDIO if invalid else PreprocessingFailure.FFMPEG_FAILED
            raise _FfmpegError(failure, process.returncode)
        if stop_on_errors and stderr:
            raise _DecodingStopped
        return audio_seconds

    def _follow_progress(self, process: subprocess.Popen[bytes]) -> float | None:
        """Read ffmpeg's progress reports until it exits. The time limit grows with the audio produced so far:
        a long call gets time in proportion to its length, a stalled conversion is stopped at the floor."""
        assert process.stdout is not None
        started = time.monotonic()
        audio_seconds: float | None = None
        unfinished_line = b""
        while True:
            remaining = started + self.time_limit_seconds(audio_seconds or 0.0) - time.monotonic()
            if remaining <= 0:
                raise _FfmpegError(PreprocessingFailure.TIMEOUT)
            readable, _, _ = select.select([process.stdout], [], [], remaining)
            if not readable:
                continue
            chunk = os.read(process.stdout.fileno(), 65_536)
            if not chunk:  # ffmpeg closed its output: it is exiting
                break
            *lines, unfinished_line = (unfinished_line + chunk).split(b"\n")
            audio_seconds = _last_progress_time_seconds(b"\n".join(lines)) or audio_seconds
        try:
            process.wait(timeout=max(0.0, started + self.time_limit_seconds(audio_seconds or 0.0) - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise _FfmpegError(PreprocessingFailure.TIMEOUT) from None
        return audio_seconds


_CALL_AUDIO_PREFIX = "scryon-call-audio-"


@contextmanager
def call_audio_directory() -> Iterator[Path]:
    """A call's own temporary directory (under TMPDIR, readable by its owner only: raw audio), removed with
    everything in it when the block ends, however it ends. Its name carries the process id, for
    :func:`remove_orphaned_call_audio`."""
    with tempfile.TemporaryDirectory(prefix=f"{_CALL_AUDIO_PREFIX}{os.getpid()}-") as directory:
        yield Path(directory)


def remove_orphaned_call_audio() -> int:
    """Remove the call audio directories of processes that no longer run (a worker killed mid-call cannot
    remove its own raw audio); return how many."""
    removed = 0
    for directory in Path(tempfile.gettempdir()).glob(f"{_CALL_AUDIO_PREFIX}*-*"):
        owner = directory.name.removeprefix(_CALL_AUDIO_PREFIX).split("-", 1)[0]
        if owner.isdigit() and not _process_exists(int(owner)):
            shutil.rmtree(directory, ignore_errors=True)
            removed += 1
    return removed


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def read_head(audio: Path) -> bytes:
    """The first bytes of the recording: enough to recognise its format."""
    with audio.open("rb") as reader:
        return reader.read(SNIFF_HEAD_BYTES)


def wav_duration_seconds(audio: Path) -> float | None:
    """The duration of a PCM WAV from its header, or None when it is not one (or the header lies)."""
    try:
        with wave.open(str(audio), "rb") as reader:
            frames = reader.getnframes()
            rate = reader.getframerate()
            frame_bytes = reader.getnchannels() * reader.getsampwidth()
    except (wave.Error, EOFError):
        return None
    # Streamed WAVs carry a placeholder data size; trust only a size the file can hold.
    if rate <= 0 or frame_bytes <= 0 or frames * frame_bytes > audio.stat().st_size:
        return None
    return frames / rate


def _pcm_output_args(stream: str, output_fd: int) -> list[str]:
    # The graph's outputs are already 16-kHz mono s16 (_TO_OUTPUT_PCM): the PCM "encoder" only copies.
    return ["-map", stream, "-c:a", "pcm_s16le", "-f", "s16le", "-y", _fd_path(output_fd)]


def _pcm_to_wav(pcm: Path, wav: Path) -> Path:
    """``pcm`` wrapped into the WAV file ``wav`` chunk by chunk (and removed): wrapped here, not muxed by
    ffmpeg, for exact sizes in the header and no metadata chunk."""
    try:
        remaining = pcm.stat().st_size // _OUTPUT_SAMPLE_WIDTH_BYTES * _OUTPUT_SAMPLE_WIDTH_BYTES
        with _opened_file(pcm, "rb") as reader, _opened_file(wav, "wb") as target, wave.open(target, "wb") as writer:
            writer.setnchannels(1)
            writer.setsampwidth(_OUTPUT_SAMPLE_WIDTH_BYTES)
            writer.setframerate(OUTPUT_SAMPLE_RATE_HZ)
            while remaining:
                chunk = reader.read(min(remaining, _WAV_CHUNK_BYTES))
                writer.writeframes(chunk)
                remaining -= len(chunk)
        pcm.unlink()
    except OSError:  # the disk is full, say
        raise _FfmpegError(PreprocessingFailure.TEMPORARY_FILES_FAILED) from None
    return wav


def _last_progress_time_seconds(progress: bytes) -> float | None:
    for line in reversed(progress.splitlines()):
        name, _, value = line.partition(b"=")
        if name == b"out_time_us" and value.strip().isdigit():
            return int(value) / 1_000_000
    return None


@contextmanager
def _opened_file(path: Path, mode: str) -> Iterator[BinaryIO]:
    """``path`` opened for reading (``rb``), or created empty for writing (``wb``) readable by its owner only."""
    try:
        file = path.open("rb") if mode == "rb" else open_private_file(path)
    except OSError:
        raise _FfmpegError(PreprocessingFailure.TEMPORARY_FILES_FAILED) from None
    with file:
        yield file


@contextmanager
def _memory_file(name: str) -> Iterator[int]:
    """An anonymous in-memory file descriptor (never on disk), closed on exit: ffmpeg's stderr."""
    if not hasattr(os, "memfd_create"):
        raise _FfmpegError(PreprocessingFailure.PLATFORM_UNSUPPORTED)
    try:
        fd = os.memfd_create(name, os.MFD_CLOEXEC)
    except OSError:  # out of descriptors or memory
        raise _FfmpegError(PreprocessingFailure.MEMORY_FILES_FAILED) from None
    try:
        yield fd
    finally:
        os.close(fd)


def _fd_path(fd: int) -> str:
    # Reopening by path gives ffmpeg its own file offset, so the file is seekable from the start.
    return f"/proc/self/fd/{fd}"


def _read_all(fd: int) -> bytes:
    try:
        with open(fd, "rb", closefd=False) as reader:
            reader.seek(0)
            return reader.read()
    except OSError:
        raise _FfmpegError(PreprocessingFailure.MEMORY_FILES_FAILED) from None
