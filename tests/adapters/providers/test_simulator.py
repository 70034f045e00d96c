"""The provider simulator itself: labelling, contracts, sample recognition, realism, admin API."""

from __future__ import annotations

import struct
import subprocess
import wave
from collections.abc import Iterator, Mapping
from itertools import combinations
from pathlib import Path

import httpx
import imageio_ffmpeg
import pytest

from scryon_dagster.simulator import SAMPLE_CALLS, SimulatorServer, create_app, find_sample, generate_sample_audio
from scryon_dagster.simulator.audio_probe import UndecodableAudioError, probe_duration, wav_duration
from scryon_dagster.simulator.conversation import synthetic_conversation
from scryon_dagster.simulator.outputs import render_transcript
from scryon_dagster.simulator.synthesis import synthesize_wav
from tests.adapters.providers.conftest import silent_wav

AUTH = {"Authorization": "Bearer test-key"}
MP3_AT_8_KHZ = ("-ar", "8000", "-ac", "1", "-f", "mp3", "pipe:1")


@pytest.fixture
def http(simulator: SimulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=simulator.base_url, timeout=10) as client:
        yield client


def transcribe_raw(
    http: httpx.Client, audio: bytes, *, filename: str = "a.wav", fields: Mapping[str, str | list[str]] | None = None
) -> httpx.Response:
    form = {"model": "whisper-1", "response_format": "verbose_json", **(fields or {})}
    return http.post("/v1/audio/transcriptions", headers=AUTH, data=form, files={"file": (filename, audio)})


def test_health_and_every_response_are_labelled(http: httpx.Client) -> None:
    health = http.get("/_sim/health")
    missing = http.get("/v1/jobs/nope", headers=AUTH)

    assert health.json()["simulator"] is True
    assert health.headers["x-scryon-simulator"] == "1"
    assert (missing.status_code, missing.headers["x-scryon-simulator"]) == (404, "1")


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/v1/media/input"), ("POST", "/v1/diarize"), ("GET", "/v1/jobs/x"), ("POST", "/v1/chat/completions")],
)
def test_bearer_token_is_required(http: httpx.Client, method: str, path: str) -> None:
    response = http.request(method, path, json={})

    assert response.status_code == 401


def test_sample_durations_are_distinct_and_call_sized() -> None:
    durations = [sample.duration_seconds for sample in SAMPLE_CALLS]

    assert len(SAMPLE_CALLS) == 6
    assert all(20 <= duration <= 60 for duration in durations)
    assert all(abs(a - b) >= 1.0 for a, b in combinations(durations, 2))
    assert all(find_sample(sample.duration_seconds + 0.2) is sample for sample in SAMPLE_CALLS)


def test_sample_scripts_cover_the_naming_cases() -> None:
    by_slug = {sample.slug: sample for sample in SAMPLE_CALLS}
    first_line = {slug: sample.lines[0].text for slug, sample in by_slug.items()}

    assert first_line["greeting_by_name"].startswith("Hi Praveen")
    assert "this is Jimmy from DocuSign" in by_slug["self_introduction"].lines[1].text
    assert first_line["answering_pattern"] == "Hello?"
    assert by_slug["voicemail"].conversation.speaker_count == 1
    assert by_slug["three_party"].conversation.speaker_count == 3
    no_names = " ".join(line.text for line in by_slug["no_names"].lines)
    assert by_slug["no_names"].contact_name is None
    assert not any(name in no_names for name in ("Praveen", "Jimmy", "Maria", "Tom", "Alex", "DocuSign"))


def test_generated_audio_is_16k_mono_pcm_of_the_script_length(tmp_path: Path) -> None:
    written = generate_sample_audio(tmp_path)

    assert [entry.path.name for entry in written] == [sample.filename for sample in SAMPLE_CALLS]
    for entry in written:
        with wave.open(str(entry.path)) as reader:
            assert (reader.getframerate(), reader.getnchannels(), reader.getsampwidth()) == (16_000, 1, 2)
            assert reader.getnframes() / 16_000 == pytest.approx(entry.sample.duration_seconds, abs=0.001)
    assert written[0].path.read_bytes() == synthesize_wav(SAMPLE_CALLS[0].conversation)  # deterministic


def test_reencoded_sample_is_still_recognised(http: httpx.Client) -> None:
    sample = SAMPLE_CALLS[1]
    encoded = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-i", "pipe:0", *MP3_AT_8_KHZ],
        input=synthesize_wav(sample.conversation),
        capture_output=True,
        check=True,
    ).stdout

    response = transcribe_raw(http, encoded, filename="call.mp3")

    assert response.status_code == 200
    assert "Jimmy from DocuSign" in response.json()["text"]


def test_unknown_audio_gets_a_deterministic_conversation_of_its_length(http: httpx.Client) -> None:
    audio = silent_wav(17.3)

    fields: dict[str, str | list[str]] = {"speaker_labels": "true", "timestamp_granularities[]": ["word", "segment"]}
    first, second = transcribe_raw(http, audio, fields=fields), transcribe_raw(http, audio, fields=fields)

    document = first.json()
    assert first.content == second.content
    assert document["duration"] == pytest.approx(17.3)
    assert document["text"]
    assert max(segment["end"] for segment in document["segments"]) <= 17.3
    assert {segment["speaker"] for segment in document["segments"]} == {"SPEAKER_00", "SPEAKER_01"}


