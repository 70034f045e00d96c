"""Audio preprocessing chains side by side: CPU cost and what they do to a hard synthetic call.

The call (seeded, numpy): two parties taking turns of 2-8 s, a quiet one (speech at -32 dBFS) and a loud
one (-16 dBFS), the way the far end of a phone line often sounds against the near end. Each voice is a
harmonic source on a gliding pitch (the quiet one ~115 Hz, the loud one ~210 Hz) shaped into syllables,
with fricative noise bursts; the loud party has plosive peaks up to -0.3 dBFS (clipping-prone). Under
everything: 50 Hz mains hum with its 100/150/250 Hz harmonics (-46 dBFS) and white hiss (-60 dBFS). Pauses
between turns are 0.3-1.2 s, with a 3-5 s pause every few turns and 1.5 s of silence at the start.

Every chain runs through ``AudioPreprocessor`` (one ffmpeg process, both variants from one decode), and
each variant is measured against the known timeline:
* speech level: RMS of all speech turns (their first and last 0.3 s left out), dBFS;
* quiet/loud gap: median turn level of the loud party minus that of the quiet party, dB;
* hum and hiss below speech: the pauses' power at 50/100/150/250 Hz (±2 Hz) and the rest of 200-7,600 Hz,
  each below the speech level, dB — in the pauses because there they are all a listener (or an ASR model,
  which hallucinates on amplified noise) hears;
* sample peak and true peak (ffmpeg's ebur128, 4x oversampled), dBFS;
* CPU-s per audio minute of the ffmpeg process (user + system, best of ``--repeats``), for both variants
  and for the transcription variant alone;
and, after the table, what the denoiser takes from each voice at several noise floors (before levelling).

``--variations`` repeats all of it on the call with one thing changed at a time (louder hum or hiss, 60-Hz
mains, a quieter far end), to see where a chain breaks.

Run: .venv/bin/python bench/audio_quality.py [--minutes 5] [--seed 18] [--repeats 3] [--chains a,b] [--input m4a]
     [--variations]
(needs numpy: ``.venv/bin/pip install numpy``).
"""

from __future__ import annotations

import argparse
import io
import itertools
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from scryon_dagster.adapters.audio import (
    OUTPUT_SAMPLE_RATE_HZ,
    AudioPreprocessor,
    ChainTuning,
    FilterGraph,
    PreprocessedAudio,
    build_filter_graph,
    call_audio_directory,
    resolve_ffmpeg,
)
from scryon_dagster.settings import AudioPreprocessingChain

Signal = npt.NDArray[np.float64]

RATE_HZ = 16_000
PLOSIVE_PEAK_DBFS = -0.3
TURN_EDGE_SECONDS = 0.3
PAUSE_EDGE_SECONDS = 0.2


@dataclass(frozen=True)
class Turn:
    start: float
    end: float
    loud: bool


@dataclass(frozen=True)
class CallRecipe:
    """Levels of the synthetic call; the defaults are the benchmark's call."""

    quiet_dbfs: float = -32.0
    loud_dbfs: float = -16.0
    hum_dbfs: float = -46.0
    hiss_dbfs: float = -60.0
    hum_harmonics_hz: tuple[int, ...] = (50, 100, 150, 250)


# --variations: the benchmark's call with one thing changed each, to see where a chain breaks.
VARIATIONS = {
    "as benchmarked": CallRecipe(),
    "hum -40 dBFS": CallRecipe(hum_dbfs=-40),
    "hum -36 dBFS": CallRecipe(hum_dbfs=-36),
    "60-Hz mains": CallRecipe(hum_harmonics_hz=(60, 120, 180, 300)),
    "hiss -50 dBFS": CallRecipe(hiss_dbfs=-50),
    "hiss -45 dBFS": CallRecipe(hiss_dbfs=-45),
    "quiet -38 / loud -14 dBFS": CallRecipe(quiet_dbfs=-38, loud_dbfs=-14),
    "quiet -44 dBFS": CallRecipe(quiet_dbfs=-44),
}


@dataclass(frozen=True)
class SyntheticCall:
    samples: Signal
    turns: list[Turn]
    recipe: CallRecipe

    def wav(self) -> bytes:
        return _wav_bytes(self.samples, RATE_HZ)


@dataclass(frozen=True)
class VariantQuality:
    speech_dbfs: float
    gap_db: float
    hum_below_speech_db: float
    hiss_below_speech_db: float
    sample_peak_dbfs: float
    true_peak_dbfs: float


