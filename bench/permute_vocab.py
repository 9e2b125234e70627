"""A copy of a bAbI-format directory with every word replaced by a random string.

One mapping for all files (seeded): each distinct word, lowercased, becomes a distinct
random lowercase string of 5-9 letters, in statements, questions and answers alike
(list answers such as "n,w" part by part). Line numbers, supporting-fact numbers,
punctuation and the story structure stay as they are; file ``qaN_<name>_<split>.txt``
becomes ``qaN_taskN_<split>.txt``, so no English is left in the copy. A model that
knows no word of the data trains on the copy exactly as on the original.

    .venv/bin/python bench/permute_vocab.py data/babi/en /tmp/babi-permuted [--seed 0]

Prints the number of files and words mapped; writes ``mapping.tsv`` (word, string)
next to the copy so that answers can be read back.
"""

from __future__ import annotations

import argparse
import re
import string
from pathlib import Path

import numpy as np

_WORD = re.compile(r"\w+")
_FILE = re.compile(r"^qa(\d+)_.+_(train|test)\.txt$")
_LETTERS = np.array(list(string.ascii_lowercase))


class WordMap:
    """Word -> random string, drawn when a word is first met (seeded, one-to-one)."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.forward: dict[str, str] = {}
        self.used: set[str] = set()

    def __call__(self, word: str) -> str:
        key = word.lower()
        if key not in self.forward:
            while True:
                n = int(self.rng.integers(5, 10))
                candidate = "".join(self.rng.choice(_LETTERS, n))
                if candidate not in self.used:
                    break
            self.used.add(candidate)
            self.forward[key] = candidate
        return self.forward[key]

    def text(self, text: str) -> str:
        return _WORD.sub(lambda m: self(m.group(0)), text)


def permute_line(line: str, words: WordMap) -> str:
    """One bAbI line: ``<id> <text>`` or ``<id> <question>\\t<answer>\\t<ids>``."""
    head, _, rest = line.partition(" ")
    fields = rest.split("\t")
    fields[0] = words.text(fields[0])
    if len(fields) > 1:
        fields[1] = ",".join(words(part) for part in fields[1].strip().split(","))
    return f"{head} " + "\t".join(fields)


def permute_dir(src: Path, dst: Path, *, seed: int) -> WordMap:
    words = WordMap(seed)
    dst.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in src.iterdir() if _FILE.match(p.name))
    # Map words in one fixed order of files (task, then split) so the seed decides all.
    files.sort(key=lambda p: (int(_FILE.match(p.name).group(1)), p.name))  # type: ignore[union-attr]
    for path in files:
        match = _FILE.match(path.name)
        assert match is not None
        task, split = match.group(1), match.group(2)
        lines = path.read_text(encoding="utf-8").splitlines()
        out = [permute_line(line, words) if line.strip() else line for line in lines]
        (dst / f"qa{task}_task{task}_{split}.txt").write_text(
            "\n".join(out) + "\n", encoding="utf-8"
        )
    mapping = "".join(f"{w}\t{s}\n" for w, s in words.forward.items())
    (dst / "mapping.tsv").write_text(mapping, encoding="utf-8")
    print(f"{len(files)} files, {len(words.forward)} words mapped: {src} -> {dst}")
    return words


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("src", type=Path, help="bAbI directory (qaN_*_{train,test}.txt)")
    parser.add_argument("dst", type=Path, help="where to write the copy")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    permute_dir(args.src, args.dst, seed=args.seed)


if __name__ == "__main__":
    main()
