"""Audio preprocessing with the real ffmpeg binary (the one bundled by imageio-ffmpeg)."""

from __future__ import annotations

import array
import io
import logging
import math
import random
import stat
import struct
import subprocess
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import imageio_ffmpeg
import pytest

from scryon_dagster.adapters.audio import (
    OUTPUT_SAMPLE_RATE_HZ,
    AudioPreprocessor,
    PreprocessingFailure,
    resolve_ffmpeg,
    wav_duration_seconds,
)
from scryon_dagster.domain.audio_formats import AudioType, sniff_audio_type
from scryon_dagster.domain.calls import ErrorCode
from scryon_dagster.settings import load_settings

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def make_wav(seconds: float, *, amplitude: float = 0.3, rate: int = 44_100, channels: int = 2) -> bytes:
    """Tones (a different one per channel) plus white noise, as 16-bit PCM WAV."""
    noise = random.Random(7)
    samples = array.array("h")
    for index in range(int(seconds * rate)):
        time = index / rate
        for channel in range(channels):
            tone = math.sin(2 * math.pi * (220 + 110 * channel) * time)
            value = amplitude * (0.8 * tone + 0.2 * noise.uniform(-1, 1))
            samples.append(int(value * 32_767))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(samples.tobytes())
    return buffer.getvalue()


def encode(wav: bytes, tmp_path: Path, name: str, *codec_args: str) -> bytes:
    """The test's own ffmpeg call (files on disk are fine in tests) to make other containers."""
    source, target = tmp_path / "source.wav", tmp_path / name
    source.write_bytes(wav)
    subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-y", "-i", str(source), *codec_args, str(target)],
        check=True,
    )
    return target.read_bytes()


def read_wav(data: bytes) -> tuple[int, int, int, array.array[int]]:
    with wave.open(io.BytesIO(data), "rb") as reader:
        samples = array.array("h", reader.readframes(reader.getnframes()))
        return reader.getnchannels(), reader.getframerate(), reader.getsampwidth(), samples


def rms(samples: array.array[int]) -> float:
    return math.sqrt(sum(sample * sample for sample in samples) / len(samples))


@pytest.fixture(scope="module")
def preprocessor() -> AudioPreprocessor:
    return AudioPreprocessor(FFMPEG)


@pytest.fixture(scope="module")
def call_wav() -> bytes:
    return make_wav(3.0)


def test_both_variants_are_mono_16khz_wav_of_the_same_duration(
    preprocessor: AudioPreprocessor, call_wav: bytes
) -> None:
    result = preprocessor.preprocess(call_wav)

    assert not result.used_original
    assert result.fallback_reason is None
    assert result.failure is None
    assert result.audio_type is AudioType.WAV
    assert result.duration_seconds == pytest.approx(3.0, abs=0.05)
    for variant in (result.transcription_audio, result.diarization_audio):
        channels, rate, width, samples = read_wav(variant)
        assert (channels, rate, width) == (1, OUTPUT_SAMPLE_RATE_HZ, 2)
        assert len(samples) / rate == pytest.approx(3.0, abs=0.05)
        assert wav_duration_seconds(variant) == pytest.approx(3.0, abs=0.05)
    # Only the transcription variant is high-passed and denoised.
    assert result.transcription_audio != result.diarization_audio


def test_the_diarization_variant_is_made_only_when_asked_for(preprocessor: AudioPreprocessor, call_wav: bytes) -> None:
    both = preprocessor.preprocess(call_wav)
    transcription_only = preprocessor.preprocess(call_wav, diarization_variant=False)

    assert not transcription_only.used_original
    assert transcription_only.diarization_audio is None
    assert both.diarization_audio is not None
    assert transcription_only.transcription_audio == both.transcription_audio
    assert transcription_only.duration_seconds == both.duration_seconds


def test_quiet_audio_is_brought_up_to_speech_loudness(preprocessor: AudioPreprocessor) -> None:
    quiet = make_wav(4.0, amplitude=0.01)
    _, _, _, original = read_wav(quiet)

    result = preprocessor.preprocess(quiet)

    _, _, _, normalized = read_wav(result.diarization_audio)
    assert rms(normalized) > 10 * rms(original)


def test_output_wav_carries_no_metadata(preprocessor: AudioPreprocessor, call_wav: bytes, tmp_path: Path) -> None:
    tagged = encode(call_wav, tmp_path, "tagged.m4a", "-metadata", "title=Call with Jane Doe", "-c:a", "aac")

    result = preprocessor.preprocess(tagged)

    assert not result.used_original
    for variant in (result.transcription_audio, result.diarization_audio):
        assert b"Jane" not in variant
        assert b"LIST" not in variant[:64]


