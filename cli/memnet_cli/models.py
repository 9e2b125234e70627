"""``memnet models list|describe``: the served models, with their model cards (SDK only)."""

from __future__ import annotations

import argparse
from typing import Any

from memnet_cli.connection import add_connection_arguments, connect
from memnet_client.models import ModelCard, ModelInfo


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "models", help="list the served models, or describe one with its model card"
    )
    commands = parser.add_subparsers(dest="models_command", required=True, metavar="ACTION")

    listing = commands.add_parser("list", help="list models: name, dims, hops, validation/test")
    listing.set_defaults(func=_list)

    describe = commands.add_parser(
        "describe", help="describe one model: its shape and its card (training, data, results)"
    )
    describe.add_argument("name")
    describe.add_argument(
        "--settings", action="store_true", help="also print every training setting"
    )
    describe.set_defaults(func=_describe_command)

    for sub in (listing, describe):
        add_connection_arguments(sub)


def _result(card: ModelCard | None, split: str) -> str:
    """ "8.47 % / 5 failed" for the card's last result of ``split``, or "-"."""
    if card is None:
        return "-"
    found = [r for r in card.results if r.split == split]
    if not found:
        return "-"
    last = found[-1]
    return f"{last.mean_error_pct:.2f} % / {last.failed_tasks}"


def _list(args: argparse.Namespace) -> int:
    with connect(args) as client:
        models = client.list_models()
    rows = [("NAME", "VERSION", "KIND", "DIMS", "HOPS", "VALIDATION", "TEST", "TRAINED")]
    for m in sorted(models, key=lambda m: m.name):
        rows.append(
            (
                m.name + (" (default)" if m.is_default else ""),
                str(m.version or "-"),
                m.input_kind or "-",
                f"{m.key_dim}/{m.value_dim}" if m.key_dim else "any",
                str(m.default_hops),
                _result(m.card, "validation"),
                _result(m.card, "test"),
                (m.card.trained_at if m.card else "") or "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def describe(model: ModelInfo, *, settings: bool = False) -> str:
    """A model and its card as text, one fact a line."""
    lines = [
        f"name:          {model.name}{' (default)' if model.is_default else ''}",
        f"version:       {model.version or '-'} (checkpoint sha256 {model.fingerprint or '-'})",
        f"input:         {model.input_kind}",
        f"dims:          key {model.key_dim or 'any'}, value {model.value_dim or 'any'}",
        f"hops:          {model.default_hops} (max {model.max_hops})",
        f"scoring:       {model.scoring}, metric {model.metric}, {model.heads} head(s)",
        f"vocabulary:    {model.vocab_size} words, {len(model.answer_vocabulary)} answers",
        f"description:   {model.description}",
    ]
    card = model.card
    if card is None:
        lines.append("card:          none (not a trained checkpoint)")
        return "\n".join(lines)
    lines += [
        f"trained:       {card.trained_at or '?'} ({card.train_seconds:.0f} s of training, "
        f"memnet {card.memnet_version or '?'})",
        f"command:       {card.command or '?'}",
        f"data:          sha256 {card.data_fingerprint or '?'}",
    ]
    lines += [
        f"  file:        {f.path} ({f.size_bytes} bytes, {f.sha256[:12]})" for f in card.data_files
    ]
    if card.data_summary:
        summary = ", ".join(f"{k} {v}" for k, v in sorted(card.data_summary.items()))
        lines.append(f"  summary:     {summary}")
    for r in card.results:
        lines.append(
            f"{r.split + ':':<14} {r.mean_error_pct:.2f} % mean error, {r.failed_tasks} of "
            f"{r.tasks} task(s) failed, {r.questions} questions ({r.measured_at or '?'})"
        )
    if settings:
        lines += [f"  {k} = {v}" for k, v in sorted(card.settings.items())]
    return "\n".join(lines)


def _describe_command(args: argparse.Namespace) -> int:
    with connect(args) as client:
        print(describe(client.get_model(args.name), settings=args.settings))
    return 0
