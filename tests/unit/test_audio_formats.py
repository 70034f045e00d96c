from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scryon_dagster.domain.audio_formats import SUPPORTED_EXTENSIONS, AudioType, sniff_audio_type

MP3_FRAME = b"\xff\xfb\x90\x64" + bytes(60)  # MPEG-1 Layer III, 128 kbit/s, 44.1 kHz
MP3_MPEG2_FRAME = b"\xff\xf3\x64\xc4" + bytes(60)  # MPEG-2 Layer III, 48 kbit/s, 24 kHz
ADTS_FRAME = b"\xff\xf1\x50\x80\x02\x1f\xfc" + bytes(57)  # AAC-LC, 44.1 kHz, stereo


def id3_tag(payload_size: int, *, footer: bool = False) -> bytes:
    syncsafe = bytes((payload_size >> shift) & 0x7F for shift in (21, 14, 7, 0))
    return b"ID3\x04\x00" + (b"\x10" if footer else b"\x00") + syncsafe + bytes(payload_size)


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\x00\x00\x02\x00" + b"".join(compatible)
    return struct.pack(">I", 8 + len(body)) + b"ftyp" + body + b"\x00\x00\x00\x08free"


def ebml_header(doc_type: bytes) -> bytes:
    elements = b"\x42\x86\x81\x01" + b"\x42\x82" + bytes([0x80 | len(doc_type)]) + doc_type
    return b"\x1a\x45\xdf\xa3" + bytes([0x80 | len(elements)]) + elements + b"\x18\x53\x80\x67"


def ogg_first_page(packet: bytes) -> bytes:
    header = b"OggS\x00\x02" + bytes(8) + b"\x01\x00\x00\x00" + bytes(8) + b"\x01" + bytes([len(packet)])
    return header + packet


def riff_wave(tag: bytes = b"RIFF") -> bytes:
    fmt = struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 1, 16000, 32000, 2, 16)
    return tag + struct.pack("<I", 36) + b"WAVE" + fmt + b"data" + struct.pack("<I", 0)


