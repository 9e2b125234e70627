"""memnet's benchmark suite: one command, tables on stdout, a markdown report.

    python bench/suite.py                          # default sizes (10k, 100k), < 30 min on 2 cores
    python bench/suite.py --full                   # adds the 1M runs (about an hour more)
    python bench/suite.py --only exact,limits      # some parts; the others keep their last run
    python bench/suite.py --out docs/benchmarks-suite.md

Parts: ``exact`` (bench/exact_attention.py), ``limits`` (bench/machine_limits.py),
``curves`` (bench/curves.py), ``peers`` (bench/peers.py, run with the separate
bench/.venv-peers interpreter made by bench/setup_peers.sh). Each part's section is
kept in bench/out/ with the date and command of the run that produced it, and the
report is assembled from the latest section of every part, so a part re-run alone
does not erase the others. PNG plots go to docs/benchmarks/.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import curves  # noqa: E402
import exact_attention  # noqa: E402
import machine_limits  # noqa: E402
import peers  # noqa: E402
import timing  # noqa: E402

LOG = logging.getLogger(__name__)

PARTS = ("exact", "limits", "curves", "peers")
SECTIONS_DIR = ROOT / "bench" / "out"
PEERS_PYTHON = ROOT / "bench" / ".venv-peers" / "bin" / "python"
TITLES = {
    "exact": "Exact attention against memnet's top-k attention",
    "limits": "The machine's limits: flat search against the memory-bandwidth floor",
    "curves": "Curves",
    "peers": "Peers: Chroma, Milvus Lite, Qdrant local mode",
}


@dataclass(frozen=True)
class Section:
    """One part's report: a verdict paragraph for the summary, and its body."""

    part: str
    verdict: str
    body: str
    run_at: str
    command: str
    wall_s: float
    load_avg: str = ""  # 1-minute load average at the start and at the end of the part


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kib = 0
    import faiss
    import numpy as np
    import torch

    return (
        f"{cpu}, {os.cpu_count()} cores, {mem_kib / (1 << 20):.0f} GiB RAM, no GPU; "
        f"Linux {platform.release()}; Python {platform.python_version()}, "
        f"torch {torch.__version__}, "
        f"faiss {faiss.__version__}, numpy {np.__version__}"
    )


def git_commit() -> str:
    rev = timing.git(ROOT, "rev-parse", "--short", "HEAD")
    return "unknown" if rev is None else rev + " (+ uncommitted work tree)"


def pngs(paths: list[Path], out: Path) -> str:
    return "\n".join(f"![{p.stem}]({os.path.relpath(p, out.parent)})" for p in paths)


