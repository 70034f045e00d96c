"""Deterministic speech-like audio for a timed conversation (stdlib only: no downloads, no TTS).

Each speaker has a voice: a fundamental frequency with a few harmonics. Each word is voiced as
syllable-shaped bursts with a gentle pitch contour, placed exactly where the conversation's timeline
puts it, so the audio's duration and turn structure match what the simulator later reports for it.
"""

from __future__ import annotations

import io
import math
import sys
import wave
from array import array

from scryon_dagster.simulator.conversation import Conversation, TimedWord

SAMPLE_RATE = 16_000
_AMPLITUDE = 0.3 * 32767
_TABLE_SIZE = 2048
_VOICE_PITCHES_HZ = (118.0, 208.0, 162.0, 141.0)
_HARMONICS = (1.0, 0.55, 0.3, 0.15, 0.08)


def _waveform_table() -> list[float]:
    """One period of a voiced waveform (harmonic series), normalised to peak 1."""
    raw = [
        sum(weight * math.sin(2 * math.pi * (n + 1) * i / _TABLE_SIZE) for n, weight in enumerate(_HARMONICS))
        for i in range(_TABLE_SIZE)
    ]
    peak = max(abs(value) for value in raw)
    return [value / peak for value in raw]


_WAVEFORM = _waveform_table()
_BLOCK = SAMPLE_RATE // 100
_ENVELOPE_SIZE = 512
# One syllable's loudness: a sin² swell, pre-scaled to the output amplitude.
_ENVELOPE = [_AMPLITUDE * math.sin(math.pi * i / _ENVELOPE_SIZE) ** 2 for i in range(_ENVELOPE_SIZE + 1)]


def _syllable_count(word: str) -> int:
    vowels = sum(character in "aeiouyAEIOUY" for character in word)
    return max(1, min(4, vowels))


def _voice_word(samples: array[int], word: TimedWord, pitch_hz: float) -> None:
    start = int(word.start * SAMPLE_RATE)
    count = min(max(1, int((word.end - word.start) * SAMPLE_RATE)), len(samples) - start)
    syllables = _syllable_count(word.bare)
    per_syllable = count / syllables
    envelope_step = _ENVELOPE_SIZE / per_syllable
    phase = 0.0
    for block_start in range(0, count, _BLOCK):
        # A falling-rising contour within the word, a little like intonation; constant per 10 ms block.
        position = block_start / count
        frequency = pitch_hz * (1.0 + 0.07 * math.sin(math.pi * position) - 0.05 * position)
        step = frequency * _TABLE_SIZE / SAMPLE_RATE
        for offset in range(block_start, min(block_start + _BLOCK, count)):
            phase = (phase + step) % _TABLE_SIZE
            envelope = _ENVELOPE[int((offset % per_syllable) * envelope_step)]
            samples[start + offset] = int(envelope * _WAVEFORM[int(phase)])


def synthesize_wav(conversation: Conversation) -> bytes:
    """16 kHz mono 16-bit PCM WAV bytes lasting exactly the conversation's duration."""
    samples = array("h", bytes(2 * round(conversation.duration * SAMPLE_RATE)))
    for turn in conversation.turns:
        pitch = _VOICE_PITCHES_HZ[turn.speaker % len(_VOICE_PITCHES_HZ)]
        for word in turn.words:
            _voice_word(samples, word, pitch)
    if sys.byteorder == "big":
        samples.byteswap()
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(SAMPLE_RATE)
        writer.writeframes(samples.tobytes())
    return buffer.getvalue()
