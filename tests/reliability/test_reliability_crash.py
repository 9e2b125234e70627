"""Crash: SIGKILL ``memnet serve`` while the SDK streams writes, restart, repeat.

Every write the client saw acknowledged must be present after each restart with
its exact key vector, and every restart must reach SERVING. Short: 5 kills;
``MEMNET_RELIABILITY=long``: 50.
"""

from __future__ import annotations

import random
import re
import threading
import time
from pathlib import Path

import grpc
import numpy as np
from reliability_support import (
    ServeProcess,
    Stubs,
    fetch_keys,
    keys_for,
    record_figures,
    scale,
    scale_s,
    serve_process,
)

from memnet_client import MemnetClient, RetryPolicy
from memnet_client.errors import MemnetError

KILLS = scale(5, 50)
BUDGET_S = scale_s(100.0, 1200.0)  # the whole loop, restarts included
DIM = 16
BANK = "crash"
MEMORIES_PER_CALL = 24
CHUNK_MEMORIES = 8  # 3 stream messages (or 3 unary requests) per call
SEED = 7
_CUT = re.compile(r"cut (\d+) bytes")


class Writer(threading.Thread):
    """Writes batches with client ids until the first error; remembers what was acknowledged.

    Even calls use ``stream_write`` (one StreamWriteMemories call), odd calls
    ``write`` (chunked unary WriteMemories); both return only once every chunk is
    durable, so a returned call acknowledges all its ids.
    """

    def __init__(self, target: str, round_number: int, stop: threading.Event) -> None:
        super().__init__(name=f"crash-writer-{round_number}", daemon=True)
        self.target = target
        self.round = round_number
        self.stop_event = stop
        self.acked: list[str] = []
        self.in_flight: list[str] = []  # the ids of the call the kill interrupted
        self.error: MemnetError | None = None
        self.error_at = 0.0

    def run(self) -> None:
        with MemnetClient(
            self.target, retry=RetryPolicy(max_attempts=1), write_timeout_s=20
        ) as client:
            call = 0
            while not self.stop_event.is_set():
                ids = [f"r{self.round}-c{call}-m{i}" for i in range(MEMORIES_PER_CALL)]
                keys = keys_for(ids, DIM)
                try:
                    if call % 2 == 0:
                        client.stream_write(
                            BANK, keys=keys, values=keys, ids=ids,
                            max_chunk_memories=CHUNK_MEMORIES,
                        )  # fmt: skip
                    else:
                        client.write(
                            BANK, keys=keys, values=keys, ids=ids,
                            max_chunk_memories=CHUNK_MEMORIES,
                        )  # fmt: skip
                except MemnetError as error:
                    self.error, self.error_at = error, time.monotonic()
                    self.in_flight = ids
                    return
                self.acked.extend(ids)
                call += 1


def _verify(server: ServeProcess, acked: list[str]) -> None:
    """Every acknowledged id is in the bank with exactly the vector that was written."""
    with grpc.insecure_channel(server.target) as channel:
        found = fetch_keys(Stubs(channel), BANK, acked)
    missing = [i for i in acked if i not in found]
    assert not missing, f"{len(missing)} acknowledged memories lost, e.g. {missing[:5]}"
    expected = keys_for(acked, DIM)
    for row, memory_id in enumerate(acked):
        np.testing.assert_array_equal(found[memory_id], expected[row], err_msg=memory_id)


def _check_atomic(server: ServeProcess, interrupted: list[list[str]]) -> int:
    """Each chunk (one log record) of an interrupted call is all there or not at all, and
    the chunks that are there are its first ones. Returns how many memories survived."""
    survived = 0
    with grpc.insecure_channel(server.target) as channel:
        for ids in interrupted:
            found = fetch_keys(Stubs(channel), BANK, ids)
            present = [memory_id in found for memory_id in ids]
            kept = sum(present)
            assert present == [True] * kept + [False] * (len(ids) - kept), present
            assert kept % CHUNK_MEMORIES == 0, f"a chunk was torn: {kept} of {ids}"
            survived += kept
    return survived


def test_sigkill_during_streaming_writes_loses_no_acknowledged_write(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    acked: list[str] = []
    interrupted: list[list[str]] = []
    startups: list[float] = []
    began = time.monotonic()
    with serve_process(tmp_path / "data", tmp_path / "server.log") as server:
        server.start()
        startups.append(server.startup_s)
        with MemnetClient(server.target, retry=RetryPolicy(max_attempts=1)) as client:
            client.create_bank(BANK, model="vector", key_dim=DIM, value_dim=DIM)
        for round_number in range(KILLS):
            assert time.monotonic() - began < BUDGET_S, (
                f"only {round_number} of {KILLS} kills fit in {BUDGET_S} s"
            )
            stop = threading.Event()
            writer = Writer(server.target, round_number, stop)
            writer.start()
            time.sleep(rng.uniform(0.2, 1.5))
            killed_at = time.monotonic()
            server.kill()
            stop.set()
            writer.join(timeout=30)
            assert not writer.is_alive(), "the writer did not notice the kill"
            if writer.error is not None:
                assert writer.error_at >= killed_at, (
                    f"a write failed while the server was up: {writer.error!r}"
                )
            acked.extend(writer.acked)
            if writer.in_flight:
                interrupted.append(writer.in_flight)
            server.start()  # raises unless the restart reaches SERVING
            startups.append(server.startup_s)
            _verify(server, acked)
        unacknowledged_kept = _check_atomic(server, interrupted)
        cut_bytes = [
            int(match.group(1))
            for entry in server.log_entries()
            if entry.get("level") == "WARNING"
            for match in [_CUT.search(str(entry.get("msg", "")))]
            if match
        ]
        assert server.terminate() == 0
    assert len(acked) >= KILLS * MEMORIES_PER_CALL, "too few writes were acknowledged to judge"
    record_figures(
        "crash",
        kills_survived=KILLS,
        acknowledged_memories=len(acked),
        interrupted_calls=len(interrupted),
        unacknowledged_memories_kept=unacknowledged_kept,
        restarts_failed=0,
        restart_to_serving_s_max=round(max(startups[1:]), 2),
        restart_to_serving_s_median=round(float(np.median(startups[1:])), 2),
        torn_tails_cut=len(cut_bytes),
        bytes_cut_total=sum(cut_bytes),
        duration_s=round(time.monotonic() - began, 1),
    )