def part_exact(full: bool, png_dir: Path, out: Path) -> tuple[str, str]:
    sizes = (10_000, 100_000, 1_000_000) if full else (10_000, 100_000)
    # An HNSW build over 1M random keys takes 10+ minutes on this machine (3x clustered).
    skip = (("random", 1_000_000, "hnsw"),) if full else ()
    cfg = exact_attention.ExactConfig(sizes=sizes, skip=skip)
    res = exact_attention.run(cfg)
    tabs = exact_attention.tables(res)
    if skip:
        tabs.append(
            "Not run: " + ", ".join(f"{d} M = {m:,} {k}" for d, m, k in skip) + " (the HNSW "
            "build over random keys is ~3× slower than over clustered ones: 10+ minutes at 1M)."
        )
    builds = [[ds, f"{m:,}", kind, f"{s:.1f}"] for ds, m, kind, s in res.builds]
    tabs.append(
        timing.table(
            "Bank builds (not timed against anything)", ["data", "M", "index", "s"], builds
        )
    )
    body = "\n".join(
        [
            exact_attention.__doc__ or "",
            "Data: see the generator's description below (bench/datasets.py).",
            "",
            "```text",
            (exact_attention.datasets.__doc__ or "").strip(),
            "```",
            "",
            pngs(exact_attention.plot(res, png_dir), out),
            "",
            *tabs,
        ]
    )
    m = max(sizes)
    lines = []
    for s in (1.0, *cfg.logit_scales[1:], cfg.d**0.5):
        for kind in cfg.labels:
            best = exact_attention.smallest_k(res, "clustered", m, kind, s)
            t = exact_attention.timing_of(res, "clustered", m, kind, best.k) if best else None
            label = exact_attention.scale_label(s, cfg.d)
            if best is None or t is None:
                lines.append(f"logit scale {label}, {kind}: no k ≤ {max(cfg.ks)} reaches 1 %")
            else:
                lines.append(
                    f"logit scale {label}, {kind}: k = {best.k} "
                    f"(mass {100 * best.mass_p50:.1f} %), "
                    f"{t.memnet_p50_ms:.3f} ms vs exact {t.exact_p50_ms:.1f} ms = "
                    f"{timing.fmt_ratio(t.speedup)}"
                )
    at_1 = [exact_attention.smallest_k(res, "clustered", m, kind, 1.0) for kind in cfg.labels]
    fast = [
        t
        for kind, best in zip(cfg.labels, at_1, strict=True)
        if best is not None
        and (t := exact_attention.timing_of(res, "clustered", m, kind, best.k)) is not None
        and t.speedup >= 100
    ]
    target = (
        "met" if m >= 1_000_000 and fast else "NOT met" if m >= 1_000_000 else "not run (--full)"
    )
    verdict = (
        f"Target (M = 1M, clustered, logit scale 1 = the transformer convention, "
        f"≥ 100× at the smallest k with ≤ 1 % readout error): {target}.\n\n"
        f"Clustered data, M = {m:,}: smallest k with median readout error ≤ 1 % —\n"
        + "\n".join(f"- {line}" for line in lines)
    )
    return verdict, body


def part_limits(full: bool, png_dir: Path, out: Path) -> tuple[str, str]:
    res = machine_limits.run(machine_limits.LimitsConfig())
    bank = next(s for s in res.searches if s.what.startswith("memnet"))
    met = "met" if res.percent(bank) >= 70 else "NOT met"
    verdict = (
        f"memnet's flat search (B = 1, 1 thread) scans keys at {res.percent(bank):.1f} % of the "
        f"1-thread copy bandwidth measured in the same run (target ≥ 70 %: {met})."
    )
    return verdict, "\n".join([machine_limits.__doc__ or "", *machine_limits.tables(res)])


def part_curves(full: bool, png_dir: Path, out: Path) -> tuple[str, str]:
    sizes = (1_000, 10_000, 100_000, 1_000_000) if full else (1_000, 10_000, 100_000)
    res = curves.run(curves.CurvesConfig(sizes=sizes))
    best_on = max((p.y for p in res.service if p.series == "batching on"), default=0.0)
    best_off = max((p.y for p in res.service if p.series == "batching off"), default=0.0)
    verdict = (
        f"Best service QPS: {best_on:,.0f} with dynamic batching, {best_off:,.0f} without "
        "(no target; see the curves)."
    )
    body = "\n".join(
        [curves.__doc__ or "", pngs(curves.plot(res, png_dir), out), "", *curves.tables(res)]
    )
    return verdict, body


def part_peers(full: bool, png_dir: Path, out: Path) -> tuple[str, str]:
    if not PEERS_PYTHON.exists():
        note = "Not measured: bench/.venv-peers does not exist (run `bash bench/setup_peers.sh`)."
        return note, note
    sizes = "100000,1000000" if full else "100000"
    result_path = SECTIONS_DIR / "peers.json"
    cmd = [
        str(PEERS_PYTHON),
        str(ROOT / "bench" / "peers.py"),
        "--sizes",
        sizes,
        "--json",
        str(result_path),
    ]
    LOG.info("running %s", shlex.join(cmd))
    subprocess.run(cmd, check=True, cwd=ROOT)
    data = json.loads(result_path.read_text())
    return peers.verdict(data), peers.body(data, png_dir, out)


RUNNERS: dict[str, Callable[[bool, Path, Path], tuple[str, str]]] = {
    "exact": part_exact,
    "limits": part_limits,
    "curves": part_curves,
    "peers": part_peers,
}


def save(section: Section) -> None:
    SECTIONS_DIR.mkdir(parents=True, exist_ok=True)
    (SECTIONS_DIR / f"suite-{section.part}.json").write_text(json.dumps(section.__dict__))


