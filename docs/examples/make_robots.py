"""Generate the example dataset ``docs/examples/robots/``: robots in a factory, as JSON Lines.

A small synthetic question-answering domain (not bAbI) for trying ``memnet train`` on
your own data: three tasks, each story a few statements about robots moving between
rooms, handing tools to each other and reporting their batteries.

* ``whereabouts``: "Where is kilo?" -> the room of kilo's last move (1 supporting fact).
* ``tools``: "Who has the drill?" -> the robot that last took or was handed it (1).
* ``battery``: "How charged is kilo?" -> kilo's last battery report (1).

Every line is one question: {"story": [...], "question": ..., "answer": ...,
"supporting": [...], "task": ...}; later questions about the same story repeat its
statements and add the new ones. Regenerate (seeded, byte for byte the same) with

    python docs/examples/make_robots.py docs/examples/robots
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

ROBOTS = ["kilo", "tango", "zulu", "echo", "oscar", "bravo"]
ROOMS = ["foundry", "warehouse", "lab", "dock", "paintshop", "canteen"]
MOVES = ["rolled", "drove", "glided", "hurried"]
TOOLS = ["wrench", "drill", "laser", "welder"]
LEVELS = ["low", "half", "full", "empty"]
STORIES = {"train": 100, "test": 40}  # per task
QUESTIONS_PER_STORY = 3


def _whereabouts(rng: random.Random) -> list[dict[str, object]]:
    robots = rng.sample(ROBOTS, 3)
    story: list[str] = []
    where: dict[str, int] = {}  # robot -> index of its last move
    out = []
    for _ in range(QUESTIONS_PER_STORY):
        for _ in range(rng.randint(2, 3)):
            robot = rng.choice(robots)
            where[robot] = len(story)
            story.append(f"{robot.title()} {rng.choice(MOVES)} to the {rng.choice(ROOMS)}.")
        robot = rng.choice(sorted(where))
        room = story[where[robot]].rstrip(".").split()[-1]
        out.append(_example(story, f"Where is {robot}?", room, [where[robot]], "whereabouts"))
    return out


def _tools(rng: random.Random) -> list[dict[str, object]]:
    robots = rng.sample(ROBOTS, 3)
    story: list[str] = []
    holder: dict[str, tuple[str, int]] = {}  # tool -> (robot, index of the statement)
    out = []
    for _ in range(QUESTIONS_PER_STORY):
        for _ in range(rng.randint(2, 3)):
            tool = rng.choice(TOOLS)
            if tool in holder and rng.random() < 0.6:
                giver = holder[tool][0]
                taker = rng.choice([r for r in robots if r != giver])
                story.append(f"{giver.title()} handed the {tool} to {taker}.")
            else:
                taker = rng.choice(robots)
                story.append(f"{taker.title()} took the {tool}.")
            holder[tool] = (taker, len(story) - 1)
        tool = rng.choice(sorted(holder))
        robot, line = holder[tool]
        out.append(_example(story, f"Who has the {tool}?", robot, [line], "tools"))
    return out


def _battery(rng: random.Random) -> list[dict[str, object]]:
    robots = rng.sample(ROBOTS, 3)
    story: list[str] = []
    report: dict[str, int] = {}
    out = []
    for _ in range(QUESTIONS_PER_STORY):
        for _ in range(rng.randint(2, 3)):
            robot = rng.choice(robots)
            report[robot] = len(story)
            story.append(f"The battery of {robot} is {rng.choice(LEVELS)}.")
        robot = rng.choice(sorted(report))
        level = story[report[robot]].rstrip(".").split()[-1]
        out.append(_example(story, f"How charged is {robot}?", level, [report[robot]], "battery"))
    return out


def _example(
    story: list[str], question: str, answer: str, supporting: list[int], task: str
) -> dict[str, object]:
    return {
        "story": list(story),
        "question": question,
        "answer": answer,
        "supporting": supporting,
        "task": task,
    }


def generate(out_dir: Path, *, seed: int = 7) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for split, stories in STORIES.items():
        rng = random.Random(f"{seed}-{split}")
        lines = [
            json.dumps(example)
            for make in (_whereabouts, _tools, _battery)
            for _ in range(stories)
            for example in make(rng)
        ]
        (out_dir / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"{out_dir / f'{split}.jsonl'}: {len(lines)} questions")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, nargs="?", default=Path(__file__).parent / "robots")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    generate(args.out_dir, seed=args.seed)


if __name__ == "__main__":
    main()
