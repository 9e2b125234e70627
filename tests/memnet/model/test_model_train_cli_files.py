"""``memnet train --train/--valid`` and ``memnet eval --test/--record`` on your own files;
malformed input stops with ``file:line: what is wrong`` and writes nothing."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from memnet.model.checkpoint import load_checkpoint
from memnet_cli import main

EXAMPLES = Path(__file__).resolve().parents[3] / "docs" / "examples" / "robots"
TRAIN, TEST = EXAMPLES / "train.jsonl", EXAMPLES / "test.jsonl"
QUICK = ["--no-progress", "--epochs", "1", "--ls-epochs", "0", "--dim", "8", "--tying", "kv"]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_train_on_files_with_every_data_flag_then_eval_and_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "robots.pt"
    vocab, answers = tmp_path / "vocab.txt", tmp_path / "answers.txt"
    words = {w for line in TRAIN.read_text().splitlines() for w in _words(line)}
    words |= {w for line in TEST.read_text().splitlines() for w in _words(line)}
    vocab.write_text("\n".join(sorted(words)) + "\n")
    labels = {json.loads(line)["answer"] for line in TRAIN.read_text().splitlines()}
    answers.write_text("\n".join(sorted(labels)) + "\n")
    argv = [
        "train", "--train", str(TRAIN), "--valid", str(TEST), "--tasks", "whereabouts,tools",
        "--memory-size", "6", "--sentence-len", "5", "--vocab", str(vocab),
        "--answers", str(answers), "-o", str(out), *QUICK,
    ]  # fmt: skip
    code, stdout, _ = _run(capsys, *argv)
    assert code == 0 and "saved" in stdout
    ckpt = load_checkpoint(out)
    t = ckpt.train_config
    assert t["train_files"] == [str(TRAIN)] and t["valid_files"] == [str(TEST)]
    assert t["task_names"] == ["whereabouts", "tools"]
    assert (ckpt.memory_size, ckpt.sentence_len) == (6, 5)
    assert ckpt.vocab.words[1:] == tuple(sorted(words))
    assert ckpt.answers.words == tuple(sorted(labels))
    assert ckpt.card.command == shlex.join(["memnet", *argv])
    assert ckpt.card.results[0].questions == 240  # the two tasks' test questions

    report = tmp_path / "test.json"
    code, stdout, _ = _run(capsys, "eval", str(out), "--test", str(TEST), "--json", str(report))
    assert code == 0 and "| 1 whereabouts | 120 |" in stdout and "battery" not in stdout
    payload = json.loads(report.read_text())
    assert [t["name"] for t in payload["tasks"]] == ["whereabouts", "tools"]
    assert len(load_checkpoint(out).card.results) == 1  # not recorded without --record
    argv = ["eval", str(out), "--test", str(TEST), "--tasks", "battery", "--record"]
    code, stdout, _ = _run(capsys, *argv)
    assert code == 0 and "recorded" in stdout
    recorded = load_checkpoint(out).card.results[-1]
    assert (recorded.split, recorded.tasks, recorded.questions) == ("test", 1, 120)


def _words(line: str) -> set[str]:
    from memnet.data.vocab import tokenize

    record = json.loads(line)
    return {w for s in [*record["story"], record["question"]] for w in tokenize(s)}


@pytest.mark.parametrize(
    ("content", "suffix", "where"),
    [
        ('{"story": ["a b."], "question": "c?", "answer": "d"}\n{"story": []}\n', "jsonl", ":2: "),
        ("1 Mary went home.\n2 Where is Mary?\thome\tx\n", "txt", ":2: supporting facts"),
    ],
)
def test_malformed_training_data_exits_2_with_file_and_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, suffix: str, where: str
) -> None:
    bad = tmp_path / f"bad.{suffix}"
    bad.write_text(content)
    out = tmp_path / "never.pt"
    code, _, err = _run(capsys, "train", "--train", str(bad), "-o", str(out), *QUICK)
    assert code == 2
    assert f"{bad}{where}" in err and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob("never.pt*"))


def test_eval_of_malformed_test_data_writes_no_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m.pt"
    assert _run(capsys, "train", "--train", str(TRAIN), "-o", str(out), *QUICK)[0] == 0
    bad = tmp_path / "test.jsonl"
    bad.write_text(TEST.read_text().splitlines()[0] + "\nnot json\n")
    report = tmp_path / "r.json"
    code, _, err = _run(capsys, "eval", str(out), "--test", str(bad), "--json", str(report))
    assert code == 2 and f"{bad}:2: not JSON" in err
    assert not report.exists()
    before = load_checkpoint(out).card
    code, _, _ = _run(capsys, "eval", str(out), "--test", str(bad), "--record")
    assert code == 2 and load_checkpoint(out).card == before


@pytest.mark.parametrize(
    ("flags", "field"),
    [
        (["--valid", str(TEST)], "[valid]"),
        (["--train", str(TRAIN), "--data-dir", str(EXAMPLES)], "[train]"),
    ],
)
def test_inconsistent_data_flags_exit_2(
    flags: list[str], field: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = _run(capsys, "train", *flags, "-o", str(tmp_path / "x.pt"), *QUICK)
    assert code == 2 and field in err
    assert not (tmp_path / "x.pt").exists()
