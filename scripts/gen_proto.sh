#!/usr/bin/env bash
# Regenerates memnet/api/v1/*_pb2*.py(i) from proto/ with grpcio-tools.
# Usage: bash scripts/gen_proto.sh [OUT_DIR]   (default: the repository root)
# tests/test_proto_generated.py proves the committed files match the protos.
set -euo pipefail
cd "$(dirname "$0")/.."
out_dir=${1:-.}
python_bin=${PYTHON:-.venv/bin/python}
"$python_bin" -m grpc_tools.protoc -Iproto \
  --python_out="$out_dir" --pyi_out="$out_dir" --grpc_python_out="$out_dir" \
  proto/memnet/api/v1/*.proto
