"""Your data in, a served model out: train on the example JSON Lines through the CLI, serve
the checkpoint from ``--models-dir``, write a story through the SDK and get the trained
answer back with its attention; the model card travels with it."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from client_support import FAST_RETRY, RunningServer, serve

from memnet.data.files import TaskTable, read_examples
from memnet.data.jsonl import parse_jsonl
from memnet.data.tensors import tensorize
from memnet.model.checkpoint import Checkpoint, load_checkpoint
from memnet.train.evaluate import predict
from memnet_cli import main
from memnet_client import MemnetClient

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples" / "robots"
MODEL = "robots"
# A quick recipe on the example's "whereabouts" and "battery" tasks: ~10 s of training.
TRAIN = [
    "train", "--train", str(EXAMPLES / "train.jsonl"), "--tasks", "whereabouts,battery",
    "--tying", "kv", "--dim", "20", "--hops", "2", "--ls-epochs", "0", "--epochs", "15",
    "--decay-every", "8", "--optimizer", "adam", "--lr", "0.02", "--no-progress",
    "--augment-entities",
]  # fmt: skip


@dataclass(frozen=True)
class Trained:
    server: RunningServer
    checkpoint: Path
    train_stdout: str


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    models = tmp_path_factory.mktemp("models")
    out = models / f"{MODEL}.pt"
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main([*TRAIN, "-o", str(out), "--name", MODEL]) == 0
        test = ["eval", str(out), "--test", str(EXAMPLES / "test.jsonl"), "--record"]
        assert main(test) == 0
    with serve(tmp_path_factory.mktemp("data"), models_dir=models) as running:
        yield Trained(running, out, buffer.getvalue())


def _test_story() -> tuple[list[str], str, str, int]:
    """The first "whereabouts" test question: statements, question, answer, supporting index."""
    for line in (EXAMPLES / "test.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["task"] == "whereabouts" and len(record["story"]) >= 4:
            return record["story"], record["question"], record["answer"], record["supporting"][0]
    raise AssertionError("no whereabouts question in the example data")


def _offline(ckpt: Checkpoint, story: list[str], question: str) -> tuple[str, list[int]]:
    """The checkpoint's own answer and each hop's most attended statement (index, oldest 0)."""
    line = json.dumps({"story": story, "question": question, "answer": "x"})
    examples = parse_jsonl([line], source="story", task_id=lambda _: 1)
    data = tensorize(
        examples,
        ckpt.vocab,
        ckpt.answers,
        memory_size=ckpt.memory_size,
        sentence_len=ckpt.sentence_len,
        query_len=ckpt.query_len,
    )
    answers, argmax_slots, _ = predict(ckpt.build_model(), data)
    n = len(story)
    return ckpt.answers.words[int(answers[0])], [n - 1 - int(s) for s in argmax_slots[0]]


def test_a_story_written_through_the_sdk_gets_the_trained_answer_and_attention(
    trained: Trained,
) -> None:
    story, question, answer, supporting = _test_story()
    ckpt = load_checkpoint(trained.checkpoint)
    offline_answer, offline_focus = _offline(ckpt, story, question)
    with MemnetClient(trained.server.target, retry=FAST_RETRY) as client:
        client.create_bank("robots-story", model=MODEL)
        written = client.write("robots-story", story)
        result = client.query("robots-story", question, k=len(story)).results[0]
    assert result.answer == offline_answer == answer  # trained, and served as trained
    assert len(result.hops) == 2
    text_of = dict(zip(written.ids, story, strict=True))
    for hop, focus in zip(result.hops, offline_focus, strict=True):
        assert abs(sum(m.weight for m in hop.memories) - 1.0) < 1e-4
        assert text_of[hop.memories[0].id] == story[focus]  # the same memory as offline
    assert text_of[result.hops[0].memories[0].id] == story[supporting]


def test_the_model_card_reaches_get_model_and_memnet_models(
    trained: Trained, capsys: pytest.CaptureFixture[str]
) -> None:
    with MemnetClient(trained.server.target, retry=FAST_RETRY) as client:
        info = client.get_model(MODEL)
        listed = {m.name: m for m in client.list_models()}
    card = info.card
    assert card is not None and listed[MODEL].card == card
    assert listed["vector"].card is None
    assert card.command.startswith("memnet train --train ") and "--augment-entities" in card.command
    digest = hashlib.sha256((EXAMPLES / "train.jsonl").read_bytes()).hexdigest()
    assert [f.sha256 for f in card.data_files] == [digest]
    assert card.data_fingerprint == hashlib.sha256(bytes.fromhex(digest)).hexdigest()
    assert [r.split for r in card.results] == ["validation", "test"]
    assert card.results[1].tasks == 2 and card.results[1].questions == 240
    assert card.settings["model.dim"] == "20" and card.settings["optimizer"] == "adam"
    assert card.data_summary["tasks"] == "2" and card.train_seconds > 0
    assert card.trained_at.endswith("Z")
    assert (
        info.version >= 1
        and info.fingerprint == hashlib.sha256(trained.checkpoint.read_bytes()).hexdigest()
    )

    target = ["--target", trained.server.target]
    assert main(["models", "list", *target]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith(MODEL))
    test = card.results[1]
    assert f"{test.mean_error_pct:.2f} % / {test.failed_tasks}" in row
    assert main(["models", "describe", MODEL, "--settings", *target]) == 0
    out = capsys.readouterr().out
    assert card.command in out and card.data_fingerprint in out
    assert f"version:       {info.version} (checkpoint sha256 {info.fingerprint})" in out
    assert "model.dim = 20" in out and "test:" in out


def test_test_tasks_are_matched_to_the_trained_tasks_by_name(trained: Trained) -> None:
    ckpt = load_checkpoint(trained.checkpoint)
    assert sorted(ckpt.task_names.values()) == ["battery", "whereabouts"]
    table = TaskTable(dict(ckpt.task_names))
    examples = read_examples([EXAMPLES / "test.jsonl"], table)
    by_name = {table.names[ex.task] for ex in examples}
    assert by_name == {"whereabouts", "tools", "battery"}
    assert table.id_of("whereabouts") in ckpt.task_names
    assert "saved" in trained.train_stdout and "recorded" in trained.train_stdout
