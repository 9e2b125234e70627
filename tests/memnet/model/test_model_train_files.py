"""Training on named files: validation given or held out, sizes from the data or the
flags, the model card, and the same weights on a copy of the data with every word renamed."""

from __future__ import annotations

import hashlib
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from memnet.core.card import DataFile, EvalRecord, fingerprint
from memnet.data.babi import find_default_data_dir
from memnet.data.files import TaskTable, read_examples
from memnet.errors import InvalidArgument
from memnet.model.checkpoint import load_checkpoint, record_result, save_checkpoint
from memnet.train.config import TrainConfig
from memnet.train.dataset import build_splits
from memnet.train.trainer import train

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
import permute_vocab

EXAMPLES = Path(__file__).resolve().parents[3] / "docs" / "examples" / "robots"
TRAIN, TEST = EXAMPLES / "train.jsonl", EXAMPLES / "test.jsonl"
TINY = {"dim": 12, "tying": "kv", "hops": 1}


def _cfg(**options: object) -> TrainConfig:
    base: dict[str, object] = {"train_files": (str(TRAIN),), "epochs": 1, "ls_epochs": 0}
    return TrainConfig(**{**base, **options})  # type: ignore[arg-type]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_given_validation_files_are_used_whole_and_fingerprinted(tmp_path: Path) -> None:
    cfg = _cfg(valid_files=(str(TEST),), task_names=("battery", "tools"))
    ckpt = train(cfg, TINY, tmp_path / "m.pt", progress=False, command="memnet train ...")
    assert sorted(ckpt.task_names.values()) == ["battery", "tools"]
    valid = ckpt.card.results[0]
    assert (valid.split, valid.tasks, valid.questions) == ("validation", 2, 240)
    assert valid.data_fingerprint == fingerprint([DataFile.of(TEST)])
    assert [f.sha256 for f in ckpt.card.data_files] == [_sha(TRAIN), _sha(TEST)]
    assert ckpt.card.data_fingerprint == fingerprint([DataFile.of(TRAIN)])
    assert ckpt.card.data_summary["validation"] == "given files"
    assert ckpt.card.data_summary["train_questions"] == "600"
    assert ckpt.card.command == "memnet train ..."
    assert ckpt.card.settings["valid_files"] == str(TEST)
    assert ckpt.card.settings["model.dim"] == "12" and ckpt.card.settings["epochs"] == "1"
    assert ckpt.card.trained_at.endswith("Z") and ckpt.card.memnet_version
    assert valid.mean_error_pct == pytest.approx(ckpt.metrics["valid_mean_error_pct"], abs=1e-3)


def test_held_out_validation_keeps_each_story_on_one_side() -> None:
    table = TaskTable()
    examples = read_examples([TRAIN], table)
    a = build_splits(examples, None, task_names=table.names, val_fraction=0.2, seed=4)
    b = build_splits(examples, None, task_names=table.names, val_fraction=0.2, seed=4)
    train_stories = {ex.story_id for ex in a.train_examples}
    held = len(examples) - len(a.train_examples)
    assert held == len(a.valid) and 0.15 < held / len(examples) < 0.25
    valid_stories = {ex.story_id for ex in examples} - train_stories
    assert all(ex.story_id in valid_stories for ex in examples if ex not in a.train_examples)
    assert a.valid.queries.equal(b.valid.queries)  # seeded
    c = build_splits(examples, None, task_names=table.names, val_fraction=0.2, seed=5)
    assert not a.valid.queries.equal(c.valid.queries) or len(a.valid) != len(c.valid)


