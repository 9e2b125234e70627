#!/usr/bin/env bash
# The test command: set up .venv, lint (ruff, buf), type-check (mypy), run pytest.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k store -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/buf lint proto
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
