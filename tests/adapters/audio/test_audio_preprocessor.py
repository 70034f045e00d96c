"""Audio preprocessing with the real ffmpeg binary (the one bundled by imageio-ffmpeg)."""

from __future__ import annotations

import array
import io
import logging
import math
import random
import stat
import statistics
import struct
import subprocess
import tempfile
import time
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import imageio_ffmpeg
import pytest

from scryon_dagster.adapters.audio import (
    OUTPUT_SAMPLE_RATE_HZ,
    AudioPreprocessor,
    ChainTuning,
    PreprocessedAudio,
    PreprocessingFailure,
    build_filter_graph,
    call_audio_directory,
    remove_orphaned_call_audio,
    resolve_ffmpeg,
    wav_duration_seconds,
)
from scryon_dagster.domain.audio_formats import AudioType, sniff_audio_type
from scryon_dagster.domain.calls import ErrorCode
from scryon_dagster.settings import AudioPreprocessingChain, SettingsError, load_settings

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


def as_file(audio: bytes, tmp_path: Path) -> Path:
    """The recording as the pipeline gives it: a file in a directory of the call's own."""
    original = Path(tempfile.mkdtemp(dir=tmp_path)) / "original"
    original.write_bytes(audio)
    return original


def preprocess(
    preprocessor: AudioPreprocessor, audio: bytes, tmp_path: Path, *, diarization_variant: bool = True
) -> PreprocessedAudio:
    original = as_file(audio, tmp_path)
    return preprocessor.preprocess(original, original.parent, diarization_variant=diarization_variant)


def read_wav(audio: bytes | Path) -> tuple[int, int, int, array.array[int]]:
    data = audio if isinstance(audio, bytes) else audio.read_bytes()
    with wave.open(io.BytesIO(data), "rb") as reader:
        samples = array.array("h", reader.readframes(reader.getnframes()))
        return reader.getnchannels(), reader.getframerate(), reader.getsampwidth(), samples


def rms(samples: array.array[int]) -> float:
    return math.sqrt(sum(sample * sample for sample in samples) / len(samples))


@pytest.fixture(scope="module")
def preprocessor() -> AudioPreprocessor:
    return AudioPreprocessor(FFMPEG)


@pytest.fixture(scope="module")
def reference_preprocessor() -> AudioPreprocessor:
    return AudioPreprocessor(FFMPEG, graph=build_filter_graph(AudioPreprocessingChain.REFERENCE))


@pytest.fixture(scope="module")
def call_wav() -> bytes:
    return make_wav(3.0)


def make_two_level_call(turn_seconds: float, turns: int, *, rate: int = 16_000) -> tuple[bytes, list[bool]]:
    """A quiet (-32 dBFS) and a loud (-16 dBFS) voice-like tone taking turns, over 50 Hz hum and hiss, with
    a near-full-scale click in every loud turn; returns the WAV and which turns are loud."""
    noise = random.Random(18)
    loudness = [index % 2 == 1 for index in range(turns)]
    samples = array.array("h")
    for turn, loud in enumerate(loudness):
        level = 10 ** ((-16 if loud else -32) / 20) * math.sqrt(2) / 1.25  # RMS of the two harmonics below
        pitch = 210 if loud else 115
        for index in range(int(turn_seconds * rate)):
            time = turn * turn_seconds + index / rate
            voice = level * (math.sin(2 * math.pi * pitch * time) + 0.75 * math.sin(2 * math.pi * 3 * pitch * time))
            background = 0.005 * math.sin(2 * math.pi * 50 * time) + 0.001 * noise.uniform(-1, 1)
            click = 0.97 if loud and index == rate else 0.0
            samples.append(int(max(-1.0, min(1.0, voice + background + click)) * 32_767))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(samples.tobytes())
    return buffer.getvalue(), loudness


def level_db(samples: array.array[int]) -> float:
    return 20 * math.log10(max(rms(samples), 1.0) / 32_768)


