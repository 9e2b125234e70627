"""Importing and using the SDK never imports torch or faiss (users need neither)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from client_support import RunningServer

# Runs in a fresh interpreter where importing torch or faiss raises ImportError.
_CHILD = textwrap.dedent(
    """
    import sys

    class Forbid:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "faiss"):
                raise ImportError(f"{name} is forbidden in this test")
            return None

    sys.meta_path.insert(0, Forbid())

    import numpy as np
    import memnet_client
    from memnet_client import MemnetClient, AsyncMemnetClient, errors, models
    from memnet_cli import connection as cli

    target, bank = sys.argv[1], sys.argv[2]
    with MemnetClient(target) as client:
        client.create_bank(bank, model="vector", key_dim=3, value_dim=3)
        written = client.write(bank, keys=np.eye(3), values=np.eye(3), ids=["a", "b", "c"])
        answer = client.query(bank, query_vectors=np.eye(3)[[1]], k=2, hops=1)
        assert answer.results[0].hops[0].memories[0].id == "b"
        assert client.count(bank) == 3
        client.delete_bank(bank)
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "faiss"))
    print("heavy:" + ",".join(heavy))
    """
)


def test_sdk_works_without_torch_and_faiss(server: RunningServer) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, server.target, "no-torch-bank"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "heavy:"
