"""Checkpoints carry config and vocabulary and give identical outputs after a round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from model_support import ArraySource, tiny_checkpoint

from memnet.core.search_options import SearchOptions
from memnet.errors import InvalidArgument, NotFound
from memnet.model.checkpoint import load_checkpoint, save_checkpoint
from memnet.serving.text_model import TextMemoryModel


def test_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    ckpt = tiny_checkpoint(tying="kv", scoring="cosine", heads=2, activation="half_relu")
    path = tmp_path / "m.pt"
    save_checkpoint(path, ckpt)
    loaded = load_checkpoint(path)
    assert loaded.model_config == ckpt.model_config
    assert loaded.vocab == ckpt.vocab and loaded.answers == ckpt.answers
    assert (loaded.memory_size, loaded.sentence_len, loaded.query_len) == (10, 6, 4)
    a, b = ckpt.build_model(), loaded.build_model()
    q = torch.tensor([[16, 17, 1]])
    story = torch.tensor([[[1, 5, 6, 7, 14], [2, 4, 6, 7, 12]]])
    mask = torch.ones(1, 2, dtype=torch.bool)
    with torch.no_grad():
        assert torch.equal(a(q, story, mask).logits, b(q, story, mask).logits)
    served_a, served_b = TextMemoryModel(ckpt), TextMemoryModel.from_checkpoint(path)
    texts = ["Mary moved to the kitchen.", "John went to the garden."]
    ea, eb = served_a.encode_memories(texts), served_b.encode_memories(texts)
    np.testing.assert_array_equal(ea.keys, eb.keys)
    src = ArraySource(["a", "b"], ea.keys, ea.values, cosine=True)
    u = served_a.encode_queries(["where is mary"]).vectors
    oa, ob = served_a.query(u, src, SearchOptions(k=2)), served_b.query(u, src, SearchOptions(k=2))
    assert oa.answer_probs is not None and ob.answer_probs is not None
    np.testing.assert_array_equal(oa.answer_probs, ob.answer_probs)
    np.testing.assert_array_equal(oa.hops[-1].weights, ob.hops[-1].weights)


def test_bad_checkpoint_files(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save({"format": "other"}, tmp_path / "x.pt")
    with pytest.raises(InvalidArgument):
        load_checkpoint(tmp_path / "x.pt")