def test_the_default_chain_brings_the_quiet_party_up_to_the_loud_one_without_clipping(
    preprocessor: AudioPreprocessor,
    tmp_path: Path,
) -> None:
    turn_seconds, rate = 4.0, OUTPUT_SAMPLE_RATE_HZ
    call, loudness = make_two_level_call(turn_seconds, 6)

    result = preprocess(preprocessor, call, tmp_path)

    assert not result.used_original
    _, _, _, samples = read_wav(result.transcription_audio)
    edge = int(1.0 * rate)  # the gain moves over about a second at each change of speaker
    levels = {True: [], False: []}
    for turn, loud in enumerate(loudness):
        start = int(turn * turn_seconds * rate)
        levels[loud].append(level_db(samples[start + edge : start + int(turn_seconds * rate) - edge]))
    # the input's gap is 16 dB
    assert statistics.median(levels[True]) - statistics.median(levels[False]) <= 6
    assert max(abs(sample) for sample in samples) <= 32_768 * 10 ** (-1 / 20)


def test_both_variants_are_mono_16khz_wav_of_the_same_duration(
    preprocessor: AudioPreprocessor, call_wav: bytes, tmp_path: Path
) -> None:
    result = preprocess(preprocessor, call_wav, tmp_path)

    assert not result.used_original
    assert result.fallback_reason is None
    assert result.failure is None
    assert result.audio_type is AudioType.WAV
    assert result.duration_seconds == pytest.approx(3.0, abs=0.05)
    for variant in (result.transcription_audio, result.diarization_audio):
        assert variant is not None
        channels, rate, width, samples = read_wav(variant)
        assert (channels, rate, width) == (1, OUTPUT_SAMPLE_RATE_HZ, 2)
        assert len(samples) / rate == pytest.approx(3.0, abs=0.05)
        assert wav_duration_seconds(variant) == pytest.approx(3.0, abs=0.05)
    # The leveled chain gives both providers the same audio, made once.
    assert result.diarization_audio is result.transcription_audio


def test_the_reference_chain_makes_two_different_variants(
    reference_preprocessor: AudioPreprocessor, call_wav: bytes, tmp_path: Path
) -> None:
    result = preprocess(reference_preprocessor, call_wav, tmp_path)

    assert not result.used_original
    assert result.diarization_audio is not None
    assert wav_duration_seconds(result.diarization_audio) == pytest.approx(3.0, abs=0.05)
    # Only the transcription variant is high-passed and denoised.
    assert result.transcription_audio.read_bytes() != result.diarization_audio.read_bytes()


@pytest.mark.parametrize("chain", list(AudioPreprocessingChain))
def test_the_diarization_variant_is_made_only_when_asked_for(
    chain: AudioPreprocessingChain, call_wav: bytes, tmp_path: Path
) -> None:
    preprocessor = AudioPreprocessor(FFMPEG, graph=build_filter_graph(chain))

    both = preprocess(preprocessor, call_wav, tmp_path)
    transcription_only = preprocess(preprocessor, call_wav, tmp_path, diarization_variant=False)

    assert not transcription_only.used_original
    assert transcription_only.diarization_audio is None
    assert both.diarization_audio is not None
    assert transcription_only.transcription_audio.read_bytes() == both.transcription_audio.read_bytes()
    assert transcription_only.duration_seconds == both.duration_seconds


@pytest.mark.parametrize("chain", list(AudioPreprocessingChain))
def test_both_variants_come_from_one_ffmpeg_process_and_one_decode(
    chain: AudioPreprocessingChain, tmp_path: Path, call_wav: bytes
) -> None:
    journal = tmp_path / "journal"
    wrapper = tmp_path / "ffmpeg"
    wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" >> {journal}\necho --- >> {journal}\nexec {FFMPEG} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)

    result = preprocess(AudioPreprocessor(str(wrapper), graph=build_filter_graph(chain)), call_wav, tmp_path)

    assert not result.used_original
    arguments = journal.read_text().split("\n")
    assert arguments.count("---") == 1
    assert arguments.count("-i") == 1
    # the input is decoded inside the graph, once
    graph = arguments[arguments.index("-i") + 1]
    assert arguments[arguments.index("-i") - 2 : arguments.index("-i")] == ["-f", "lavfi"]
    assert graph.count("amovie=") == 1
    separate_outputs = 2 if chain is AudioPreprocessingChain.REFERENCE else 1
    assert arguments.count("-map") == separate_outputs


