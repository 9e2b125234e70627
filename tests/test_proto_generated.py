"""The committed generated code must be exactly what the protos generate."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GENERATED_DIR = REPO / "memnet" / "api" / "v1"


def test_committed_pb2_files_match_a_fresh_generation(tmp_path: Path) -> None:
    subprocess.run(
        ["bash", str(REPO / "scripts" / "gen_proto.sh"), str(tmp_path)],
        check=True,
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
    )
    fresh = {p.name: p.read_text() for p in (tmp_path / "memnet/api/v1").glob("*_pb2*")}
    committed = {p.name: p.read_text() for p in GENERATED_DIR.glob("*_pb2*")}
    assert fresh, "protoc generated nothing"
    assert sorted(committed) == sorted(fresh)
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"regenerate with scripts/gen_proto.sh: {stale} differ from proto/"
