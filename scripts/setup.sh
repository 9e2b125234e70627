#!/usr/bin/env bash
# Creates ./.venv and installs memnet (service + milvus + dev extras) at the pinned versions.
# Re-running is cheap: it reinstalls only when pyproject.toml or the constraints change.
set -euo pipefail
cd "$(dirname "$0")/.."
python_bin=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python_bin" -m venv .venv
stamp=.venv/.memnet-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ requirements/constraints.txt -nt "$stamp" ]; then
  echo "memnet: installing into .venv (CPU torch, faiss-cpu, grpcio, pymilvus + Milvus Lite; ~1.3 GB, a minute or two)" >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install --quiet --disable-pip-version-check \
    -c requirements/constraints.txt -e ".[service,milvus,dev]"
  touch "$stamp"
fi
