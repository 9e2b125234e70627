"""The layers import downwards only: a forbidden import fails these tests.

Layers, bottom to top: ``memnet.core`` and ``memnet.errors`` → ``memnet.store.types`` →
the store (faiss) and the network (torch) → ``memnet.serving`` → the server
(``memnet_server``) and the SDK (``memnet_client``) → the command line (``memnet_cli``).
Each case imports modules in a fresh interpreter whose import system refuses the
names a layer must not reach, and lists what it loaded.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
import textwrap

import pytest

import memnet

_CHILD = textwrap.dedent(
    """
    import importlib, json, sys

    modules, forbidden = json.loads(sys.argv[1]), json.loads(sys.argv[2])

    class Forbid:
        def find_spec(self, name, path=None, target=None):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                raise ImportError(f"{name} is forbidden in this layer")
            return None

    sys.meta_path.insert(0, Forbid())
    for module in modules:
        importlib.import_module(module)
    print(json.dumps(sorted(sys.modules)))
    """
)

SERVER_AND_UP = ["memnet_server", "memnet_client", "memnet_cli"]


def _library_modules() -> list[str]:
    """Every module of the ``memnet`` package (generated gRPC stubs included)."""
    return sorted(
        info.name
        for info in pkgutil.walk_packages(memnet.__path__, prefix="memnet.")
        if not info.name.endswith("__main__")
    )


def _import(modules: list[str], forbidden: list[str]) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(modules), json.dumps(forbidden)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


CASES = {
    "the core imports nothing heavy": (
        ["memnet", "memnet.errors", "memnet.core.enums", "memnet.core.checks"],
        ["torch", "faiss", "grpc", "pydantic", "memnet.store", "memnet.model", "memnet.serving"],
    ),
    "store types and the serving contract need no faiss or torch": (
        ["memnet.store", "memnet.store.types", "memnet.serving.contract"],
        ["torch", "faiss", *SERVER_AND_UP],
    ),
    "the vector model needs no torch": (
        ["memnet.serving.vector_model", "memnet.serving.bank_source"],
        ["torch", "faiss", *SERVER_AND_UP],
    ),
    "the network needs no faiss, store or serving": (
        ["memnet.model.memn2n", "memnet.model.checkpoint", "memnet.train.trainer"],
        ["faiss", "grpc", "memnet.store", "memnet.serving", *SERVER_AND_UP],
    ),
    "the store needs no torch": (
        ["memnet.store.store", "memnet.store.bank"],
        ["torch", "memnet.model", "memnet.serving", *SERVER_AND_UP],
    ),
    "the milvus store needs no faiss, torch or pymilvus until it connects": (
        [
            "memnet.store_milvus",
            "memnet.store_milvus.store",
            "memnet.store_milvus.bank",
            "memnet.store_milvus.search",
        ],
        [
            "faiss",
            "torch",
            "pymilvus",
            "milvus_lite",
            "memnet.model",
            "memnet.serving",
            *SERVER_AND_UP,
        ],
    ),
    "the FAISS store and the server never import pymilvus": (
        ["memnet.store.store", "memnet.store.bank", "memnet_server", "memnet_server.app"],
        ["pymilvus", "milvus_lite", "memnet.store_milvus"],
    ),
    "the library imports neither the server, the SDK nor the command line": (
        _library_modules(),
        SERVER_AND_UP,
    ),
    "the server imports neither the SDK nor the command line": (
        ["memnet_server", "memnet_server.app"],
        ["memnet_client", "memnet_cli"],
    ),
    "the SDK imports neither torch, faiss, the server nor the command line": (
        ["memnet_client", "memnet_client.aio"],
        ["torch", "faiss", "memnet_server", "memnet_cli", "memnet.store", "memnet.model"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_layer_imports_only_downwards(case: str) -> None:
    modules, forbidden = CASES[case]
    loaded = _import(modules, forbidden)
    leaked = [m for m in loaded if any(m == f or m.startswith(f + ".") for f in forbidden)]
    assert not leaked, f"{case}: loaded {leaked}"


def test_the_forbidding_child_does_fail_on_a_forbidden_import() -> None:
    """The harness itself: importing a module that needs faiss with faiss forbidden fails."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(["memnet.store.bank"]), json.dumps(["faiss"])],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0 and "faiss is forbidden" in done.stderr
