"""The multi-host bed lives with the benchmarks (bench/multihost_bed.py), which import each other by
file name: the tests see bench/ the same way."""

import sys
from pathlib import Path

BENCH = str(Path(__file__).parents[2] / "bench")
if BENCH not in sys.path:
    sys.path.insert(0, BENCH)
