#!/usr/bin/env bash
# The serve command: set up .venv and start memnet on its embedded defaults
# (data in ./memnet-data, the shipped default model, gRPC on 127.0.0.1:50051,
# metrics off). Extra arguments go to `memnet serve`, e.g. --port 6000 --metrics-port 9464.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/memnet serve "$@"
