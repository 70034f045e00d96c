"""A local HTTP server speaking the Lemonfox, pyannoteAI and OpenAI-compatible contracts.

For tests, benchmarks and the demo: latency profiles, injectable faults, rate limits and statistics,
and six scripted sample calls whose audio the project generates itself. Clearly a simulator wherever it
shows (startup log line, ``x-scryon-simulator: 1`` header, ``/_sim/health``).
"""

from scryon_dagster.simulator.app import create_app
from scryon_dagster.simulator.samples import (
    SAMPLE_CALLS,
    SampleCall,
    SamplePath,
    find_sample,
    generate_sample_audio,
)
from scryon_dagster.simulator.server import SimulatorAdmin, SimulatorServer, run_simulator

__all__ = [
    "SAMPLE_CALLS",
    "SampleCall",
    "SamplePath",
    "SimulatorAdmin",
    "SimulatorServer",
    "create_app",
    "find_sample",
    "generate_sample_audio",
    "run_simulator",
]
