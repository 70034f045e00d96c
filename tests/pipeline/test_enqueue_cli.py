"""`scryon-dagster enqueue`: one line out, non-zero on any bad input, nothing half-written."""

from __future__ import annotations

import io
import random
import wave
from pathlib import Path
from uuid import UUID

import pytest

from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.cli import main
from scryon_dagster.domain.calls import ArtifactType, CallStatus, Direction
from tests.fixtures.pipeline import sample_by_slug


@pytest.fixture
def storage_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str) -> Path:
    monkeypatch.setenv("SCRYON_DATABASE_URL", database_url)
    monkeypatch.setenv("OBJECT_STORAGE_PROVIDER", "local")
    monkeypatch.setenv("OBJECT_STORAGE_LOCAL_PATH", str(tmp_path / "storage"))
    return tmp_path / "storage"


def stored_files(storage_dir: Path) -> list[Path]:
    return [path for path in storage_dir.rglob("*") if path.is_file()] if storage_dir.exists() else []


WAV_HEADER_BYTES = 44
WAV_BYTES_PER_SECOND = 16_000 * 2


def wav_of(seconds: float) -> bytes:
    """A mono 16-kHz 16-bit WAV of a tone, with a header that tells the truth."""
    frames = round(seconds * 16_000)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(16_000)
        writer.writeframes(bytes((index * 7) % 256 for index in range(2 * frames)))
    return buffer.getvalue()


def cut_to(seconds: float, wav: bytes) -> bytes:
    """``wav`` cut off after ``seconds`` of audio; its header still claims the whole length."""
    return wav[: WAV_HEADER_BYTES + round(seconds * WAV_BYTES_PER_SECOND)]


def riff_noise() -> bytes:
    """A RIFF/WAVE signature followed by random bytes: looks like a WAV, decodes to nothing."""
    return b"RIFF\x24\x80\x00\x00WAVE" + random.Random(14).randbytes(32_000)


def test_enqueue_stores_the_audio_and_queues_the_call(
    db: CallDatabase, storage_dir: Path, sample_audio: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "enqueue", str(sample_audio["no_names"]), "--user-id", "cli-user", "--title", "Quarterly review",
            "--direction", "OUTGOING", "--phone-number", "+1 202 555 0100", "--recorded-at", "2026-11-28T10:15:00Z",
        ]
    )  # fmt: skip

    assert code == 0
    call_id = UUID(capsys.readouterr().out.strip())
    call = db.get_call(call_id)
    assert call is not None
    assert (call.status, call.direction, call.title) == (CallStatus.QUEUED, Direction.OUTGOING, "Quarterly review")
    temp_audio = db.get_artifacts(call_id)[ArtifactType.TEMP_AUDIO]
    assert temp_audio.storage_key.endswith("/temp/audio-upload.wav")
    assert (storage_dir / temp_audio.storage_key).read_bytes() == sample_audio["no_names"].read_bytes()
    assert db.find_user("cli-user") is not None
    assert call.duration_seconds == pytest.approx(sample_by_slug("no_names").duration_seconds, abs=0.01)


