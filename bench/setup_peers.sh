#!/usr/bin/env bash
# Create bench/.venv-peers: memnet (service extra, torch pinned to the CPU wheel by
# requirements/constraints.txt) plus the peer vector stores of bench/peers_requirements.txt.
# Usage: bash bench/setup_peers.sh   (re-running reuses the venv)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/bench/.venv-peers"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -c "$ROOT/requirements/constraints.txt" -e "$ROOT[service]"
# The peers are not in constraints.txt; the pins live in peers_requirements.txt. torch, numpy and
# grpcio/protobuf stay at the constrained versions if a peer's own range allows it.
"$VENV/bin/python" -m pip install --quiet -r "$ROOT/bench/peers_requirements.txt"
"$VENV/bin/python" - <<'PY'
import importlib.metadata as md

for name in ("memnet", "torch", "faiss-cpu", "numpy", "grpcio", "protobuf", "chromadb",
             "milvus-lite", "pymilvus", "qdrant-client"):
    try:
        print(f"{name}=={md.version(name)}")
    except md.PackageNotFoundError:
        print(f"{name}: not installed")
PY
du -sh "$VENV"
