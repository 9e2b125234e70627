#!/usr/bin/env bash
# The long reliability run (docs/reliability.md): 50 SIGKILLs, 600 damaged
# logs, a power cut at every crash point of every fsync policy (three ways of losing the
# unsynced tails), a 120 s load phase, thousands of fuzzed requests. Needs root for the
# tmpfs of the disk-full test (it is skipped otherwise). Takes about 25 minutes on 2 cores.
# Figures go to $MEMNET_RELIABILITY_FIGURES (default $TMPDIR/memnet-reliability-figures.jsonl),
# one JSON object per test. Extra arguments go to pytest, e.g. `-k crash`.
set -euo pipefail
cd "$(dirname "$0")/.."
export MEMNET_RELIABILITY=long
export MEMNET_RELIABILITY_FIGURES="${MEMNET_RELIABILITY_FIGURES:-${TMPDIR:-/tmp}/memnet-reliability-figures.jsonl}"
echo "figures: $MEMNET_RELIABILITY_FIGURES" >&2
exec .venv/bin/python -m pytest tests/reliability -p no:cacheprovider -rxs --timeout=1800 "$@"
