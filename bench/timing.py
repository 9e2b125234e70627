"""Timing helpers shared by the suite: medians of repeats, percentiles, one table printer,
and the git revision a report names.

Every figure the suite reports is a median of repeated measurements taken in the
same process, so that ratios compare numbers measured side by side.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Latency:
    """Summary of per-call latencies, in milliseconds."""

    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    n: int


def summarize_s(latencies_s: Sequence[float]) -> Latency:
    """Percentiles of per-call latencies given in seconds."""
    a = np.asarray(latencies_s, np.float64) * 1e3  # (N,) ms
    return Latency(
        p50_ms=float(np.percentile(a, 50)),
        p90_ms=float(np.percentile(a, 90)),
        p99_ms=float(np.percentile(a, 99)),
        mean_ms=float(a.mean()),
        n=len(a),
    )


def time_once_s(fn: Callable[[], object]) -> float:
    """Wall-clock seconds of one call."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def median_s(fn: Callable[[], object], *, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall-clock seconds of ``repeats`` calls after ``warmup`` unmeasured ones."""
    for _ in range(warmup):
        fn()
    return statistics.median(time_once_s(fn) for _ in range(repeats))


def per_call_s(
    fns: Sequence[Callable[[], object]], *, repeats: int = 3, warmup: int = 1
) -> list[float]:
    """Per-call seconds of each ``fns[i]``, the median of ``repeats`` passes over all of them.

    Passes run the calls in order, so that two callers timed in one pass share the
    machine's state (caches, other tenants) within milliseconds of each other.
    """
    for _ in range(warmup):
        for fn in fns:
            fn()
    passes = [[time_once_s(fn) for fn in fns] for _ in range(repeats)]
    return [statistics.median(p[i] for p in passes) for i in range(len(fns))]


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A markdown table (with a ``###`` title), as one string."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = [f"### {title}", ""]
    lines.append("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
    return "\n".join(lines) + "\n"


def fmt_int(x: float) -> str:
    return f"{x:,.0f}"


def fmt_ms(x: float) -> str:
    return f"{x:.3f}" if x < 1 else f"{x:.2f}" if x < 100 else f"{x:,.0f}"


def fmt_ratio(x: float) -> str:
    return f"{x:,.1f}×" if x < 100 else f"{x:,.0f}×"


def git(checkout: Path, *args: str) -> str | None:
    """``git -C checkout ARGS``'s output, stripped; None when git fails or is missing."""
    try:
        return subprocess.run(
            ["git", "-C", str(checkout), *args], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