def damaged_recording(tmp_path: Path) -> bytes:
    """20 s of AAC in M4A with a stretch of its audio data overwritten, as a failing card or upload leaves it."""
    recording = bytearray(encode(make_wav(20.0, rate=16_000, channels=1), tmp_path, "damaged.m4a", "-c:a", "aac"))
    middle = recording.find(b"mdat") + len(recording) // 3
    recording[middle : middle + 400] = random.Random(3).randbytes(400)
    return bytes(recording)


def test_damaged_audio_is_converted_to_its_end_not_cut_at_the_damage(tmp_path: Path) -> None:
    damaged = damaged_recording(tmp_path)
    (tmp_path / "damaged-copy.m4a").write_bytes(damaged)
    # decoded inside the graph alone, ffmpeg stops at the damage (and exits 0)
    graph = build_filter_graph(AudioPreprocessingChain.LEVELED).decoding_graph(
        str(tmp_path / "damaged-copy.m4a"), diarization_variant=False
    )
    in_graph = subprocess.run(
        [FFMPEG, "-loglevel", "error", "-f", "lavfi", "-i", graph, "-f", "s16le", "pipe:1"],
        capture_output=True,
        check=True,
    )
    assert len(in_graph.stdout) / 2 / OUTPUT_SAMPLE_RATE_HZ < 15

    result = preprocess(AudioPreprocessor(FFMPEG), damaged, tmp_path)

    assert not result.used_original
    assert result.duration_seconds == pytest.approx(20.0, abs=0.5)


@pytest.mark.parametrize(
    ("amplitude", "least_gain", "most_gain"),
    [
        # peaks at -30 dBFS: raised (the gain is capped at +20 dB and ramps up over the first second)
        pytest.param(0.03, 4.0, 10.0, id="quiet-speech-is-raised"),
        # peaks under -40 dBFS are what a denoised pause looks like: not raised (the denoiser may lower them)
        pytest.param(0.005, 0.0, 1.5, id="near-silence-is-not-raised"),
    ],
)
def test_quiet_audio_is_brought_up_to_speech_loudness(
    preprocessor: AudioPreprocessor, amplitude: float, least_gain: float, most_gain: float, tmp_path: Path
) -> None:
    quiet = make_wav(4.0, amplitude=amplitude)
    _, _, _, original = read_wav(quiet)

    result = preprocess(preprocessor, quiet, tmp_path)

    assert result.diarization_audio is not None
    _, _, _, normalized = read_wav(result.diarization_audio)
    assert least_gain * rms(original) < rms(normalized) < most_gain * rms(original)


def test_output_wav_carries_no_metadata(preprocessor: AudioPreprocessor, call_wav: bytes, tmp_path: Path) -> None:
    tagged = encode(call_wav, tmp_path, "tagged.m4a", "-metadata", "title=Call with Jane Doe", "-c:a", "aac")

    result = preprocess(preprocessor, tagged, tmp_path)

    assert not result.used_original
    for variant in (result.transcription_audio, result.diarization_audio):
        assert variant is not None
        content = variant.read_bytes()
        assert b"Jane" not in content
        assert b"LIST" not in content[:64]


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
    result = preprocess(preprocessor, encoded, tmp_path)
    assert not result.used_original
    assert result.duration_seconds == pytest.approx(3.0, abs=0.1)
    assert preprocessor.probe_duration_seconds(as_file(encoded, tmp_path)) == pytest.approx(3.0, abs=0.1)


