#!/usr/bin/env bash
# The project's two entry points, each doing all of its own set-up from a clean clone:
#   ./run.sh demo [--port N] [--no-ui]
#                   the pipeline on the embedded default (PostgreSQL, local storage, provider SIMULATOR)
#                   processing the sample calls, with the Dagster UI on http://127.0.0.1:3000 (or port N)
#   ./run.sh test   lint, type check and the whole test suite (real PostgreSQL, S3 server, ffmpeg, simulator;
#                   the browser test when Debian's chromium is on PATH)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

find_python() {
  for candidate in python3.11 python3.12 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] < (3, 13) else 1)'; then
      echo "$candidate"; return 0
    fi
  done
  echo "run.sh: Python 3.11 or 3.12 is required" >&2; return 1
}

ensure_venv() {
  local python stamp wanted
  python=$(find_python)
  if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
  fi
  # reinstall only when the dependency pins change
  wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
  stamp=.venv/.scryon-installed
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e '.[dev]'
    echo "$wanted" > "$stamp"
  fi
}

case "${1:-}" in
  demo)
    shift
    ensure_venv
    exec .venv/bin/scryon-dagster demo "$@"
    ;;
  test)
    shift
    ensure_venv
    .venv/bin/ruff check .
    .venv/bin/ruff format --check .
    .venv/bin/mypy scryon_dagster
    if ! command -v chromium >/dev/null 2>&1; then
      echo "run.sh: no chromium on PATH: the browser test (tests/browser/) is SKIPPED; apt-get install chromium to run it" >&2
    fi
    exec .venv/bin/pytest "$@"
    ;;
  *)
    echo "usage: ./run.sh demo | ./run.sh test [pytest args]" >&2
    exit 2
    ;;
esac