LEVELED = build_filter_graph(AudioPreprocessingChain.LEVELED).shared
_TO_16KHZ, _STEEP_HIGHPASS, _DENOISE, _LEVEL = LEVELED[:2], LEVELED[2:4], LEVELED[4:5], LEVELED[5:]


def candidates() -> dict[str, FilterGraph]:
    """Chains a step away from the production ones (SCRYON_AUDIO_PREPROCESSING_CHAIN=leveled|reference)."""
    return {
        # the reference's steps with loudnorm swapped for dynaudnorm's defaults (issue 18's orientation figure)
        "hp80+afftdn-50+dynaudnorm(defaults)": FilterGraph(
            shared=(*_TO_16KHZ, "highpass=f=80"),
            transcription=("afftdn=nr=12:nf=-50", "dynaudnorm"),
            diarization=("dynaudnorm",),
        ),
        "speechnorm instead of dynaudnorm": FilterGraph(
            shared=(*_TO_16KHZ, *_STEEP_HIGHPASS, *_DENOISE, "speechnorm=e=12.5:r=0.0001:l=1:p=0.5")
        ),
        "leveled with a 2-pole 80 Hz high-pass": FilterGraph(shared=(*_TO_16KHZ, "highpass=f=80", *_DENOISE, *_LEVEL)),
        "leveled with a 4-pole 100 Hz high-pass": build_filter_graph(
            AudioPreprocessingChain.LEVELED, ChainTuning(highpass_hz=100)
        ),
        "leveled without the leveller threshold": FilterGraph(
            shared=(*_TO_16KHZ, *_STEEP_HIGHPASS, *_DENOISE, _LEVEL[0].split(":t=")[0])
        ),
        "leveled with floor -50 dB and threshold -48 dBFS": FilterGraph(
            shared=(*_TO_16KHZ, *_STEEP_HIGHPASS, "afftdn=nr=12:nf=-50", _LEVEL[0].replace("t=0.01", "t=0.004"))
        ),
        "leveled without denoise": build_filter_graph(
            AudioPreprocessingChain.LEVELED, ChainTuning(denoise_enabled=False)
        ),
        "leveled with denoise for transcription only": FilterGraph(
            shared=(*_TO_16KHZ, *_STEEP_HIGHPASS), transcription=(*_DENOISE, *_LEVEL), diarization=_LEVEL
        ),
        "leveled + lowpass 3.8 kHz": FilterGraph(shared=(*LEVELED, "lowpass=f=3800")),
        "leveled hotter (peaks -0.9 dBFS) + alimiter -2 dB": FilterGraph(
            shared=(
                *_TO_16KHZ,
                *_STEEP_HIGHPASS,
                *_DENOISE,
                _LEVEL[0].replace("p=0.5", "p=0.9"),
                "alimiter=limit=-2dB:level=disabled",
            )
        ),
    }


def synthesize_call(minutes: float, seed: int, recipe: CallRecipe = CallRecipe()) -> SyntheticCall:
    rng = np.random.default_rng(seed)
    total = int(minutes * 60 * RATE_HZ)
    speech = np.zeros(total)
    turns: list[Turn] = []
    cursor, loud, turn_index = 1.5, False, 0
    while True:
        length = rng.uniform(2.0, 8.0)
        if cursor + length > total / RATE_HZ - 0.5:
            break
        start, end = int(cursor * RATE_HZ), int((cursor + length) * RATE_HZ)
        voice = _voice(end - start, rng, pitch_hz=210.0 if loud else 115.0)
        voice *= _db_to_linear(recipe.loud_dbfs if loud else recipe.quiet_dbfs) / _rms(voice)
        if loud:
            _add_plosives(voice, rng)
        speech[start:end] = voice
        turns.append(Turn(cursor, cursor + length, loud))
        turn_index += 1
        cursor += length + (rng.uniform(3.0, 5.0) if turn_index % 5 == 0 else rng.uniform(0.3, 1.2))
        loud = not loud
    time = np.arange(total) / RATE_HZ
    hum = np.zeros(total)
    for index, frequency in enumerate(recipe.hum_harmonics_hz):  # each harmonic 6 dB under the one before
        hum += _db_to_linear(-6.0 * index) * np.sin(2 * np.pi * frequency * time + index)
    hum *= _db_to_linear(recipe.hum_dbfs) / _rms(hum)
    hiss = rng.standard_normal(total) * _db_to_linear(recipe.hiss_dbfs)
    return SyntheticCall(np.clip(speech + hum + hiss, -1.0, 1.0), turns, recipe)