def test_sizes_come_from_the_data_unless_overridden(tmp_path: Path) -> None:
    table = TaskTable()
    examples = read_examples([TRAIN], table)
    splits = build_splits(examples, None, task_names=table.names, val_fraction=0.1, seed=0)
    longest = max(len(ex.story) for ex in examples)
    assert splits.memory_size == longest == 9  # shorter than the cap of 50
    assert splits.sentence_len == max(len(s) for ex in splits.train_examples for s in ex.story)
    assert splits.vocab.words[1:4] == ("kilo", "rolled", "to")  # first appearance, not spelling
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(splits.vocab.words[1:]) + "\nspare\n")
    answers = tmp_path / "answers.txt"
    answers.write_text("\n".join([*splits.answers.words, "unseen"]) + "\n")
    cfg = _cfg(memory_size=4, sentence_len=3, vocab_file=str(vocab), answers_file=str(answers))
    ckpt = train(cfg, TINY, tmp_path / "m.pt", progress=False)
    assert (ckpt.memory_size, ckpt.sentence_len, ckpt.model_config.temporal_buckets) == (4, 3, 4)
    assert ckpt.vocab.words[-1] == "spare" and ckpt.answers.words[-1] == "unseen"
    answers.write_text("lab\n")
    with pytest.raises(InvalidArgument, match="is not in the answer list") as err:
        train(cfg, TINY, tmp_path / "n.pt", progress=False)
    assert err.value.field == "answers"
    assert not (tmp_path / "n.pt").exists()


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"data_dir": "d", "tasks": (1,)}, "train"),  # both a directory and files
        ({"train_files": ()}, "train"),  # neither
        ({"train_files": (), "data_dir": "d"}, "tasks"),  # a directory without tasks
        ({"train_files": (), "data_dir": "d", "tasks": (1,), "valid_files": ("v",)}, "valid"),
        ({"memory_size": 0}, "memory_size"),
        ({"sentence_len": -1}, "sentence_len"),
    ],
)
def test_inconsistent_data_settings_are_refused(options: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        _cfg(**options)
    assert err.value.field == field


def test_an_unknown_task_name_is_refused_naming_the_tasks(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="whereabouts, tools, battery"):
        train(_cfg(task_names=("plants",)), TINY, tmp_path / "m.pt", progress=False)


def test_an_old_checkpoint_gets_a_card_and_results_are_recorded(tmp_path: Path) -> None:
    ckpt = train(_cfg(), TINY, tmp_path / "m.pt", progress=False)
    legacy = tmp_path / "legacy.pt"
    d = ckpt.to_dict()
    del d["card"], d["task_names"]
    torch.save(d, legacy)
    old = load_checkpoint(legacy)
    assert old.card.command == "" and old.card.settings["epochs"] == "1"
    assert old.card.results[0].split == "validation"
    assert old.card.results[0].questions == sum(t["questions"] for t in ckpt.metrics["valid_tasks"])
    assert old.task_names == {}  # trained on files: the tasks' names were not kept
    save_checkpoint(tmp_path / "copy.pt", old)
    assert load_checkpoint(tmp_path / "copy.pt").card == old.card  # saved, it keeps the card
    record = EvalRecord("test", 12.5, 1, 3, 360, "ab" * 32, "2026-12-07T00:00:00Z")
    updated = record_result(tmp_path / "m.pt", record)
    assert updated.card.results[-1] == record and len(updated.card.results) == 2
    again = load_checkpoint(tmp_path / "m.pt")
    assert again.card == updated.card
    for k, v in ckpt.state_dict.items():
        assert torch.equal(again.state_dict[k], v)


def test_a_copy_with_every_word_renamed_trains_the_same_weights(tmp_path: Path) -> None:
    data_dir = find_default_data_dir()
    assert data_dir is not None
    src = tmp_path / "src"
    src.mkdir()
    for task in (1, 19):
        for path in data_dir.glob(f"qa{task}_*_train.txt"):
            (src / path.name).write_text(path.read_text())
    words = permute_vocab.permute_dir(src, tmp_path / "copy", seed=1)
    cfg = TrainConfig(
        data_dir=str(src),
        tasks=(1, 19),
        epochs=2,
        ls_epochs=1,
        augment_entities=True,
        random_noise=0.2,
        seed=3,
    )
    model = {"dim": 10, "tying": "kv", "hops": 2, "activation": "half_relu"}
    plain = train(cfg, model, tmp_path / "plain.pt", progress=False)
    copy = train(
        replace(cfg, data_dir=str(tmp_path / "copy")), model, tmp_path / "copy.pt", progress=False
    )
    assert copy.vocab.words[1:] == tuple(words.forward[w] for w in plain.vocab.words[1:])
    for k, v in plain.state_dict.items():
        assert torch.equal(copy.state_dict[k], v), k
    assert copy.metrics["valid_mean_error_pct"] == plain.metrics["valid_mean_error_pct"]
    found = copy.metrics["word_classes"]["classes"]
    assert found == [
        [words.forward[w] for w in c] for c in plain.metrics["word_classes"]["classes"]
    ]


def test_a_word_list_with_a_repeated_entry_names_file_and_line(tmp_path: Path) -> None:
    from memnet.train.dataset import read_word_list

    words = tmp_path / "words.txt"
    words.write_text("kilo\n\nlab\nkilo\n")
    with pytest.raises(InvalidArgument, match=r"words.txt:4: 'kilo' is listed twice \(line 1\)"):
        read_word_list(words, with_nil=True)
    words.write_text("\n\n")
    with pytest.raises(InvalidArgument, match=r"words\.txt: the list is empty"):
        read_word_list(words, with_nil=False)
    words.write_text("lab\ndock\n")
    assert read_word_list(words, with_nil=True).words == ("<nil>", "lab", "dock")