def test_malformed_audio_falls_back_to_the_original(preprocessor: AudioPreprocessor, tmp_path: Path) -> None:
    garbage = b"definitely not audio " * 500

    result = preprocess(preprocessor, garbage, tmp_path)

    assert result.used_original
    assert result.transcription_audio.name == "original"
    assert result.diarization_audio == result.transcription_audio
    assert result.transcription_audio.read_bytes() == garbage
    assert result.fallback_reason is ErrorCode.AUDIO_PREPROCESSING_FAILED
    assert result.failure is PreprocessingFailure.INVALID_AUDIO
    assert result.ffmpeg_exit_code not in (None, 0)
    assert result.audio_type is None
    assert result.duration_seconds is None


def test_empty_audio_falls_back_without_running_ffmpeg(preprocessor: AudioPreprocessor, tmp_path: Path) -> None:
    result = preprocess(preprocessor, b"", tmp_path)

    assert result.used_original
    assert result.failure is PreprocessingFailure.EMPTY_INPUT


@pytest.mark.parametrize("ffmpeg_path", [None, "/nonexistent/bin/ffmpeg"])
def test_missing_ffmpeg_falls_back_to_the_original(ffmpeg_path: str | None, call_wav: bytes, tmp_path: Path) -> None:
    result = preprocess(AudioPreprocessor(ffmpeg_path), call_wav, tmp_path)

    assert result.used_original
    assert result.transcription_audio.read_bytes() == call_wav
    assert result.failure is PreprocessingFailure.FFMPEG_UNAVAILABLE
    assert result.fallback_reason is ErrorCode.AUDIO_PREPROCESSING_FAILED
    assert result.audio_type is AudioType.WAV
    assert result.duration_seconds == pytest.approx(3.0, abs=0.01)


def test_a_slow_conversion_times_out_and_falls_back(tmp_path: Path) -> None:
    long_call = make_wav(30.0, rate=16_000, channels=1)

    slow = AudioPreprocessor(FFMPEG, timeout_seconds=0.01, seconds_per_audio_minute=0.01)

    result = preprocess(slow, long_call, tmp_path)

    assert result.used_original
    assert result.failure is PreprocessingFailure.TIMEOUT
    assert result.transcription_audio.read_bytes() == long_call