@pytest.mark.parametrize(
    ("head", "filename", "expected"),
    [
        pytest.param(riff_wave(), "call.wav", AudioType.WAV, id="wav"),
        pytest.param(riff_wave(b"RF64"), None, AudioType.WAV, id="rf64"),
        pytest.param(MP3_FRAME, None, AudioType.MP3, id="mp3-frame-sync"),
        pytest.param(MP3_MPEG2_FRAME, None, AudioType.MP3, id="mp3-mpeg2"),
        pytest.param(id3_tag(20) + MP3_FRAME, None, AudioType.MP3, id="mp3-id3"),
        pytest.param(id3_tag(20, footer=True) + bytes(10) + MP3_FRAME, None, AudioType.MP3, id="mp3-id3-footer"),
        pytest.param(id3_tag(20) + ADTS_FRAME, "x.mp3", AudioType.AAC, id="aac-after-id3"),
        pytest.param(id3_tag(20) + b"fLaC" + bytes(40), None, AudioType.FLAC, id="flac-after-id3"),
        pytest.param(id3_tag(10_000)[:4096], "memo.aac", AudioType.AAC, id="long-id3-aac-by-name"),
        pytest.param(id3_tag(10_000)[:4096], "memo.flac", AudioType.FLAC, id="long-id3-flac-by-name"),
        pytest.param(id3_tag(10_000)[:4096], None, AudioType.MP3, id="long-id3-defaults-to-mp3"),
        pytest.param(ADTS_FRAME, None, AudioType.AAC, id="aac-adts"),
        pytest.param(ftyp(b"M4A "), "call.bin", AudioType.M4A, id="m4a-brand"),
        pytest.param(ftyp(b"isom", b"iso2", b"M4A "), None, AudioType.M4A, id="m4a-compatible-brand"),
        pytest.param(ftyp(b"isom", b"iso2", b"mp41"), "Recording.M4A", AudioType.M4A, id="m4a-by-name"),
        pytest.param(ftyp(b"mp42", b"isom"), None, AudioType.MP4, id="mp4"),
        pytest.param(ftyp(b"3gp4", b"isom"), "call.mp4", AudioType.THREE_GPP, id="3gp"),
        pytest.param(ftyp(b"3g2a"), None, AudioType.THREE_GPP2, id="3g2"),
        pytest.param(ogg_first_page(b"OpusHead\x01\x01"), None, AudioType.OPUS, id="ogg-opus"),
        pytest.param(ogg_first_page(b"\x01vorbis\x00\x00"), None, AudioType.OGG, id="ogg-vorbis"),
        pytest.param(b"fLaC\x00\x00\x00\x22" + bytes(34), None, AudioType.FLAC, id="flac"),
        pytest.param(ebml_header(b"webm"), None, AudioType.WEBM, id="webm"),
        pytest.param(ebml_header(b"matroska"), "x.webm", AudioType.MATROSKA, id="matroska"),
        pytest.param(b"\x1a\x45\xdf\xa3", None, AudioType.MATROSKA, id="ebml-truncated"),
        pytest.param(b"#!AMR\n\x3c" + bytes(31), None, AudioType.AMR, id="amr-nb"),
        pytest.param(b"#!AMR-WB\n\x24" + bytes(60), None, AudioType.AMR_WB, id="amr-wb"),
    ],
)
def test_recognises_supported_formats(head: bytes, filename: str | None, expected: AudioType) -> None:
    assert sniff_audio_type(head, filename) is expected


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x89PNG\r\n\x1a\n" + bytes(32), id="png"),
        pytest.param(b"%PDF-1.7\n", id="pdf"),
        pytest.param(b"RIFF\x24\x00\x00\x00AVI LIST", id="avi-riff"),
        pytest.param(b"FORM\x00\x00\x00\x00AIFF", id="aiff"),
        pytest.param(b"hello, this is a text file", id="text"),
        pytest.param(b"\xff\xfb\xf0\x64" + bytes(8), id="mp3-bad-bitrate"),
        pytest.param(b"\xff\xfb\x9c\x64" + bytes(8), id="mp3-bad-sample-rate"),
        pytest.param(b"\xff\xfd\x90\x64" + bytes(8), id="mpeg-layer-2"),
        pytest.param(b"\xff\xeb\x90\x64" + bytes(8), id="mpeg-reserved-version"),
        pytest.param(b"\xff\xf1\x3c\x80" + bytes(8), id="adts-bad-sampling-index"),
        pytest.param(b"\xff\xfb", id="truncated-frame"),
    ],
)
def test_rejects_unsupported_content(head: bytes) -> None:
    assert sniff_audio_type(head, "call.mp3") is None


def test_the_file_name_never_overrides_the_bytes() -> None:
    assert sniff_audio_type(b"%PDF-1.7\n", "call.m4a") is None
    assert sniff_audio_type(riff_wave(), "call.mp3") is AudioType.WAV


def test_every_type_has_a_content_type_and_a_distinct_extension() -> None:
    assert len(set(SUPPORTED_EXTENSIONS)) == len(AudioType)
    for audio_type in AudioType:
        assert audio_type.content_type.startswith("audio/")
        assert audio_type.extension.isalnum()


@given(head=st.binary(max_size=256), filename=st.one_of(st.none(), st.text(max_size=20)))
def test_never_raises_on_arbitrary_bytes(head: bytes, filename: str | None) -> None:
    result = sniff_audio_type(head, filename)
    assert result is None or isinstance(result, AudioType)


@given(tail=st.binary(max_size=64))
def test_id3_tagged_files_are_always_audio(tail: bytes) -> None:
    assert sniff_audio_type(id3_tag(8) + tail) in {AudioType.MP3, AudioType.AAC, AudioType.FLAC}