@pytest.mark.parametrize(
    ("name", "codec_args", "expected_type"),
    [
        pytest.param("call.m4a", ("-c:a", "aac"), AudioType.M4A, id="m4a-index-at-end"),
        pytest.param("call.mp3", ("-c:a", "libmp3lame"), AudioType.MP3, id="mp3"),
        pytest.param("call.ogg", ("-c:a", "libopus"), AudioType.OPUS, id="ogg-opus"),
        pytest.param("call.flac", ("-c:a", "flac"), AudioType.FLAC, id="flac"),
        pytest.param("call.webm", ("-c:a", "libopus"), AudioType.WEBM, id="webm"),
        pytest.param("call.aac", ("-c:a", "aac"), AudioType.AAC, id="adts-aac"),
        pytest.param("call.3gp", ("-ar", "8000", "-ac", "1", "-c:a", "aac"), AudioType.THREE_GPP, id="3gp"),
    ],
)
def test_real_recordings_are_recognised_and_converted(
    preprocessor: AudioPreprocessor,
    call_wav: bytes,
    tmp_path: Path,
    name: str,
    codec_args: tuple[str, ...],
    expected_type: AudioType,
) -> None:
    encoded = encode(call_wav, tmp_path, name, *codec_args)
    if expected_type is AudioType.M4A:
        # The layout phone recorders produce, which ffmpeg cannot read from a pipe.
        assert encoded.find(b"moov") > encoded.find(b"mdat") > 0

    assert sniff_audio_type(encoded[:4096], name) is expected_type
    result = preprocessor.preprocess(encoded)
    assert not result.used_original
    assert result.duration_seconds == pytest.approx(3.0, abs=0.1)
    assert preprocessor.probe_duration_seconds(encoded) == pytest.approx(3.0, abs=0.1)


def test_malformed_audio_falls_back_to_the_original(preprocessor: AudioPreprocessor) -> None:
    garbage = b"definitely not audio " * 500

    result = preprocessor.preprocess(garbage)

    assert result.used_original
    assert result.transcription_audio is garbage
    assert result.diarization_audio is garbage
    assert result.fallback_reason is ErrorCode.AUDIO_PREPROCESSING_FAILED
    assert result.failure is PreprocessingFailure.INVALID_AUDIO
    assert result.ffmpeg_exit_code not in (None, 0)
    assert result.audio_type is None
    assert result.duration_seconds is None


def test_empty_audio_falls_back_without_running_ffmpeg(preprocessor: AudioPreprocessor) -> None:
    result = preprocessor.preprocess(b"")

    assert result.used_original
    assert result.failure is PreprocessingFailure.EMPTY_INPUT


@pytest.mark.parametrize("ffmpeg_path", [None, "/nonexistent/bin/ffmpeg"])
def test_missing_ffmpeg_falls_back_to_the_original(ffmpeg_path: str | None, call_wav: bytes) -> None:
    result = AudioPreprocessor(ffmpeg_path).preprocess(call_wav)

    assert result.used_original
    assert result.transcription_audio is call_wav
    assert result.failure is PreprocessingFailure.FFMPEG_UNAVAILABLE
    assert result.fallback_reason is ErrorCode.AUDIO_PREPROCESSING_FAILED
    assert result.audio_type is AudioType.WAV
    assert result.duration_seconds == pytest.approx(3.0, abs=0.01)


def test_a_slow_conversion_times_out_and_falls_back() -> None:
    long_call = make_wav(30.0, rate=16_000, channels=1)

    result = AudioPreprocessor(FFMPEG, timeout_seconds=0.01).preprocess(long_call)

    assert result.used_original
    assert result.failure is PreprocessingFailure.TIMEOUT
    assert result.transcription_audio is long_call


