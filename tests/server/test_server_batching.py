"""Dynamic batching: the Batcher itself, then concurrent queries through a server."""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable

import numpy as np
import pytest
from server_support import Catalog, SlowDouble, StartServer, run_concurrently

from memnet.api.tensors import from_tensor, to_tensor
from memnet.api.v1 import query_pb2
from memnet.errors import DeadlineExceeded, ResourceExhausted
from memnet.serving.contract import HopAttention, QueryOutput
from memnet_server.batching import Batcher


class Recorder:
    """run_batch that doubles its input after ``delay_s`` and records batch sizes."""

    def __init__(self, delay_s: float = 0.1) -> None:
        self.delay_s = delay_s
        self.calls: list[tuple[Hashable, int]] = []

    def __call__(self, key: Hashable, queries: np.ndarray) -> QueryOutput:
        self.calls.append((key, int(queries.shape[0])))
        time.sleep(self.delay_s)
        n = queries.shape[0]
        hop = HopAttention(
            ids=[[f"r{int(q[0])}"] for q in queries],
            scores=np.zeros((n, 1), np.float32),
            weights=np.ones((n, 1), np.float32),
            tail_weights=queries[:, 0].copy(),  # (B,): each row's own, to check the slicing
        )
        return QueryOutput(readout=queries * 2, hops=[hop], answer_probs=None)


def _batcher(recorder: Recorder, **options: float) -> Batcher:
    values = dict(max_batch=64, max_delay_s=0.0, workers=1, max_queued=1000)
    values.update(options)
    return Batcher(recorder, **values)  # type: ignore[arg-type]


def _rows(value: float, n: int = 1) -> np.ndarray:
    return np.full((n, 4), value, np.float32)


def test_requests_arriving_while_busy_share_one_forward_and_get_their_own_rows() -> None:
    recorder = Recorder()
    batcher = _batcher(recorder)
    calls = [lambda v=v: batcher.submit("same", _rows(v, 2), deadline=None) for v in range(8)]
    outputs = run_concurrently(calls)
    sizes = [size for _, size in recorder.calls]
    assert sum(sizes) == 16 and len(sizes) < 8 and max(sizes) > 2
    for value, output in enumerate(outputs):
        assert isinstance(output, QueryOutput)
        np.testing.assert_array_equal(output.readout, _rows(value * 2, 2))
        assert output.hops[0].ids == [[f"r{value}"], [f"r{value}"]]
        tails = output.hops[0].tail_weights
        assert tails is not None
        np.testing.assert_array_equal(tails, [value, value])


def test_different_parameters_are_never_mixed_and_max_batch_holds() -> None:
    recorder = Recorder()
    batcher = _batcher(recorder, max_batch=3)
    calls = [lambda i=i: batcher.submit(i % 2, _rows(i), deadline=None) for i in range(10)]
    outputs = run_concurrently(calls)
    assert all(isinstance(output, QueryOutput) for output in outputs)
    assert all(size <= 3 for _, size in recorder.calls)
    assert sum(size for _, size in recorder.calls) == 10
    for i, output in enumerate(outputs):
        assert output.hops[0].ids == [[f"r{i}"]]  # its own row, whatever batch it rode in


def test_max_delay_waits_for_a_batch_to_fill() -> None:
    recorder = Recorder(delay_s=0.0)
    batcher = _batcher(recorder, max_delay_s=0.2, max_batch=4)
    calls = [lambda i=i: batcher.submit("k", _rows(i), deadline=None) for i in range(4)]
    run_concurrently(calls)
    assert [size for _, size in recorder.calls] == [4]


def test_queue_bound_and_deadlines() -> None:
    recorder = Recorder(delay_s=0.3)
    batcher = _batcher(recorder, max_queued=2)
    first = threading.Thread(target=batcher.submit, args=("a", _rows(0)), kwargs={"deadline": None})
    first.start()
    time.sleep(0.05)  # the first is running; the queue is empty
    with pytest.raises(ResourceExhausted, match="max_queued_queries=2"):
        batcher.submit("b", _rows(1, 3), deadline=None)
    with pytest.raises(DeadlineExceeded):
        batcher.submit("b", _rows(1), deadline=time.monotonic() + 0.05)
    first.join()
    assert [key for key, _ in recorder.calls] == ["a"]  # the expired request never ran


def test_an_error_reaches_every_caller_of_the_batch() -> None:
    def broken(key: Hashable, queries: np.ndarray) -> QueryOutput:
        time.sleep(0.05)
        raise ValueError("boom")

    batcher = Batcher(broken, max_batch=8, max_delay_s=0.0, workers=1, max_queued=100)
    results = run_concurrently(
        [lambda: batcher.submit("k", _rows(0), deadline=None) for _ in range(4)]
    )
    assert all(isinstance(result, ValueError) for result in results)


@pytest.mark.parametrize("enabled", [True, False])
def test_server_batches_concurrent_queries_only_when_enabled(
    start_server: StartServer, enabled: bool
) -> None:
    slow = SlowDouble(delay_s=0.15)
    server = start_server(models=Catalog(None, slow), batching_enabled=enabled, batching_workers=1)
    server.vector_bank("b", dim=4, model="slow")
    keys = np.eye(4, dtype=np.float32)
    server.write_vectors("b", keys, ids=["x", "y", "z", "w"])
    calls = [
        lambda i=i: server.queries.Query(
            query_pb2.QueryRequest(bank="b", query_vectors=to_tensor(keys[i % 4 : i % 4 + 1]), k=1)
        )
        for i in range(6)
    ]
    responses = run_concurrently(calls)
    for i, response in enumerate(responses):
        assert response.results[0].hops[0].memories[0].id == "xyzw"[i % 4]
        readout = from_tensor(response.results[0].readout, field="readout")
        np.testing.assert_array_equal(readout, keys[i % 4])
    assert sum(slow.batch_sizes) == 6
    if enabled:
        assert max(slow.batch_sizes) > 1
    else:
        assert slow.batch_sizes == [1] * 6


def test_a_bank_dropped_and_created_again_never_reaches_the_old_batcher(
    start_server: StartServer,
) -> None:
    server = start_server()
    keys = np.eye(4, dtype=np.float32)
    server.vector_bank("b", dim=4)
    server.write_vectors("b", keys, ids=["old0", "old1", "old2", "old3"])
    one = query_pb2.QueryRequest(bank="b", query_vectors=to_tensor(keys[:1]), k=1)
    assert server.queries.Query(one).results[0].hops[0].memories[0].id == "old0"
    # A query racing DeleteBank can leave the old bank's batcher cached: drop the bank
    # underneath the engine so that its cache still holds the old batcher.
    server.service.engine.store.drop_bank("b")
    server.vector_bank("b", dim=4)
    server.write_vectors("b", keys, ids=["new0", "new1", "new2", "new3"])
    assert server.queries.Query(one).results[0].hops[0].memories[0].id == "new0"
