"""Examples from named files: JSON Lines and bAbI-format text of any name; task names;
every malformed line stops with ``file:line: what is wrong``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memnet.data.babi import parse_babi
from memnet.data.files import TaskTable, of_tasks, read_examples, task_name_of
from memnet.data.jsonl import parse_jsonl
from memnet.errors import InvalidArgument, NotFound

EXAMPLES = Path(__file__).resolve().parents[3] / "docs" / "examples" / "robots"


def _line(**fields: object) -> str:
    record: dict[str, object] = {"story": ["Kilo rolled to the lab."], "question": "Where is kilo?"}
    record["answer"] = "lab"
    record.update(fields)
    return json.dumps({k: v for k, v in record.items() if v is not None})


def _parse(*lines: str) -> list[object]:
    table = TaskTable()
    return list(
        parse_jsonl(lines, source="f.jsonl", task_id=lambda n: table.id_of(n or "default"))
    )


def test_jsonl_reads_story_question_answer_supporting_and_task() -> None:
    table = TaskTable()
    lines = [
        _line(supporting=[0], task="moves"),
        _line(story=["Kilo rolled to the lab.", "Kilo drove to the dock."], answer="Dock"),
        _line(story=["Zulu took the drill."], question="Who has the drill?", answer="zulu"),
    ]
    examples = parse_jsonl(lines, source="f", task_id=lambda n: table.id_of(n or "robots"))
    first, second, third = examples
    assert first.story == (("kilo", "rolled", "to", "the", "lab"),)
    assert first.question == ("where", "is", "kilo") and first.answer == "lab"
    assert first.supporting == (0,) and first.line_ids == (0,)
    assert second.answer == "dock"  # answers are lowercased like the text
    assert second.supporting == ()
    assert table.names == {1: "moves", 2: "robots"}
    assert [ex.task for ex in examples] == [1, 2, 2]
    # a story that extends the previous line's (same task) is the same story
    assert second.story_id == third.story_id - 1
    assert first.story_id != second.story_id  # another task: another story


def test_consecutive_questions_about_one_story_share_its_id() -> None:
    a = _line(story=["A went to b."], question="Where is a?", answer="b")
    b = _line(story=["A went to b.", "C went to d."], question="Where is c?", answer="d")
    c = _line(story=["E went to f."], question="Where is e?", answer="f")
    ids = [ex.story_id for ex in _parse(a, a, b, c)]  # type: ignore[attr-defined]
    assert ids == [0, 0, 0, 1]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "a line must be a JSON object"),
        (_line(suporting=[0]), "unknown key 'suporting'"),
        (json.dumps({"story": ["a b."], "answer": "b"}), "missing 'question'"),
        (_line(story="Kilo rolled."), "story must be a list"),
        (_line(story=[]), "story has no sentence"),
        (_line(story=["ok.", 3]), r"story\[1\] must be a string"),
        (_line(story=["ok.", "?!"]), r"story\[1\] has no words"),
        (_line(question="?"), "question has no words"),
        (_line(answer=" "), "answer must be a non-empty string"),
        (_line(answer=7), "answer must be a non-empty string"),
        (_line(supporting=[1]), r"supporting index 1 is outside the story \(0..0\)"),
        (_line(supporting=["0"]), "supporting must be a list of integers"),
        (_line(supporting=[True]), "supporting must be a list of integers"),
        (_line(task=""), "task must be a non-empty string"),
    ],
)
def test_a_malformed_jsonl_line_names_file_line_and_fault(line: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=f"^f.jsonl:3: {message}") as err:
        _parse(_line(), "", line)  # line 2 is blank: skipped, still counted
    assert err.value.field == "data"


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["1 Mary went home.", "Where is Mary?\thome\t1"], "2: a line must start with its number"),
        (["1 Mary went home.", "2 Where is Mary?\t\t1"], "2: a question without an answer"),
        (["1 Mary went home.", "2 Where is Mary?\thome\tone"], "2: supporting facts must be"),
        (["1 Mary went home.", "2 Where is Mary?\thome\t5"], "2: supporting fact 5 is not"),
        (["1 Where is Mary?\thome\t1"], "1: a question with no statement before it"),
        (["1 Mary went home.", "3 John left.", "2 Bill ran."], "3: line number 2 after 3"),
        (["1 ..."], "1: a statement without words"),
    ],
)
def test_a_malformed_babi_line_names_file_line_and_fault(lines: list[str], message: str) -> None:
    with pytest.raises(InvalidArgument, match=f"^stories.txt:{message}"):
        parse_babi(lines, source="stories.txt")


def test_task_names_come_from_file_names() -> None:
    assert task_name_of(Path("qa1_single-supporting-fact_train.txt")) == "qa1_single-supporting-fact"
    assert task_name_of(Path("d/pets-test.jsonl")) == "pets"
    assert task_name_of(Path("d/Pets.VALID.txt")) == "Pets"
    assert task_name_of(Path("shop/train.jsonl")) == "shop"  # nothing left: the directory
    assert task_name_of(Path("stories.txt")) == "stories"


def test_files_of_any_name_and_both_formats_read_as_one_task_table(tmp_path: Path) -> None:
    babi = tmp_path / "my stories.txt"
    babi.write_text("1 Mary went home.\n2 Where is Mary?\thome\t1\n1 Bob ran off.\n")
    babi.write_text(babi.read_text() + "2 John went out.\n3 Where is John?\tout\t2\n")
    table = TaskTable()
    examples = read_examples([babi, EXAMPLES / "train.jsonl"], table)
    assert table.names == {1: "my stories", 2: "whereabouts", 3: "tools", 4: "battery"}
    assert [ex.story_id for ex in examples[:2]] == [0, 1]
    assert examples[2].story_id == 2  # the next file numbers its stories after
    ids = [ex.story_id for ex in examples]
    assert ids == sorted(ids)
    assert len(of_tasks(examples, [1])) == 2
    assert {ex.task for ex in of_tasks(examples, table.select("tools,battery"))} == {3, 4}
    with pytest.raises(InvalidArgument, match="no task 'plants' in the data") as err:
        table.select("plants")
    assert err.value.field == "tasks"


def test_a_checkpoints_task_table_keeps_its_ids() -> None:
    table = TaskTable({3: "battery", 1: "whereabouts"})
    assert table.id_of("battery") == 3 and table.id_of("tools") == 4


def test_missing_empty_and_non_utf8_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no such file"):
        read_examples([tmp_path / "nope.jsonl"], TaskTable())
    empty = tmp_path / "empty.txt"
    empty.write_text("1 Mary went home.\n")
    with pytest.raises(InvalidArgument, match="empty.txt: no question in the file"):
        read_examples([empty], TaskTable())
    latin = tmp_path / "latin.txt"
    latin.write_bytes(b"1 Mary went home.\n2 Caf\xe9 is where?\thome\t1\n")
    with pytest.raises(InvalidArgument, match="latin.txt:2: not UTF-8 text"):
        read_examples([latin], TaskTable())
