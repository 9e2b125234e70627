"""Writes to and queries a running memnet container from outside it, through the SDK.

    python docker/roundtrip.py --target 127.0.0.1:50051 write   # create banks, write, query
    python docker/roundtrip.py --target 127.0.0.1:50051 check   # after a restart: all still there

Used by docker/test.sh. The data are deterministic, so ``check`` needs no state from ``write``.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from memnet_client import MemnetClient

STORY = [
    "Mary moved to the bathroom.",
    "John went to the hallway.",
    "Daniel went back to the hallway.",
    "Sandra moved to the garden.",
    "John moved to the office.",
    "Sandra journeyed to the bathroom.",
]
QUESTION = "Where is Daniel?"
ANSWER = "hallway"
SUPPORTING_ID = "s3"
VECTOR_COUNT, KEY_DIM, VALUE_DIM = 200, 16, 8


def vectors() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    keys = rng.standard_normal((VECTOR_COUNT, KEY_DIM)).astype(np.float32)  # (N, Dk)
    values = rng.standard_normal((VECTOR_COUNT, VALUE_DIM)).astype(np.float32)  # (N, Dv)
    return keys, values


def ask_story(client: MemnetClient) -> None:
    result = client.query("story", QUESTION).results[0]
    hop1 = result.hops[0].memories[0]
    print(
        f"story: {QUESTION} -> {result.answer} (p={result.probability:.2f}); "
        f"hop 1 on {hop1.id} '{hop1.text}' w={hop1.weight:.2f}"
    )
    if result.answer != ANSWER:
        sys.exit(f"expected answer {ANSWER!r}, got {result.answer!r}")


def check_vectors(client: MemnetClient) -> None:
    keys, values = vectors()
    ids = [f"v{i}" for i in range(VECTOR_COUNT)]
    found = client.get("vectors", ids, include_vectors=True)
    if len(found) != VECTOR_COUNT:
        sys.exit(f"expected {VECTOR_COUNT} vector memories, got {len(found)}")
    for i, memory in enumerate(found):
        intact = np.array_equal(memory.key, keys[i]) and np.array_equal(memory.value, values[i])
        if memory.id != ids[i] or not intact:
            sys.exit(f"memory {ids[i]} came back changed")
    # Inner-product bank: the best match for v0's key is the exact argmax of keys @ keys[0].
    expected = f"v{int(np.argmax(keys @ keys[0]))}"
    top = client.query("vectors", query_vectors=keys[:1], k=4).results[0].hops[0].memories[0]
    if top.id != expected:
        sys.exit(f"best match for v0's key is {top.id}, exact search says {expected}")
    print(f"vectors: {VECTOR_COUNT} memories intact, best match for v0's key is {top.id}")


def write(client: MemnetClient) -> None:
    client.create_bank("story")
    client.write("story", STORY, ids=[f"s{i + 1}" for i in range(len(STORY))])
    keys, values = vectors()
    client.create_bank("vectors", model="vector", key_dim=KEY_DIM, value_dim=VALUE_DIM)
    client.write("vectors", keys=keys, values=values, ids=[f"v{i}" for i in range(VECTOR_COUNT)])
    ask_story(client)
    check_vectors(client)


def check(client: MemnetClient) -> None:
    names = sorted(bank.spec.name for bank in client.list_banks())
    if names != ["story", "vectors"]:
        sys.exit(f"banks after restart: {names}")
    if client.count("story") != len(STORY):
        sys.exit(f"story bank has {client.count('story')} memories after restart")
    ask_story(client)
    check_vectors(client)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", required=True)
    parser.add_argument("phase", choices=["write", "check"])
    args = parser.parse_args()
    with MemnetClient(args.target) as client:
        write(client) if args.phase == "write" else check(client)


if __name__ == "__main__":
    main()