def test_ffmpeg_errors_are_reduced_to_a_code_and_never_logged(
    tmp_path: Path, call_wav: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    failing = tmp_path / "ffmpeg"
    failing.write_text("#!/bin/sh\necho 'title: Call with Jane Doe +15551234567' >&2\nexit 3\n")
    failing.chmod(failing.stat().st_mode | stat.S_IXUSR)

    with caplog.at_level(logging.DEBUG):
        result = AudioPreprocessor(str(failing)).preprocess(call_wav)

    assert result.failure is PreprocessingFailure.FFMPEG_FAILED
    assert result.ffmpeg_exit_code == 3
    assert "ffmpeg_failed" in caplog.text
    assert "Jane" not in caplog.text
    assert "5551234567" not in caplog.text


def test_the_result_repr_never_contains_audio(preprocessor: AudioPreprocessor) -> None:
    marker = b"SECRET-AUDIO-CONTENT" * 10

    result = preprocessor.preprocess(marker)

    assert "SECRET" not in repr(result)


def test_filters_follow_the_settings() -> None:
    settings = load_settings(
        scryon_ffmpeg_path=FFMPEG,
        scryon_audio_highpass_hz=120,
        scryon_audio_denoise_enabled=True,
        scryon_audio_denoise_nr_db=18,
        scryon_audio_denoise_noise_floor_db=-30,
        scryon_audio_preprocessing_timeout_seconds=5,
    )

    preprocessor = AudioPreprocessor.from_settings(settings)

    assert preprocessor.ffmpeg_path == FFMPEG
    assert preprocessor.timeout_seconds == 5
    assert "highpass=f=120" in preprocessor.transcription_filter
    assert "afftdn=nr=18:nf=-30" in preprocessor.transcription_filter
    assert "loudnorm" in preprocessor.transcription_filter
    assert "highpass" not in preprocessor.diarization_filter
    assert "afftdn" not in preprocessor.diarization_filter
    assert "loudnorm" in preprocessor.diarization_filter


def test_denoise_and_highpass_can_be_switched_off(call_wav: bytes) -> None:
    plain = AudioPreprocessor(FFMPEG, highpass_hz=0, denoise_enabled=False)

    result = plain.preprocess(call_wav)

    assert "afftdn" not in plain.transcription_filter
    assert "highpass" not in plain.transcription_filter
    # With neither step the two variants are the same conversion.
    assert result.transcription_audio == result.diarization_audio


def test_probe_reads_a_wav_header_without_ffmpeg(call_wav: bytes) -> None:
    assert AudioPreprocessor(None).probe_duration_seconds(call_wav) == pytest.approx(3.0, abs=0.001)


def test_probe_decodes_a_streamed_wav_whose_header_lies(preprocessor: AudioPreprocessor, call_wav: bytes) -> None:
    # A WAV written to a pipe keeps placeholder sizes: the header claims ~4 GiB of samples.
    streamed = (
        call_wav[:4] + struct.pack("<I", 0xFFFFFFFF) + call_wav[8:40] + struct.pack("<I", 0xFFFFFFFF) + call_wav[44:]
    )

    assert wav_duration_seconds(streamed) is None
    assert preprocessor.probe_duration_seconds(streamed) == pytest.approx(3.0, abs=0.05)


def test_probe_of_garbage_is_unknown(preprocessor: AudioPreprocessor) -> None:
    assert preprocessor.probe_duration_seconds(b"not audio at all" * 100) is None
    assert AudioPreprocessor(None).probe_duration_seconds(b"not audio at all") is None


def test_resolve_ffmpeg_prefers_the_configured_binary() -> None:
    assert resolve_ffmpeg(FFMPEG) == FFMPEG


@pytest.mark.parametrize("configured", ["", "/nonexistent/ffmpeg", "no-such-ffmpeg-binary"])
def test_resolve_ffmpeg_falls_back_to_the_bundled_binary(configured: str) -> None:
    assert resolve_ffmpeg(configured) == FFMPEG


def test_resolve_ffmpeg_gives_none_when_there_is_no_ffmpeg(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_binary() -> str:
        raise RuntimeError("no ffmpeg")

    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", no_binary)

    assert resolve_ffmpeg("/nonexistent/ffmpeg") is None


def test_a_non_positive_timeout_is_refused() -> None:
    with pytest.raises(ValueError, match="timeout"):
        AudioPreprocessor(FFMPEG, timeout_seconds=0)


def test_a_non_positive_process_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="max_processes"):
        AudioPreprocessor(FFMPEG, max_processes=0)


def test_no_more_ffmpeg_processes_run_at_once_than_allowed(tmp_path: Path, call_wav: bytes) -> None:
    journal = tmp_path / "journal"
    slow = tmp_path / "ffmpeg"
    slow.write_text(f"#!/bin/sh\necho start >> {journal}\nsleep 0.2\necho end >> {journal}\nexit 1\n")
    slow.chmod(slow.stat().st_mode | stat.S_IXUSR)
    preprocessor = AudioPreprocessor(str(slow), max_processes=1, timeout_seconds=0.5)

    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda _: preprocessor.preprocess(call_wav), range(3)))

    # each waited its turn: none timed out although three 0.2-s runs take 0.6 s in all
    assert [result.failure for result in results] == [PreprocessingFailure.FFMPEG_FAILED] * 3
    assert journal.read_text().split() == ["start", "end"] * 3
