"""Recognise an uploaded audio file by its first bytes (magic numbers), never by what the client claims.

Pure: it only looks at bytes handed to it. The file name is a tie-breaker where the bytes alone are
ambiguous (an MP4 with a generic brand, or an ID3 tag longer than the bytes we were given).
"""

from __future__ import annotations

from enum import Enum

SNIFF_HEAD_BYTES = 4096
"""How many leading bytes callers should pass to :func:`sniff_audio_type`."""

_ID3_HEADER_BYTES = 10
_ID3_FOOTER_FLAG = 0x10
_EBML_MAGIC = b"\x1a\x45\xdf\xa3"
_EBML_DOCTYPE_ID = b"\x42\x82"


class AudioType(Enum):
    """A supported upload format: its content type and the canonical file extension."""

    content_type: str
    extension: str

    WAV = ("audio/wav", "wav")
    MP3 = ("audio/mpeg", "mp3")
    AAC = ("audio/aac", "aac")
    M4A = ("audio/mp4", "m4a")
    MP4 = ("audio/mp4", "mp4")
    THREE_GPP = ("audio/3gpp", "3gp")
    THREE_GPP2 = ("audio/3gpp2", "3g2")
    OGG = ("audio/ogg", "ogg")
    OPUS = ("audio/ogg", "opus")
    FLAC = ("audio/flac", "flac")
    WEBM = ("audio/webm", "webm")
    MATROSKA = ("audio/x-matroska", "mka")
    AMR = ("audio/amr", "amr")
    AMR_WB = ("audio/amr-wb", "awb")

    def __init__(self, content_type: str, extension: str) -> None:
        self.content_type = content_type
        self.extension = extension


SUPPORTED_EXTENSIONS: tuple[str, ...] = tuple(audio_type.extension for audio_type in AudioType)


def sniff_audio_type(head: bytes, filename: str | None = None) -> AudioType | None:
    """The audio format of a file starting with ``head``, or None when it is not a supported format.

    Pass at least :data:`SNIFF_HEAD_BYTES` bytes when the file is that long.
    """
    if head.startswith(b"#!AMR-WB\n"):
        return AudioType.AMR_WB
    if head.startswith(b"#!AMR\n"):
        return AudioType.AMR
    if head[:4] in (b"RIFF", b"RF64", b"BW64") and head[8:12] == b"WAVE":
        return AudioType.WAV
    if head.startswith(b"fLaC"):
        return AudioType.FLAC
    if head.startswith(b"OggS"):
        return _sniff_ogg(head)
    if head.startswith(_EBML_MAGIC):
        return _sniff_matroska(head)
    if head[4:8] == b"ftyp":
        return _sniff_iso_media(head, _extension_of(filename))
    if head.startswith(b"ID3"):
        return _sniff_after_id3(head, _extension_of(filename))
    return _sniff_mpeg_frame(head)


def _extension_of(filename: str | None) -> str:
    if not filename or "." not in filename:
        return ""
    return filename.rsplit(".", 1)[1].lower()


def _sniff_ogg(head: bytes) -> AudioType:
    # The first Ogg page carries the codec's identification header right after the page header.
    return AudioType.OPUS if b"OpusHead" in head[:128] else AudioType.OGG


def _sniff_matroska(head: bytes) -> AudioType:
    doc_type = _ebml_doc_type(head)
    return AudioType.WEBM if doc_type == b"webm" else AudioType.MATROSKA


def _ebml_doc_type(head: bytes) -> bytes | None:
    """The DocType string of an EBML header ("webm", "matroska"), or None if not within ``head``."""
    position = head.find(_EBML_DOCTYPE_ID, len(_EBML_MAGIC), 64)
    if position < 0 or position + 3 > len(head):
        return None
    size_start = position + len(_EBML_DOCTYPE_ID)
    first = head[size_start]
    # An EBML variable-length integer: the count of leading zero bits gives its extra bytes.
    length = next((index for index in range(8) if first & (0x80 >> index)), None)
    if length is None:
        return None
    size = first & (0xFF >> (length + 1))
    for byte in head[size_start + 1 : size_start + 1 + length]:
        size = (size << 8) | byte
    value_start = size_start + 1 + length
    return head[value_start : value_start + size]


def _sniff_iso_media(head: bytes, extension: str) -> AudioType:
    box_size = int.from_bytes(head[:4], "big")
    major_brand = head[8:12]
    compatible = head[16 : max(16, min(box_size, len(head)))]
    brands = [major_brand] + [compatible[i : i + 4] for i in range(0, len(compatible) - 3, 4)]
    if major_brand.startswith(b"3g2"):
        return AudioType.THREE_GPP2
    if major_brand.startswith(b"3gp"):
        return AudioType.THREE_GPP
    if any(brand in (b"M4A ", b"M4B ") for brand in brands) or extension == "m4a":
        return AudioType.M4A
    return AudioType.MP4


def _sniff_after_id3(head: bytes, extension: str) -> AudioType:
    """ID3v2 tags precede MP3 mostly, but also ADTS AAC and (rarely) FLAC: look past the tag."""
    flags = head[5] if len(head) > 5 else 0
    # The tag size is "syncsafe": four bytes of seven bits each.
    tag_size = 0
    for byte in head[6:10]:
        tag_size = (tag_size << 7) | (byte & 0x7F)
    payload_start = _ID3_HEADER_BYTES + tag_size + (_ID3_HEADER_BYTES if flags & _ID3_FOOTER_FLAG else 0)
    after_tag = head[payload_start:]
    if after_tag.startswith(b"fLaC"):
        return AudioType.FLAC
    if len(after_tag) >= 4:
        frame_type = _sniff_mpeg_frame(after_tag)
        if frame_type is not None:
            return frame_type
    if extension == "aac":
        return AudioType.AAC
    if extension == "flac":
        return AudioType.FLAC
    return AudioType.MP3


def _sniff_mpeg_frame(head: bytes) -> AudioType | None:
    """An MPEG audio frame (MP3) or an ADTS frame (AAC) by its sync word and header fields."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return None
    version_bits = (head[1] >> 3) & 0b11
    layer_bits = (head[1] >> 1) & 0b11
    if layer_bits == 0b00:
        # Layer "00" is reserved in MPEG audio; ADTS uses it with a 12-bit sync word.
        sampling_index = (head[2] >> 2) & 0x0F
        if head[1] & 0xF0 == 0xF0 and sampling_index <= 12:
            return AudioType.AAC
        return None
    bitrate_index = head[2] >> 4
    sample_rate_index = (head[2] >> 2) & 0b11
    if (
        version_bits == 0b01  # reserved MPEG version
        or layer_bits != 0b01  # Layer III only: Layers I and II are not phone-call formats
        or bitrate_index in (0b0000, 0b1111)
        or sample_rate_index == 0b11
    ):
        return None
    return AudioType.MP3