def fake_ffmpeg(tmp_path: Path, progress_steps: int, audio_seconds_per_step: int, then_sleep: float) -> str:
    """An ffmpeg that reports progress every 0.1 s, then sleeps, then exits 0 without writing any audio."""
    script = tmp_path / "ffmpeg"
    script.write_text(
        "#!/bin/sh\n"
        f"for step in $(seq 1 {progress_steps}); do\n"
        f"  echo out_time_us=$((step * {audio_seconds_per_step} * 1000000)); echo progress=continue; sleep 0.1\n"
        f"done\nsleep {then_sleep}\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def test_the_time_limit_grows_with_the_audio_done(tmp_path: Path, call_wav: bytes) -> None:
    # 15 steps of 10 audio-seconds in ~1.5 s: far past the 0.3-s floor, well inside 6 s per audio minute
    preprocessor = AudioPreprocessor(
        fake_ffmpeg(tmp_path, 15, 10, then_sleep=0), timeout_seconds=0.3, seconds_per_audio_minute=6
    )

    result = preprocess(preprocessor, call_wav, tmp_path)

    assert result.failure is PreprocessingFailure.EMPTY_OUTPUT  # ran to the end: the fake writes no audio
    assert preprocessor.time_limit_seconds(0) == 0.3
    assert preprocessor.time_limit_seconds(2 * 3600) == 720


@pytest.mark.parametrize(
    ("progress_steps", "expected_stop_seconds"),
    [pytest.param(0, 0.3, id="no-progress-stops-at-the-floor"), pytest.param(3, 1.0, id="stall-stops-at-the-budget")],
)
def test_a_stalled_conversion_is_stopped_by_the_limit_of_the_audio_it_has_done(
    tmp_path: Path, call_wav: bytes, progress_steps: int, expected_stop_seconds: float
) -> None:
    # 3 steps of 20 audio-seconds earn 1 s at 1 s per audio minute; then the fake stalls for 10 s
    preprocessor = AudioPreprocessor(
        fake_ffmpeg(tmp_path, progress_steps, 20, then_sleep=10), timeout_seconds=0.3, seconds_per_audio_minute=1
    )

    started = time.monotonic()
    result = preprocess(preprocessor, call_wav, tmp_path)

    assert result.failure is PreprocessingFailure.TIMEOUT
    assert result.used_original
    assert expected_stop_seconds <= time.monotonic() - started < expected_stop_seconds + 2


def test_ffmpeg_errors_are_reduced_to_a_code_and_never_logged(
    tmp_path: Path, call_wav: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    failing = tmp_path / "ffmpeg"
    failing.write_text("#!/bin/sh\necho 'title: Call with Jane Doe +15551234567' >&2\nexit 3\n")
    failing.chmod(failing.stat().st_mode | stat.S_IXUSR)

    with caplog.at_level(logging.DEBUG):
        result = preprocess(AudioPreprocessor(str(failing)), call_wav, tmp_path)

    assert result.failure is PreprocessingFailure.FFMPEG_FAILED
    assert result.ffmpeg_exit_code == 3
    assert "ffmpeg_failed" in caplog.text
    assert "Jane" not in caplog.text
    assert "5551234567" not in caplog.text


def test_the_variants_are_private_files_in_the_calls_directory(
    preprocessor: AudioPreprocessor, reference_preprocessor: AudioPreprocessor, call_wav: bytes, tmp_path: Path
) -> None:
    for chain_preprocessor in (preprocessor, reference_preprocessor):
        result = preprocess(chain_preprocessor, call_wav, tmp_path)

        assert result.diarization_audio is not None
        directory = result.transcription_audio.parent
        assert result.diarization_audio.parent == directory
        # only the recording and the WAVs: the raw PCM that ffmpeg wrote is gone once wrapped
        assert {path.suffix for path in directory.iterdir()} == {"", ".wav"}
        assert {stat.S_IMODE(path.stat().st_mode) for path in directory.iterdir() if path.suffix} == {0o600}


def test_the_call_audio_directory_is_private_and_removed_however_the_call_ends(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # what TMPDIR sets
    with call_audio_directory() as directory:
        assert directory.parent == tmp_path
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        (directory / "original").write_bytes(b"audio")

    def failing_call() -> None:
        with call_audio_directory() as directory:
            (directory / "original").write_bytes(b"audio")
            raise RuntimeError("the call failed")

    with pytest.raises(RuntimeError):
        failing_call()

    assert list(tmp_path.iterdir()) == []


def test_the_audio_of_a_killed_worker_is_removed_and_a_running_ones_kept(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    killed = subprocess.Popen(["sleep", "60"])
    killed.kill()
    killed.wait()
    orphaned = tmp_path / f"scryon-call-audio-{killed.pid}-abc123"
    orphaned.mkdir()
    (orphaned / "original").write_bytes(b"raw audio")
    unrelated = tmp_path / "another-program-1"
    unrelated.mkdir()

    with call_audio_directory() as running:
        assert remove_orphaned_call_audio() == 1

        assert running.exists()
    assert list(tmp_path.iterdir()) == [unrelated]


def test_the_result_repr_never_contains_audio(preprocessor: AudioPreprocessor, tmp_path: Path) -> None:
    marker = b"SECRET-AUDIO-CONTENT" * 10

    result = preprocess(preprocessor, marker, tmp_path)

    assert "SECRET" not in repr(result)


def test_the_leveled_chain_is_the_default_and_follows_the_settings() -> None:
    settings = load_settings(
        scryon_ffmpeg_path=FFMPEG,
        scryon_audio_highpass_hz=120,
        scryon_audio_denoise_nr_db=18,
        scryon_audio_denoise_noise_floor_db=-45,
        scryon_audio_preprocessing_timeout_seconds=5,
    )

    preprocessor = AudioPreprocessor.from_settings(settings)

    assert settings.scryon_audio_preprocessing_chain is AudioPreprocessingChain.LEVELED
    assert preprocessor.ffmpeg_path == FFMPEG
    assert preprocessor.timeout_seconds == 5
    graph = preprocessor.graph
    assert not graph.splits
    assert graph.shared.count("highpass=f=120:p=2") == 2
    assert "afftdn=nr=18:nf=-45" in graph.shared
    assert any(step.startswith("dynaudnorm") for step in graph.shared)
    assert not any("loudnorm" in step for step in graph.shared)


def test_the_reference_chain_is_reachable_with_its_own_defaults() -> None:
    settings = load_settings(scryon_audio_preprocessing_chain="reference")

    graph = AudioPreprocessor.from_settings(settings).graph

    assert graph.splits
    assert "highpass=f=80" in graph.transcription
    assert "afftdn=nr=12:nf=-25" in graph.transcription
    assert any(step.startswith("loudnorm") for step in graph.transcription)
    assert not any(step.startswith(("highpass", "afftdn")) for step in graph.diarization)
    assert any(step.startswith("loudnorm") for step in graph.diarization)


def test_an_unknown_chain_stops_start_up_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCRYON_AUDIO_PREPROCESSING_CHAIN", "louder")

    with pytest.raises(SettingsError, match="SCRYON_AUDIO_PREPROCESSING_CHAIN"):
        load_settings()


@pytest.mark.parametrize("chain", list(AudioPreprocessingChain))
def test_denoise_and_highpass_can_be_switched_off(chain: AudioPreprocessingChain) -> None:
    graph = build_filter_graph(chain, ChainTuning(highpass_hz=0, denoise_enabled=False))

    steps = (*graph.shared, *graph.transcription, *graph.diarization)
    assert not any(step.startswith(("highpass", "afftdn")) for step in steps)
    # Without them the reference chain's two variants are the same conversion.
    assert not graph.splits


def test_probe_reads_a_wav_header_without_ffmpeg(call_wav: bytes, tmp_path: Path) -> None:
    assert AudioPreprocessor(None).probe_duration_seconds(as_file(call_wav, tmp_path)) == pytest.approx(3.0, abs=0.001)


def test_probe_decodes_a_streamed_wav_whose_header_lies(
    preprocessor: AudioPreprocessor, call_wav: bytes, tmp_path: Path
) -> None:
    # A WAV written to a pipe keeps placeholder sizes: the header claims ~4 GiB of samples.
    streamed = (
        call_wav[:4] + struct.pack("<I", 0xFFFFFFFF) + call_wav[8:40] + struct.pack("<I", 0xFFFFFFFF) + call_wav[44:]
    )

    assert wav_duration_seconds(as_file(streamed, tmp_path)) is None
    assert preprocessor.probe_duration_seconds(as_file(streamed, tmp_path)) == pytest.approx(3.0, abs=0.05)


def test_probe_of_garbage_is_unknown(preprocessor: AudioPreprocessor, tmp_path: Path) -> None:
    assert preprocessor.probe_duration_seconds(as_file(b"not audio at all" * 100, tmp_path)) is None
    assert AudioPreprocessor(None).probe_duration_seconds(as_file(b"not audio at all", tmp_path)) is None


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


def test_a_non_positive_per_minute_budget_is_refused() -> None:
    with pytest.raises(ValueError, match="seconds_per_audio_minute"):
        AudioPreprocessor(FFMPEG, seconds_per_audio_minute=0)


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
        results = list(pool.map(lambda _: preprocess(preprocessor, call_wav, tmp_path), range(3)))

    # each waited its turn: none timed out although the 0.2-s runs take more than 0.5 s in all (each call
    # runs ffmpeg twice: decoding in the graph failed, so it tries the ordinary way)
    assert [result.failure for result in results] == [PreprocessingFailure.FFMPEG_FAILED] * 3
    assert journal.read_text().split() == ["start", "end"] * 6