def _voice(length: int, rng: np.random.Generator, *, pitch_hz: float) -> Signal:
    """Syllables of a harmonic voice on a gliding pitch, plus fricative noise bursts."""
    time = np.arange(length) / RATE_HZ
    pitch = pitch_hz * (1 + 0.12 * np.sin(2 * np.pi * rng.uniform(0.2, 0.5) * time + rng.uniform(0, 6)))
    phase = 2 * np.pi * np.cumsum(pitch) / RATE_HZ
    harmonics = int(3_800 // (pitch_hz * 1.12))
    source = sum(np.sin(k * phase) / k for k in range(1, harmonics + 1))
    envelope = np.zeros(length)
    cursor = 0
    while cursor < length:
        syllable = int(rng.uniform(0.12, 0.30) * RATE_HZ)
        stop = min(length, cursor + syllable)
        envelope[cursor:stop] = np.sin(np.linspace(0, np.pi, stop - cursor)) * rng.uniform(0.5, 1.0)
        cursor = stop + int(rng.uniform(0.02, 0.12 if rng.random() < 0.8 else 0.35) * RATE_HZ)
    voice = source * envelope
    for _ in range(int(length / RATE_HZ * 1.5)):
        at, burst = int(rng.uniform(0, length - 2_000)), int(rng.uniform(0.05, 0.12) * RATE_HZ)
        hiss = np.diff(rng.standard_normal(burst + 1))  # tilted to high frequencies, like /s/ and /f/
        voice[at : at + burst] += 0.3 * hiss * np.hanning(burst)
    return voice


def _add_plosives(voice: Signal, rng: np.random.Generator) -> None:
    """Short bursts reaching just under full scale: what clips once a chain adds gain."""
    for _ in range(max(1, int(len(voice) / RATE_HZ / 2))):
        at, burst = int(rng.uniform(0, len(voice) - 200)), int(rng.uniform(0.004, 0.010) * RATE_HZ)
        pulse = np.sin(np.linspace(0, np.pi, burst)) * rng.choice((-1.0, 1.0))  # a /p/ or /b/ thump
        voice[at : at + burst] = pulse * _db_to_linear(PLOSIVE_PEAK_DBFS)


def measure(samples: Signal, call: SyntheticCall, ffmpeg: str) -> VariantQuality:
    turns = call.turns

    def span(start: float, end: float) -> Signal:
        return samples[int(start * RATE_HZ) : int(end * RATE_HZ)]

    inner = [(turn, span(turn.start + TURN_EDGE_SECONDS, turn.end - TURN_EDGE_SECONDS)) for turn in turns]
    speech_dbfs = _linear_to_db(_rms(np.concatenate([part for _, part in inner])))
    loud = np.median([_linear_to_db(_rms(part)) for turn, part in inner if turn.loud])
    quiet = np.median([_linear_to_db(_rms(part)) for turn, part in inner if not turn.loud])
    pause_bounds = [(0.0, turns[0].start)] + [(a.end, b.start) for a, b in itertools.pairwise(turns)]
    pauses = [span(start + PAUSE_EDGE_SECONDS, end - PAUSE_EDGE_SECONDS) for start, end in pause_bounds]
    long_pauses = [pause for pause in pauses if len(pause) >= RATE_HZ // 2]
    hum_power, hiss_power = _hum_and_hiss_power(long_pauses, call.recipe.hum_harmonics_hz)
    return VariantQuality(
        speech_dbfs=speech_dbfs,
        gap_db=float(loud - quiet),
        hum_below_speech_db=speech_dbfs - _power_to_db(hum_power),
        hiss_below_speech_db=speech_dbfs - _power_to_db(hiss_power),
        sample_peak_dbfs=_linear_to_db(float(np.max(np.abs(samples)))),
        true_peak_dbfs=_true_peak_dbfs(samples, ffmpeg),
    )


def _hum_and_hiss_power(pauses: Sequence[Signal], hum_harmonics_hz: Sequence[int]) -> tuple[float, float]:
    """Mean power of the pauses at the hum's harmonics and in the rest of 200-7,600 Hz (Welch, 2 Hz bins)."""
    frame = RATE_HZ // 2
    window = np.hanning(frame)
    frequencies = np.fft.rfftfreq(frame, 1 / RATE_HZ)
    spectra = [
        np.abs(np.fft.rfft(pause[at : at + frame] * window)) ** 2
        for pause in pauses
        for at in range(0, len(pause) - frame + 1, frame // 2)
    ]
    # one-sided power density: its sum over all bins is the frame's mean square
    power = 2 * np.mean(spectra, axis=0) / (frame * np.sum(window**2))
    at_hum = np.zeros(len(frequencies), dtype=bool)
    for harmonic in hum_harmonics_hz:
        at_hum |= np.abs(frequencies - harmonic) <= 2
    in_band = (frequencies >= 200) & (frequencies <= 7_600) & ~at_hum
    return float(np.sum(power[at_hum])), float(np.sum(power[in_band]))


def _true_peak_dbfs(samples: Signal, ffmpeg: str) -> float:
    completed = subprocess.run(
        [ffmpeg, "-hide_banner", "-nostats", "-i", "pipe:0", "-af", "ebur128=peak=true", "-f", "null", "-"],
        input=_wav_bytes(samples, OUTPUT_SAMPLE_RATE_HZ),
        capture_output=True,
        check=True,
    )
    peaks = re.findall(rb"Peak:\s+(-?[\d.]+|-inf) dBFS", completed.stderr)
    return float(peaks[-1]) if peaks else float("nan")


def denoiser_voice_loss(call: SyntheticCall, ffmpeg: str, floors_db: Sequence[int]) -> dict[int, tuple[float, float]]:
    """What ``afftdn`` (12 dB, at each noise floor) takes from each voice: the quiet and the loud party's median
    turn level after high-pass + afftdn, minus after the high-pass alone, dB. Measured before any levelling,
    which would hide it."""

    def party_levels(steps: tuple[str, ...]) -> tuple[float, float]:
        _, samples, _ = _preprocess(
            AudioPreprocessor(ffmpeg, graph=FilterGraph(shared=steps)), call.wav(), diarization_variant=False
        )
        levels = {
            loud: np.median(
                [
                    _linear_to_db(
                        _rms(
                            samples[
                                int((turn.start + TURN_EDGE_SECONDS) * RATE_HZ) : int(
                                    (turn.end - TURN_EDGE_SECONDS) * RATE_HZ
                                )
                            ]
                        )
                    )
                    for turn in call.turns
                    if turn.loud is loud
                ]
            )
            for loud in (False, True)
        }
        return float(levels[False]), float(levels[True])

    quiet_before, loud_before = party_levels((*_TO_16KHZ, *_STEEP_HIGHPASS))
    losses = {}
    for floor_db in floors_db:
        quiet, loud = party_levels((*_TO_16KHZ, *_STEEP_HIGHPASS, f"afftdn=nr=12:nf={floor_db}"))
        losses[floor_db] = (quiet - quiet_before, loud - loud_before)
    return losses


def as_phone_recording(wav: bytes, ffmpeg: str) -> bytes:
    """The call as a phone's recorder writes it: AAC at 48 kHz in an M4A whose index comes last."""
    with tempfile.TemporaryDirectory() as scratch:
        source, target = Path(scratch) / "call.wav", Path(scratch) / "call.m4a"
        source.write_bytes(wav)
        encode = ("-ar", "48000", "-c:a", "aac", "-b:a", "96k")
        subprocess.run(
            [ffmpeg, "-hide_banner", "-loglevel", "error", "-i", str(source), *encode, str(target)], check=True
        )
        return target.read_bytes()


def run_chain(
    preprocessor: AudioPreprocessor, call: SyntheticCall, upload: bytes, repeats: int, ffmpeg: str
) -> tuple[float, float, VariantQuality, VariantQuality]:
    """(CPU-s per audio minute for both variants, for transcription alone, transcription and diarization quality)."""
    minutes = len(call.samples) / RATE_HZ / 60

    def cpu_seconds(action: Callable[[], object]) -> float:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        action()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

    both = min(cpu_seconds(lambda: _preprocess(preprocessor, upload)) for _ in range(repeats))
    alone = min(
        cpu_seconds(lambda: _preprocess(preprocessor, upload, diarization_variant=False)) for _ in range(repeats)
    )
    result, transcription_samples, diarization_samples = _preprocess(preprocessor, upload)
    if result.used_original or diarization_samples is None:
        raise RuntimeError(f"preprocessing fell back to the original audio: {result.failure}")
    transcription = measure(transcription_samples, call, ffmpeg)
    diarization = measure(diarization_samples, call, ffmpeg)
    return both / minutes, alone / minutes, transcription, diarization


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chains", help="comma-separated chain names (default: all)")
    parser.add_argument(
        "--input",
        choices=("wav", "m4a"),
        default="wav",
        help="what the chains get: the 16-kHz WAV, or it encoded as a phone recorder would (AAC in M4A, 48 kHz)",
    )
    parser.add_argument(
        "--variations",
        action="store_true",
        help="repeat everything on the call's variations (VARIATIONS), one table each",
    )
    args = parser.parse_args(argv)
    ffmpeg = resolve_ffmpeg("ffmpeg")
    if ffmpeg is None:
        sys.exit("no ffmpeg found")
    chains: dict[str, FilterGraph] = {chain.value: build_filter_graph(chain) for chain in AudioPreprocessingChain}
    chains |= candidates()
    if args.chains:
        chains = {name: chains[name] for name in args.chains.split(",")}
    recipes = VARIATIONS if args.variations else {"as benchmarked": CallRecipe()}
    for variation, recipe in recipes.items():
        call = synthesize_call(args.minutes, args.seed, recipe)
        upload = call.wav() if args.input == "wav" else as_phone_recording(call.wav(), ffmpeg)
        print(
            f"\n# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs ({platform.machine()}), "
            f"Python {platform.python_version()}, {_ffmpeg_version(ffmpeg)}; synthetic call ({variation}): "
            f"{args.minutes:g} min, seed {args.seed}, {len(call.turns)} turns, the chains get {args.input.upper()}"
        )
        print(
            "| chain | CPU-s/audio min (both / transcription only) | variant | speech dBFS | gap dB "
            "| hum below speech dB | hiss below speech dB | sample peak dBFS | true peak dBFS |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        print(_row("(input)", "—", "—", measure(call.samples, call, ffmpeg)))
        for name, graph in chains.items():
            preprocessor = AudioPreprocessor(ffmpeg, graph=graph, timeout_seconds=600, max_processes=1)
            both, alone, transcription, diarization = run_chain(preprocessor, call, upload, args.repeats, ffmpeg)
            print(_row(name, f"{both:.3f} / {alone:.3f}", "transcription", transcription))
            print(_row("", "", "diarization", diarization), flush=True)
        print("\n| afftdn noise floor | quiet voice through the denoiser, dB | loud voice, dB |\n|---|---|---|")
        for floor_db, (quiet, loud) in denoiser_voice_loss(call, ffmpeg, (-25, -35, -40, -45, -50)).items():
            print(f"| {floor_db} dB | {quiet:+.2f} | {loud:+.2f} |")


def _row(name: str, cpu: str, variant: str, quality: VariantQuality) -> str:
    return (
        f"| {name} | {cpu} | {variant} | {quality.speech_dbfs:.1f} | {quality.gap_db:.1f} "
        f"| {quality.hum_below_speech_db:.1f} | {quality.hiss_below_speech_db:.1f} "
        f"| {quality.sample_peak_dbfs:.2f} | {quality.true_peak_dbfs:.2f} |"
    )


def _ffmpeg_version(ffmpeg: str) -> str:
    first_line = subprocess.run([ffmpeg, "-version"], capture_output=True, text=True, check=True).stdout.split("\n")[0]
    return " ".join(first_line.split()[:3])


def _wav_bytes(samples: Signal, rate: int) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes((np.clip(samples, -1.0, 32_767 / 32_768) * 32_768).astype("<i2").tobytes())
    return buffer.getvalue()


def _preprocess(
    preprocessor: AudioPreprocessor, audio: bytes, *, diarization_variant: bool = True
) -> tuple[PreprocessedAudio, Signal, Signal | None]:
    """``audio`` preprocessed as the pipeline does it (files in a call audio directory): the result and the
    samples of its transcription and diarization variants."""
    with call_audio_directory() as directory:
        original = directory / "original"
        original.write_bytes(audio)
        result = preprocessor.preprocess(original, directory, diarization_variant=diarization_variant)
        transcription = _wav_samples(result.transcription_audio.read_bytes())
        diarization = None if result.diarization_audio is None else _wav_samples(result.diarization_audio.read_bytes())
    return result, transcription, diarization


def _wav_samples(data: bytes) -> Signal:
    with wave.open(io.BytesIO(data), "rb") as reader:
        return np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2") / 32_768.0


def _rms(samples: Signal) -> float:
    return float(np.sqrt(np.mean(np.square(samples))))


def _db_to_linear(db: float) -> float:
    return float(10 ** (db / 20))


def _linear_to_db(value: float) -> float:
    return float(20 * np.log10(max(value, 1e-12)))


def _power_to_db(power: float) -> float:
    return float(10 * np.log10(max(power, 1e-24)))


if __name__ == "__main__":
    main()
