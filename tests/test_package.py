"""The light top-level package must never pull in torch or faiss."""

from __future__ import annotations

import subprocess
import sys


def test_importing_memnet_and_its_api_does_not_import_torch_or_faiss() -> None:
    code = (
        "import sys, memnet, memnet.errors, memnet.api.v1\n"
        "heavy = sorted(m for m in ('torch', 'faiss') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.strip()
    assert out == "", f"importing memnet imported {out}"
