"""The bAbI story demo with the shipped default model, through the raw stubs."""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
from server_support import Running, rpc_error

from memnet.api.tensors import from_tensor, to_tensor
from memnet.api.v1 import bank_pb2, memory_pb2, model_pb2, query_pb2

QA1_TEST = Path(__file__).resolve().parents[2] / "data/babi/en/qa1_single-supporting-fact_test.txt"


def _first_story() -> tuple[list[tuple[int, str]], str, str, int]:
    """Sentences (line number, text) of the first qa1 test story up to its 5th question,
    that question, its answer and its supporting line."""
    sentences: list[tuple[int, str]] = []
    asked = 0
    for line in QA1_TEST.read_text().splitlines():
        number, _, rest = line.partition(" ")
        if "\t" not in rest:
            sentences.append((int(number), rest.strip()))
            continue
        asked += 1
        if asked == 5:
            question, answer, support = rest.split("\t")
            return sentences, question.strip(), answer, int(support)
    raise AssertionError("qa1 test file has no fifth question")


def test_babi_story_answer_and_hop_one_attention(server: Running) -> None:
    default = [m for m in server.models.ListModels(model_pb2.ListModelsRequest()).models]
    (default_model,) = [m for m in default if m.is_default]
    assert (
        default_model.name == "babi-joint" and default_model.input_kind == model_pb2.INPUT_KIND_TEXT
    )

    bank = server.banks.CreateBank(
        bank_pb2.CreateBankRequest(spec=bank_pb2.BankSpec(name="story"))
    ).bank
    assert bank.spec.model == "babi-joint" and bank.spec.key_dim == default_model.key_dim
    assert "every hop" in bank.key_space

    sentences, question, answer, support = _first_story()
    assert (question, answer, support, len(sentences)) == ("Where is Sandra?", "kitchen", 14, 10)
    written = server.memories.WriteMemories(
        memory_pb2.WriteMemoriesRequest(
            bank="story",
            batch=memory_pb2.MemoryBatch(
                memories=[
                    memory_pb2.MemoryInput(
                        id=f"line-{n}", text=text, metadata_json=f'{{"line": {n}}}'
                    )
                    for n, text in sentences
                ]
            ),
        )
    )
    assert written.inserted == 10 and not written.unknown_words

    response = server.queries.Query(
        query_pb2.QueryRequest(bank="story", questions=[question, "Where is John?"], top_answers=3)
    )
    assert response.model == "babi-joint" and response.bank_seq == written.seq
    sandra, john = response.results
    assert sandra.answer == "kitchen" and sandra.probability > 0.5
    assert sandra.alternatives[0].answer == "kitchen" and len(sandra.alternatives) == 3
    probabilities = [a.probability for a in sandra.alternatives]
    assert probabilities == sorted(probabilities, reverse=True)
    assert [h.hop for h in sandra.hops] == list(range(1, default_model.default_hops + 1))
    hop_one = sandra.hops[0].memories
    assert hop_one[0].id == f"line-{support}"
    assert hop_one[0].text == "Sandra moved to the kitchen."
    assert hop_one[0].metadata_json == '{"line":14}'
    assert abs(sum(m.weight for m in hop_one) - 1) < 1e-4
    assert from_tensor(sandra.readout, field="readout").shape == (default_model.key_dim,)
    assert john.answer == "garden"  # line 11, "John went to the garden."


def test_text_bank_rules(server: Running) -> None:
    server.banks.CreateBank(bank_pb2.CreateBankRequest(spec=bank_pb2.BankSpec(name="t")))
    written = server.memories.WriteMemories(
        memory_pb2.WriteMemoriesRequest(
            bank="t",
            batch=memory_pb2.MemoryBatch(
                memories=[memory_pb2.MemoryInput(text="Mary saw a xylophone.")]
            ),
        )
    )
    assert "xylophone" in written.unknown_words
    result = server.queries.Query(
        query_pb2.QueryRequest(bank="t", questions=["Where is the xylophone?"])
    ).results[0]
    assert "xylophone" in result.unknown_words
    for spec, field in (
        (bank_pb2.BankSpec(name="dims", key_dim=7), "key_dim"),
        (bank_pb2.BankSpec(name="metric", metric=bank_pb2.METRIC_L2), "metric"),
    ):
        error = rpc_error(
            lambda spec=spec: server.banks.CreateBank(bank_pb2.CreateBankRequest(spec=spec))
        )
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and field in error.details()
    vectors = to_tensor(np.ones((1, 50), np.float32))
    for request in (
        query_pb2.QueryRequest(bank="t", query_vectors=vectors),
        query_pb2.QueryRequest(bank="t", questions=["  "]),
    ):
        error = rpc_error(lambda request=request: server.queries.Query(request))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    empty_text = memory_pb2.MemoryBatch(memories=[memory_pb2.MemoryInput(id="x")])
    error = rpc_error(
        lambda: server.memories.WriteMemories(
            memory_pb2.WriteMemoriesRequest(bank="t", batch=empty_text)
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "text" in error.details()
