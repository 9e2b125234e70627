"""``memnet explain BANK QUESTION -o attention.png``: a heatmap of each hop's attention.

One row per hop, one column per memory that any hop attended (labelled by its text,
truncated), colour = attention weight in [0, 1]. Needs matplotlib (the ``service``
extra); it is imported only here.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from memnet_cli.connection import connect, truncate
from memnet_cli.query import add_query_arguments, run_query
from memnet_client.errors import ValidationError
from memnet_client.models import QueryResult

DPI = 100
_ANNOTATE_UP_TO = 40  # write the weight into each cell when there are at most this many columns


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "explain", help="write a PNG heatmap of the attention of each hop over the memories"
    )
    add_query_arguments(parser)
    parser.add_argument("-o", "--output", default="attention.png", help="PNG file to write")
    parser.add_argument("--label-chars", type=int, default=40, help="characters per column label")
    parser.set_defaults(func=run)


def figure_size(hops: int, memories: int) -> tuple[float, float]:
    """Width and height in inches of the heatmap of ``hops`` rows and ``memories`` columns."""
    return max(6.0, 1.5 + 0.45 * memories), 3.5 + 0.5 * hops


def render(result: QueryResult, path: Path, *, question: str, label_chars: int) -> tuple[int, int]:
    """Write the heatmap of ``result`` to ``path`` as PNG; returns its (width, height) in pixels."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ValidationError(
            "memnet explain needs matplotlib: pip install 'memnet[service]' (or matplotlib)",
            field="matplotlib",
        ) from error
    memories, weights = result.attention_matrix()  # (H, M)
    if not memories:
        raise ValidationError("the query attended no memory (is the bank empty?)", field="bank")
    hops, columns = weights.shape
    figure = Figure(figsize=figure_size(hops, columns), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    image = axes.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    axes.set_yticks(np.arange(hops), labels=[f"hop {h.hop}" for h in result.hops])
    axes.set_xticks(
        np.arange(columns),
        labels=[truncate(m.text or m.id, label_chars) for m in memories],
        rotation=60,
        ha="right",
        rotation_mode="anchor",
        fontsize=8,
    )
    if columns <= _ANNOTATE_UP_TO:
        for (row, column), weight in np.ndenumerate(weights):
            colour = "black" if weight > 0.6 else "white"
            axes.text(
                column, row, f"{weight:.2f}", ha="center", va="center", fontsize=7, color=colour
            )
    answer = f" → {result.answer} (p={result.probability:.2f})" if result.answer else ""
    axes.set_title(truncate(question, 80) + answer)
    figure.colorbar(image, ax=axes, label="attention weight")
    figure.savefig(path, format="png", dpi=DPI)
    width_in, height_in = figure.get_size_inches()
    return round(width_in * DPI), round(height_in * DPI)


def run(args: argparse.Namespace) -> int:
    with connect(args) as client:
        response = run_query(client, args, top_answers=1)
    if len(response.results) != 1:
        raise ValidationError(
            f"explain takes one question, got {len(response.results)} query vectors",
            field="--vector-npy",
        )
    output = Path(args.output)
    width, height = render(
        response.results[0],
        output,
        question=args.question or f"query vector from {args.vector_npy}",
        label_chars=args.label_chars,
    )
    print(f"wrote {output} ({width}x{height} px, {len(response.results[0].hops)} hop(s))")
    return 0
