"""The bAbI parser, tokeniser and tensors, on real bAbI lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from memnet.data.babi import find_default_data_dir, load_task, parse_babi, parse_tasks
from memnet.data.tensors import build_vocabularies, tensorize
from memnet.data.vocab import NIL, Vocabulary, tokenize
from memnet.errors import InvalidArgument, NotFound

# The first story of qa2_two-supporting-facts_train.txt (bAbI v1.2, en).
QA2 = """\
1 Mary moved to the bathroom.
2 Sandra journeyed to the bedroom.
3 Mary got the football there.
4 John went to the kitchen.
5 Mary went back to the kitchen.
6 Mary went back to the garden.
7 Where is the football? \tgarden\t3 6
8 Sandra went back to the office.
9 John moved to the office.
10 Sandra journeyed to the hallway.
11 Daniel went back to the kitchen.
12 Mary dropped the football.
13 John got the milk there.
14 Where is the football? \tgarden\t12 6
1 Mary travelled to the kitchen.
2 Where is Mary? \tkitchen\t1
""".splitlines(keepends=True)


def test_tokenize_matches_babi_preprocessing() -> None:
    assert tokenize("Where is the football? ") == ["where", "is", "the", "football"]
    assert tokenize("Mary moved to the bathroom.") == ["mary", "moved", "to", "the", "bathroom"]


def test_parser_reads_questions_answers_and_supporting_facts() -> None:
    examples = parse_babi(QA2, task=2)
    assert len(examples) == 3
    first, second, third = examples
    assert first.question == ("where", "is", "the", "football")
    assert first.answer == "garden"
    assert first.supporting == (3, 6)
    assert first.line_ids == (1, 2, 3, 4, 5, 6)
    assert first.story[2] == ("mary", "got", "the", "football", "there")
    # Questions are not memories; the story goes on after them.
    assert second.line_ids == (1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13)
    assert second.supporting == (12, 6)
    # A line id of 1 starts a new story.
    assert third.story == (("mary", "travelled", "to", "the", "kitchen"),)
    assert third.supporting == (1,)
    # Questions of one story share its index; the next story gets the next one.
    assert [ex.story_id for ex in examples] == [0, 0, 1]


def test_parser_rejects_a_line_without_a_number() -> None:
    with pytest.raises(InvalidArgument):
        parse_babi(["Mary moved to the bathroom.\n"])


def test_tensors_put_the_newest_statement_in_slot_0_and_map_supporting_facts() -> None:
    examples = parse_babi(QA2, task=2)
    vocab, answers = build_vocabularies(examples)
    assert vocab.words[0] == NIL
    t = tensorize(examples, vocab, answers, memory_size=4, sentence_len=6, query_len=5)
    assert t.stories.shape == (3, 4, 6)
    assert t.lengths.tolist() == [4, 4, 1]  # only the 4 most recent statements are kept
    newest = [vocab.words[i] for i in t.stories[1, 0].tolist() if i]
    assert newest == ["john", "got", "the", "milk", "there"]
    # One column per supporting fact of the question that has the most (here 2).
    # Question 2: fact 12 is the second newest (slot 1); fact 6 fell out of the window.
    assert t.support[1].tolist() == [1, -1]
    # Question 1 keeps lines 6, 5, 4, 3: fact 3 is in slot 3, fact 6 (the newest) in slot 0.
    assert t.support[0].tolist() == [3, 0]
    assert t.support[2].tolist() == [0, -1]
    assert t.memory_mask[2].tolist() == [True, False, False, False]
    assert answers.words[int(t.answers[2])] == "kitchen"


def test_vocabulary_drops_and_reports_unknown_words() -> None:
    vocab = Vocabulary.build(["mary", "kitchen"])
    ids, unknown = vocab.encode(["mary", "zorblax", "kitchen"])
    assert ids == [vocab.index["mary"], vocab.index["kitchen"]]
    assert unknown == ["zorblax"]


def test_real_files_parse_with_supporting_facts() -> None:
    data_dir = find_default_data_dir()
    assert data_dir is not None
    examples = load_task(data_dir, 3, "test")
    assert len(examples) == 1000
    assert all(len(ex.supporting) == 3 for ex in examples)
    assert all(set(ex.supporting) <= set(ex.line_ids) for ex in examples)


def test_missing_task_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound) as e:
        load_task(tmp_path, 1, "train")
    assert e.value.field == "data_dir"


def test_parse_tasks() -> None:
    assert parse_tasks("all") == list(range(1, 21))
    assert parse_tasks("3,1") == [1, 3]
    with pytest.raises(InvalidArgument):
        parse_tasks("21")