def load(part: str, report_path: Path) -> Section | None:
    """The part's last section: its JSON in bench/out, else as the existing report shows it
    (bench/out is not committed, so a fresh clone re-running one part keeps the others)."""
    path = SECTIONS_DIR / f"suite-{part}.json"
    if path.exists():
        return Section(**json.loads(path.read_text()))
    return section_from_report(report_path, part)


_RUN_LINE = re.compile(
    r"Run (?P<run_at>[^,]+), `(?P<command>[^`]+)`, (?P<minutes>[\d.]+) min; "
    r"load average \(1 min\) (?P<load>.+?) on 2 cores\.\n\n"
)


def section_from_report(report_path: Path, part: str) -> Section | None:
    """Parse one part back out of a report that ``report`` wrote; None if it is not there."""
    if not report_path.exists():
        return None
    text = report_path.read_text()
    title = TITLES[part]
    head = f"\n## {title}\n\n"
    start = text.find(head)
    if start < 0:
        return None
    rest = text[start + len(head) :]
    ends = [i for t in TITLES.values() if (i := rest.find(f"\n## {t}\n")) >= 0]
    chunk = rest[: min(ends, default=len(rest))]
    run = _RUN_LINE.match(chunk)
    summary = re.search(
        rf"\*\*{re.escape(title)}\*\* \([^)]*\):\n\n(?P<verdict>.*?)\n\n(?=\*\*|## )", text, re.S
    )
    if run is None or summary is None:
        return None
    return Section(
        part=part,
        verdict=summary["verdict"],
        body=chunk[run.end() : -1] if chunk.endswith("\n") else chunk[run.end() :],
        run_at=run["run_at"],
        command=run["command"],
        wall_s=float(run["minutes"]) * 60,
        load_avg=run["load"],
    )


def report(out: Path, sections: list[Section], command: str) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# memnet benchmark suite",
        "",
        f"Generated {now} by `{command}`. Machine: {machine()}. Work tree: {git_commit()}.",
        "",
        "Every figure is a median of repeated measurements; every ratio compares numbers "
        "measured side by side in the same run (the machine is shared: absolute numbers "
        "move ±15 % between runs and more under load, so read the ratios). Each section "
        "names the run it comes from.",
        "",
        "## Summary against the targets",
        "",
    ]
    for s in sections:
        lines += [f"**{TITLES[s.part]}** ({s.run_at}):", "", s.verdict, ""]
    missing = [p for p in PARTS if p not in {s.part for s in sections}]
    for p in missing:
        lines += [f"**{TITLES[p]}**: not run yet.", ""]
    for s in sections:
        lines += [
            f"## {TITLES[s.part]}",
            "",
            f"Run {s.run_at}, `{s.command}`, {s.wall_s / 60:.1f} min; "
            f"load average (1 min) {s.load_avg or 'not recorded'} on 2 cores.",
            "",
            s.body,
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--full", action="store_true", help="add the 1M runs (exact, curves, peers)")
    p.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts of {PARTS}")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks-suite.md")
    p.add_argument("--png-dir", type=Path, default=ROOT / "docs" / "benchmarks")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("memnet").setLevel(logging.WARNING)
    parts = [x for x in a.only.split(",") if x]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        p.error(f"unknown parts {unknown}; choose from {PARTS}")
    a.png_dir.mkdir(parents=True, exist_ok=True)
    command = "python bench/suite.py " + shlex.join(sys.argv[1:])
    for part in PARTS:
        if part not in parts:
            continue
        t0 = time.perf_counter()
        run_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        load_start = os.getloadavg()[0]
        verdict, body = RUNNERS[part](a.full, a.png_dir, a.out)
        load_text = f"{load_start:.1f} → {os.getloadavg()[0]:.1f}"
        wall_s = time.perf_counter() - t0
        section = Section(part, verdict, body, run_at, command, wall_s, load_text)
        save(section)
        print(f"\n## {TITLES[part]}\n\n{verdict}\n\n{body}\n", flush=True)
    sections = [s for s in (load(part, a.out) for part in PARTS) if s is not None]
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(report(a.out, sections, command))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