def test_without_speaker_labels_or_word_granularity(http: httpx.Client) -> None:
    document = transcribe_raw(http, silent_wav(12.0)).json()

    assert all(segment["speaker"] is None for segment in document["segments"])
    assert "words" not in document
    assert all("words" not in segment for segment in document["segments"])


def test_plain_json_and_text_formats(http: httpx.Client) -> None:
    as_json = transcribe_raw(http, silent_wav(9.0), fields={"response_format": "json"})
    as_text = transcribe_raw(http, silent_wav(9.0), fields={"response_format": "text"})

    assert set(as_json.json()) == {"text"}
    assert as_text.text == as_json.json()["text"]


def test_transcripts_show_provider_imperfections() -> None:
    documents = [
        render_transcript(
            sample.conversation, speaker_labels=True, word_timestamps=True, language=None, max_speakers=None, seed=0
        )
        for sample in SAMPLE_CALLS
    ]
    words = [word for document in documents for word in document["words"]]
    straddling = [
        segment
        for sample, document in zip(SAMPLE_CALLS, documents, strict=True)
        for segment in document["segments"]
        if any(segment["start"] < turn.start < segment["end"] for turn in sample.conversation.turns)
    ]

    assert any("start" not in word for word in words)
    assert straddling


def test_very_short_audio_gives_an_empty_transcript() -> None:
    assert synthetic_conversation(0.8).turns == ()


def test_wav_duration_tolerates_streamed_headers() -> None:
    audio = bytearray(silent_wav(3.0))
    struct.pack_into("<I", audio, 40, 0xFFFFFFFF)  # the data size ffmpeg leaves when writing to a pipe

    assert wav_duration(bytes(audio)) == pytest.approx(3.0)
    assert wav_duration(b"ID3 not a wav") is None
    with pytest.raises(UndecodableAudioError):
        probe_duration(b"neither audio nor anything else")


def test_presigned_upload_rejects_bearer_and_unknown_tokens(http: httpx.Client) -> None:
    upload_url = http.post("/v1/media/input", headers=AUTH, json={"url": "media://k1"}).json()["url"]

    with_bearer = httpx.put(upload_url, content=b"RIFF", headers=AUTH)
    unknown = http.put("/_sim/presigned/not-a-token", content=b"RIFF")

    assert with_bearer.status_code == 400
    assert unknown.status_code == 403


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/media/input", {"url": "https://example.com/a.wav"}, "url"),
        ("/v1/diarize", {"url": "ftp://x"}, "url"),
        ("/v1/diarize", {"url": "media://k", "maxSpeakers": 0}, "maxSpeakers"),
        ("/v1/diarize", {"url": "media://k", "model": "precision-9"}, "model"),
        (
            "/v1/identify",
            {"url": "media://k", "voiceprints": [{"label": "SPEAKER_01", "voiceprint": "v"}]},
            "voiceprints",
        ),
    ],
)
def test_pyannote_validation_errors_use_the_documented_shape(
    http: httpx.Client, path: str, body: dict[str, object], field: str
) -> None:
    response = http.post(path, headers=AUTH, json=body)

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field


def test_chat_validation_errors_use_the_openai_shape(http: httpx.Client) -> None:
    response = http.post("/v1/chat/completions", headers=AUTH, json={"messages": []})

    assert response.status_code == 400
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


@pytest.mark.parametrize(
    "body",
    [
        {"provider": "lemonfox", "fault": "explode"},
        {"provider": "nobody", "fault": "http_500"},
        {"provider": "lemonfox", "fault": "refusal"},
        {"provider": "pyannote", "fault": "http_500", "times": 0},
        {"provider": "llm", "fault": "http_429", "retry_after_seconds": -1},
    ],
)
def test_fault_admin_rejects_bad_requests(http: httpx.Client, body: dict[str, object]) -> None:
    assert http.post("/_sim/faults", json=body).status_code == 400


def test_faults_are_listed_consumed_and_counted(simulator: SimulatorServer, http: httpx.Client) -> None:
    simulator.admin.set_fault("pyannote", "http_500", times=2)
    listed = http.get("/_sim/faults").json()["faults"]

    statuses = [http.post("/v1/media/input", headers=AUTH, json={"url": "media://a"}).status_code for _ in range(3)]

    stats = simulator.admin.stats()
    assert [fault["times"] for fault in listed] == [2]
    assert statuses == [500, 500, 201]
    assert stats["faults_served"] == {"pyannote": {"http_500": 2}}
    assert stats["requests_total"] == {"pyannote": 3}
    simulator.admin.reset_stats()
    assert simulator.admin.stats()["requests"] == {}


def test_rate_limit_admin(simulator: SimulatorServer, http: httpx.Client) -> None:
    simulator.admin.set_rate_limit("llm", 1)
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}

    first = http.post("/v1/chat/completions", headers=AUTH, json=body)
    second = http.post("/v1/chat/completions", headers=AUTH, json=body)
    simulator.admin.set_rate_limit("llm", None)
    third = http.post("/v1/chat/completions", headers=AUTH, json=body)

    assert (first.status_code, second.status_code, third.status_code) == (200, 429, 200)
    assert int(second.headers["retry-after"]) >= 1
    assert int(second.headers["retry-after-ms"]) > 0


def test_unknown_profile_is_refused() -> None:
    with pytest.raises(ValueError, match="profile"):
        create_app(profile="instant")


def test_realistic_profile_server_starts_on_its_own_port() -> None:
    with SimulatorServer(profile="realistic") as server:
        assert server.admin.health()["profile"] == "realistic"
