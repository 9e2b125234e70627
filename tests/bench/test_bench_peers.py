"""The peers benchmark's ratios and in-flight measurement, without any peer installed."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import peer_measure
import peers


def _result(system: str, *, qps: float, qps_in_flight: float, inserts: float) -> dict[str, Any]:
    r = peer_measure.PeerResult(system, "1", 1000, "", insert_per_s=inserts, recall=0.96, qps=qps)
    r.qps_in_flight = qps_in_flight
    return r.__dict__.copy()


def test_ratios_need_three_times_at_one_and_at_eight_in_flight() -> None:
    ours = _result("memnet gRPC + SDK (HNSW)", qps=600, qps_in_flight=900, inserts=6000)
    server = _result("Chroma server", qps=150, qps_in_flight=200, inserts=1500)
    embedded = _result("Chroma PersistentClient", qps=150, qps_in_flight=0, inserts=1500)
    data = {"sizes": [1000], "results": [ours, server, embedded]}
    by_peer = {r.theirs: r for r in peers.ratios(data)}
    assert by_peer["Chroma server"].qps_in_flight == 4.5 and by_peer["Chroma server"].met
    assert by_peer["Chroma PersistentClient"].qps_in_flight is None  # not measured there
    server["qps_in_flight"] = 400  # 2.25x at 8 in flight: not met, though 4x at 1
    slow = {r.theirs: r for r in peers.ratios(data)}["Chroma server"]
    assert slow.qps == 4 and not slow.met
    assert "at 8 in flight (target ≥ 3× on each: NOT met)" in peers.verdict(data)
    rows = peers._peer_rows(data["results"])
    assert [row[9] for row in rows] == ["900", "400", "-"]


def test_qps_in_flight_runs_every_caller_at_once() -> None:
    calls: list[str] = []
    lock = threading.Lock()

    def search(q: np.ndarray) -> list[int]:
        with lock:
            calls.append(threading.current_thread().name)
        return [int(q[0])]

    queries = np.arange(50, dtype=np.float32)[:, None]
    assert peer_measure.qps_in_flight(search, queries, callers=4) > 0
    per_caller = peer_measure.IN_FLIGHT_QUERIES // 4
    assert len(calls) == 4 * per_caller
    assert sorted(calls.count(name) for name in set(calls)) == [per_caller] * 4
