"""The shipped recipe on bAbI 1k and on a copy with every word renamed: does it know words?

For each seed, trains the shipped command on the plain data and on the copy made by
``bench/permute_vocab.py`` (one random string per word, one mapping for all files),
evaluates each on its own test split once, and prints a table: validation and test
mean error and failed tasks per copy, and test(copy) - test(plain). Runs are
``memnet train`` / ``memnet eval`` subprocesses with one torch thread each, ``--jobs``
at a time (under ``nice -n 10``); a run whose checkpoint and test JSON are already in
``--out`` is not run again, so an interrupted benchmark resumes.

    .venv/bin/python bench/vocab_invariance.py --out /tmp/invariance --seeds 0 1 2 --jobs 2

Prints the table (markdown) and writes ``results.json`` next to the runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from permute_vocab import permute_dir

REPO = Path(__file__).resolve().parents[1]
MEMNET = str(Path(sys.executable).with_name("memnet"))
# The shipped command (docs/results.md, README); data and seed are added per run.
RECIPE = (
    "--tasks all --tying kv --dim 100 --hops 4 --activation half_relu --epochs 150 "
    "--decay-every 30 --weight-decay 1e-3 --random-noise 0.2 --augment-entities"
)


@dataclass(frozen=True)
class Run:
    copy: str  # "plain" or "permuted"
    seed: int
    data_dir: Path
    out: Path

    @property
    def checkpoint(self) -> Path:
        return self.out / f"{self.copy}-s{self.seed}.pt"

    @property
    def test_json(self) -> Path:
        return self.out / f"{self.copy}-s{self.seed}-test.json"


def _run(run: Run, recipe: str) -> float:
    """Train and test one run (skipped when its results exist); wall seconds spent."""
    if run.checkpoint.is_file() and run.test_json.is_file():
        return 0.0
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    log = run.out / f"{run.copy}-s{run.seed}.log"
    t0 = time.perf_counter()
    train = [
        "nice", "-n", "10", MEMNET, "train", "--data-dir", str(run.data_dir),
        *shlex.split(recipe), "--seed", str(run.seed), "--threads", "1", "--no-progress",
        "--name", f"{run.copy}-s{run.seed}", "-o", str(run.checkpoint),
    ]  # fmt: skip
    test = [
        MEMNET, "eval", str(run.checkpoint), "--data-dir", str(run.data_dir),
        "--threads", "1", "--json", str(run.test_json),
    ]  # fmt: skip
    with log.open("a") as f:
        for argv in (train, test):
            f.write(f"$ {shlex.join(argv)}\n")
            f.flush()
            subprocess.run(argv, stdout=f, stderr=subprocess.STDOUT, env=env, check=True)
    return time.perf_counter() - t0


def _row(run: Run) -> dict[str, object]:
    import torch

    ckpt = torch.load(run.checkpoint, map_location="cpu", weights_only=True)
    test = json.loads(run.test_json.read_text())
    m = ckpt["metrics"]
    return {
        "copy": run.copy,
        "seed": run.seed,
        "valid_mean_error_pct": m["valid_mean_error_pct"],
        "valid_failed": m["valid_failed_tasks"],
        "test_mean_error_pct": test["mean_error_pct"],
        "test_failed": test["failed_tasks"],
        "test_tasks": {t["task"]: t["error_pct"] for t in test["tasks"]},
        "train_seconds": m["train_seconds"],
        "best_epoch": m["best_epoch"],
    }


def table(rows: list[dict[str, object]]) -> str:
    """Markdown: one line per seed, plain and permuted side by side, then the means."""
    by = {(r["copy"], r["seed"]): r for r in rows}
    seeds = sorted({int(r["seed"]) for r in rows})  # type: ignore[call-overload]
    lines = [
        "| seed | plain valid % / failed | plain test % / failed | permuted valid % / failed "
        "| permuted test % / failed | test permuted − plain |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    diffs, means = [], {"plain": [], "permuted": []}  # type: ignore[var-annotated]
    for s in seeds:
        p, q = by.get(("plain", s)), by.get(("permuted", s))
        cells = []
        for r in (p, q):
            if r is None:
                cells += ["–", "–"]
                continue
            cells.append(f"{r['valid_mean_error_pct']:.2f} / {r['valid_failed']}")
            cells.append(f"{r['test_mean_error_pct']:.2f} / {r['test_failed']}")
            means[str(r["copy"])].append(float(r["test_mean_error_pct"]))  # type: ignore[arg-type]
        diff = ""
        if p is not None and q is not None:
            d = float(q["test_mean_error_pct"]) - float(p["test_mean_error_pct"])  # type: ignore[arg-type]
            diffs.append(d)
            diff = f"{d:+.2f}"
        lines.append(f"| {s} | " + " | ".join(cells) + f" | {diff} |")
    if diffs:
        mp = sum(means["plain"]) / len(means["plain"])
        mq = sum(means["permuted"]) / len(means["permuted"])
        lines.append(f"| mean | | {mp:.2f} | | {mq:.2f} | {sum(diffs) / len(diffs):+.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=REPO / "data" / "babi" / "en")
    parser.add_argument("--out", type=Path, required=True, help="runs, logs and results here")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2, help="trainings at a time")
    parser.add_argument("--recipe", default=RECIPE, help="memnet train flags (no data, seed)")
    parser.add_argument("--map-seed", type=int, default=0, help="seed of the word mapping")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    permuted = args.out / "babi-permuted"
    if not (permuted / "mapping.tsv").is_file():
        permute_dir(args.data_dir, permuted, seed=args.map_seed)
    runs = [
        Run(copy, seed, data, args.out)
        for seed in args.seeds
        for copy, data in (("plain", args.data_dir), ("permuted", permuted))
    ]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        walls = list(pool.map(lambda r: _run(r, args.recipe), runs))
    rows = [_row(r) for r in runs]
    (args.out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(f"recipe: memnet train --data-dir DATA {args.recipe} --seed SEED")
    print(f"runs: {len(runs)}, wall {sum(walls):.0f} s of new runs\n")
    print(table(rows))


if __name__ == "__main__":
    main()
