"""The same memories on the FAISS and the Milvus store give a model the same attention:
the same memories per hop, the same weights and the same answer (vector and text model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from memnet.core.search_options import SearchOptions
from memnet.serving.bank_source import BankMemorySource
from memnet.serving.contract import AttentionMode, QueryOutput, ServedModel
from memnet.serving.repository import CHECKPOINT_DIR
from memnet.serving.text_model import TextMemoryModel
from memnet.serving.vector_model import VectorPassThroughModel
from memnet.store import BankConfig, MemoryBatch, MemoryStore, Metric
from memnet.store.interface import BankStore
from memnet.store_milvus import MilvusStore

STORY = [
    "Mary moved to the bathroom.",
    "John went to the hallway.",
    "Daniel went back to the hallway.",
    "Sandra moved to the garden.",
    "John moved to the office.",
    "Sandra journeyed to the bathroom.",
    "Mary moved to the hallway.",
    "Daniel travelled to the office.",
]
QUESTIONS = ["Where is Mary?", "Where is Daniel?", "Where is Sandra?"]


def _same(faiss_out: QueryOutput, milvus_out: QueryOutput) -> None:
    """Per hop and row, each memory's weight is equal on both stores up to float32
    rounding (memories of equal score may be listed in another order); readout and
    answer probabilities too. The FAISS store takes a flat or HNSW index's own float32
    distances as the scores, the Milvus store computes them from the keys: the two sums
    round differently by a few ulp (tests/memnet/store/test_store_scores.py bounds it)."""
    assert len(faiss_out.hops) == len(milvus_out.hops)
    for f, m in zip(faiss_out.hops, milvus_out.hops, strict=True):
        for b in range(len(f.ids)):
            got = {i: w for i, w in zip(m.ids[b], m.weights[b].tolist(), strict=True) if i}
            want = {i: w for i, w in zip(f.ids[b], f.weights[b].tolist(), strict=True) if i}
            assert got.keys() == want.keys()
            np.testing.assert_allclose(
                [got[i] for i in want], list(want.values()), rtol=1e-5, atol=1e-7
            )
        if f.tail_weights is not None or m.tail_weights is not None:
            assert f.tail_weights is not None and m.tail_weights is not None
            np.testing.assert_allclose(f.tail_weights, m.tail_weights, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(faiss_out.readout, milvus_out.readout, rtol=1e-6, atol=1e-6)
    if faiss_out.answer_probs is not None:
        assert milvus_out.answer_probs is not None
        np.testing.assert_allclose(
            faiss_out.answer_probs, milvus_out.answer_probs, rtol=1e-5, atol=1e-7
        )


def _both(
    tmp_path: Path, milvus_store: MilvusStore, config: BankConfig, batch: MemoryBatch
) -> list[BankStore]:
    faiss_store = MemoryStore(tmp_path / "faiss")
    for store in (faiss_store, milvus_store):
        store.create_bank(config).write(batch)
    return [faiss_store, milvus_store]


def _ask(
    model: ServedModel, stores: list[BankStore], queries: np.ndarray, options: SearchOptions
) -> list[QueryOutput]:
    return [model.query(queries, BankMemorySource(s.bank("b")), options) for s in stores]


@pytest.mark.parametrize(
    "options",
    [
        SearchOptions(k=5),
        SearchOptions(k=5, tail_samples=1000),
        SearchOptions(k=200, mode=AttentionMode.SOFT),
        SearchOptions(k=3, mode=AttentionMode.HARD),
    ],
    ids=["sparse", "sparse-tail", "soft", "hard"],
)
def test_vector_model_weights_match(
    tmp_path: Path, milvus_store: MilvusStore, options: SearchOptions
) -> None:
    rng = np.random.default_rng(5)
    keys = rng.standard_normal((200, 8)).astype(np.float32)
    values = rng.standard_normal((200, 8)).astype(np.float32)
    batch = MemoryBatch(keys=keys, values=values, ids=[f"m{i}" for i in range(200)])
    config = BankConfig(name="b", key_dim=8, value_dim=8, metric=Metric.INNER_PRODUCT)
    stores = _both(tmp_path, milvus_store, config, batch)
    queries = rng.standard_normal((4, 8)).astype(np.float32)
    faiss_out, milvus_out = _ask(VectorPassThroughModel(), stores, queries, options)
    _same(faiss_out, milvus_out)
    stores[0].close()


def test_text_model_answers_and_weights_match(tmp_path: Path, milvus_store: MilvusStore) -> None:
    model = TextMemoryModel.from_checkpoint(CHECKPOINT_DIR / "babi-joint.pt")
    info = model.info
    encoded = model.encode_memories(STORY)
    batch = MemoryBatch(
        keys=encoded.keys, values=encoded.values, ids=[f"s{i}" for i in range(len(STORY))],
        texts=list(STORY),
    )  # fmt: skip
    assert info.key_dim is not None and info.value_dim is not None
    config = BankConfig(
        name="b", key_dim=info.key_dim, value_dim=info.value_dim, metric=info.metric
    )
    stores = _both(tmp_path, milvus_store, config, batch)
    queries = model.encode_queries(QUESTIONS).vectors
    faiss_out, milvus_out = _ask(model, stores, queries, SearchOptions(k=len(STORY)))
    _same(faiss_out, milvus_out)
    assert faiss_out.answer_probs is not None and milvus_out.answer_probs is not None
    answers = [info.answer_vocab[i] for i in milvus_out.answer_probs.argmax(1)]
    assert answers == ["hallway", "office", "bathroom"]  # recency-dependent: temporal encoding
    stores[0].close()
