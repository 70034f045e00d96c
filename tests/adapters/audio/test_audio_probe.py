"""The intake's audio probe: decodable seconds from a file or an in-memory stream, and its failures."""

from __future__ import annotations

import io
import subprocess
import wave
from pathlib import Path

import pytest

from scryon_dagster.adapters.audio import resolve_ffmpeg
from scryon_dagster.adapters.audio_probe import AudioProbe, AudioProbeUnavailableError, AudioUndecodableError

FFMPEG = resolve_ffmpeg("ffmpeg")


@pytest.fixture(scope="module")
def tone_m4a(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 s of AAC in an M4A whose index (moov) comes after the audio, as phone recorders write it."""
    assert FFMPEG is not None
    path = tmp_path_factory.mktemp("probe") / "tone.m4a"
    subprocess.run(
        [FFMPEG, "-loglevel", "error", "-f", "lavfi", "-i", "sine=f=440:d=3", "-ar", "16000", str(path)], check=True
    )
    return path


def probe(ffmpeg_path: str | None = FFMPEG, timeout_seconds: float = 60) -> AudioProbe:
    return AudioProbe(ffmpeg_path=ffmpeg_path, min_seconds=0.5, timeout_seconds=timeout_seconds)


def test_a_file_is_measured_in_place_and_left_at_its_start(tone_m4a: Path) -> None:
    with tone_m4a.open("rb") as audio:
        audio.read(100)

        assert probe().decodable_seconds(audio) == pytest.approx(3.0, abs=0.05)
        assert audio.tell() == 0


def test_an_in_memory_stream_with_the_index_at_the_end_is_measured(tone_m4a: Path) -> None:
    audio = io.BytesIO(tone_m4a.read_bytes())

    assert probe().decodable_seconds(audio) == pytest.approx(3.0, abs=0.05)
    assert audio.tell() == 0


def test_an_m4a_cut_before_its_index_has_nothing_decodable(tone_m4a: Path) -> None:
    with pytest.raises(AudioUndecodableError):
        probe().decodable_seconds(io.BytesIO(tone_m4a.read_bytes()[:5000]))


def test_without_ffmpeg_the_audio_cannot_be_checked() -> None:
    with pytest.raises(AudioProbeUnavailableError, match="not available"):
        probe(ffmpeg_path=None).decodable_seconds(io.BytesIO(b"RIFF"))


def test_an_ffmpeg_that_hangs_is_stopped_at_the_timeout(tmp_path: Path) -> None:
    hanging = tmp_path / "ffmpeg"
    hanging.write_text("#!/bin/sh\nexec sleep 30\n")
    hanging.chmod(0o755)

    with pytest.raises(AudioProbeUnavailableError, match="did not finish"):
        probe(ffmpeg_path=str(hanging), timeout_seconds=0.3).decodable_seconds(io.BytesIO(b"RIFF"))


def test_an_excerpt_is_the_recordings_start_as_16_khz_mono_wav(tone_m4a: Path) -> None:
    audio = io.BytesIO(tone_m4a.read_bytes())

    excerpt = probe().excerpt_wav(audio, max_seconds=1.5)
    whole = probe().excerpt_wav(audio, max_seconds=30)

    with wave.open(io.BytesIO(excerpt)) as reader:
        assert (reader.getnchannels(), reader.getsampwidth(), reader.getframerate()) == (1, 2, 16_000)
        assert reader.getnframes() == pytest.approx(1.5 * 16_000, abs=160)
    assert probe().decodable_seconds(io.BytesIO(whole)) == pytest.approx(3.0, abs=0.05)
    assert audio.tell() == 0


def test_an_excerpt_of_nothing_decodable_is_refused(tone_m4a: Path) -> None:
    with pytest.raises(AudioUndecodableError):
        probe().excerpt_wav(io.BytesIO(tone_m4a.read_bytes()[:5000]), max_seconds=30)
