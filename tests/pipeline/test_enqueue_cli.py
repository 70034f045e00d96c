"""`scryon-dagster enqueue`: one line out, non-zero on any bad input, nothing half-written."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

import pytest

from scryon_dagster.adapters.db.repository import CallDatabase
from scryon_dagster.cli import main
from scryon_dagster.domain.calls import ArtifactType, CallStatus, Direction


@pytest.fixture
def storage_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str) -> Path:
    monkeypatch.setenv("SCRYON_DATABASE_URL", database_url)
    monkeypatch.setenv("OBJECT_STORAGE_PROVIDER", "local")
    monkeypatch.setenv("OBJECT_STORAGE_LOCAL_PATH", str(tmp_path / "storage"))
    return tmp_path / "storage"


def stored_files(storage_dir: Path) -> list[Path]:
    return [path for path in storage_dir.rglob("*") if path.is_file()] if storage_dir.exists() else []


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