@pytest.mark.parametrize(
    ("make_input", "message"),
    [
        (lambda tmp: tmp / "missing.wav", "no such audio file"),
        (lambda tmp: _write(tmp / "notes.txt", b"just some text, not audio"), "unsupported audio type"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    db: CallDatabase,
    storage_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    make_input: object,
    message: str,
) -> None:
    path = make_input(tmp_path)  # type: ignore[operator]

    code = main(["enqueue", str(path)])

    err = capsys.readouterr().err
    assert code != 0
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert stored_files(storage_dir) == []
    assert db.query("SELECT count(*) AS n FROM call_records") == [{"n": 0}]


def test_a_file_over_max_file_size_is_refused_and_removed(
    db: CallDatabase,
    storage_dir: Path,
    sample_audio: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MAX_FILE_SIZE", "4096")

    code = main(["enqueue", str(sample_audio["no_names"])])

    assert code == 1
    assert "MAX_FILE_SIZE" in capsys.readouterr().err
    assert stored_files(storage_dir) == []
    assert db.query("SELECT count(*) AS n FROM call_records") == [{"n": 0}]


def test_an_unreachable_database_is_reported_before_anything_is_stored(
    storage_dir: Path,
    sample_audio: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SCRYON_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")

    code = main(["enqueue", str(sample_audio["no_names"])])

    assert code == 1
    assert "unreachable" in capsys.readouterr().err
    assert stored_files(storage_dir) == []


def test_a_bad_setting_stops_with_the_variable_named(
    storage_dir: Path,
    sample_audio: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MAX_FILE_SIZE", "fifty megabytes")

    assert main(["enqueue", str(sample_audio["no_names"])]) == 2
    assert "MAX_FILE_SIZE" in capsys.readouterr().err


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("audio", "message"),
    [
        (wav_of(0), "audio too short: 0.00 s decodable, at least 0.5 s needed"),
        (cut_to(0.09, wav_of(2.0)), "audio too short: 0.09 s decodable"),
        (riff_noise(), "audio has no decodable sound"),
    ],
    ids=["a 0-second WAV", "a WAV cut to 0.09 s", "random bytes behind a RIFF header"],
)
def test_broken_audio_is_refused_with_nothing_written(
    db: CallDatabase, storage_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], audio: bytes, message: str
) -> None:
    path = _write(tmp_path / "recording.wav", audio)

    code = main(["enqueue", str(path), "--user-id", "refused-user"])

    err = capsys.readouterr().err
    assert code == 1
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert stored_files(storage_dir) == []
    assert db.query("SELECT count(*) AS n FROM call_records") == [{"n": 0}]
    assert db.find_user("refused-user") is None


def test_the_minimum_duration_is_a_setting(
    db: CallDatabase,
    storage_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = _write(tmp_path / "recording.wav", wav_of(0.3))
    monkeypatch.setenv("SCRYON_MIN_AUDIO_SECONDS", "0.25")

    assert main(["enqueue", str(path)]) == 0
    call = db.get_call(UUID(capsys.readouterr().out.strip()))
    assert call is not None
    assert call.duration_seconds == pytest.approx(0.3)


def test_a_recording_cut_short_is_queued_with_its_real_duration(
    db: CallDatabase, storage_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    audio = cut_to(1.25, wav_of(3.0))  # the header still says 3 s
    path = _write(tmp_path / "recording.wav", audio)

    assert main(["enqueue", str(path)]) == 0

    call = db.get_call(UUID(capsys.readouterr().out.strip()))
    assert call is not None
    assert call.status is CallStatus.QUEUED
    assert call.duration_seconds == pytest.approx(1.25)
    temp_audio = db.get_artifacts(call.id)[ArtifactType.TEMP_AUDIO]
    assert (storage_dir / temp_audio.storage_key).read_bytes() == audio


def test_audio_that_cannot_be_checked_in_time_is_refused_with_nothing_written(
    db: CallDatabase,
    storage_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    hanging_ffmpeg = _write(tmp_path / "ffmpeg", b"#!/bin/sh\nexec sleep 30\n")
    hanging_ffmpeg.chmod(0o755)
    monkeypatch.setenv("SCRYON_FFMPEG_PATH", str(hanging_ffmpeg))
    monkeypatch.setenv("SCRYON_AUDIO_PREPROCESSING_TIMEOUT_SECONDS", "0.3")

    code = main(["enqueue", str(_write(tmp_path / "recording.wav", wav_of(2.0)))])

    err = capsys.readouterr().err
    assert code == 1
    assert "audio could not be checked: ffmpeg did not finish within 0.3 s" in err
    assert stored_files(storage_dir) == []
    assert db.query("SELECT count(*) AS n FROM call_records") == [{"n": 0}]
