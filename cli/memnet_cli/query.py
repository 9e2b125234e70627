"""``memnet query BANK QUESTION``: print the answer and, per hop, the attention table (SDK only).

Vector banks take ``--vector-npy Q.npy`` instead of a question: a (Dk,) or (B, Dk) array.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from memnet_cli.connection import add_connection_arguments, connect, json_object_argument, truncate
from memnet_client.client import MemnetClient
from memnet_client.errors import ValidationError
from memnet_client.models import QueryResponse, QueryResult


def add_query_arguments(parser: argparse.ArgumentParser) -> None:
    """The question and attention flags shared by ``query`` and ``explain``."""
    parser.add_argument("bank")
    parser.add_argument("question", nargs="?", default=None, help="the question (text banks)")
    parser.add_argument(
        "--vector-npy", default=None, help="(Dk,) or (B, Dk) .npy of query vectors (vector banks)"
    )
    parser.add_argument("--k", type=int, default=0, help="memories per hop (0 = server default)")
    parser.add_argument("--hops", type=int, default=0, help="hops (0 = the model's default)")
    parser.add_argument("--attention", choices=["sparse", "soft", "hard"], default="sparse")
    parser.add_argument(
        "--filter", default=None, help="metadata filter, a JSON object: '{\"story\": 1}'"
    )
    parser.add_argument(
        "--tail-samples",
        type=int,
        default=None,
        help="vector banks, sparse attention: estimate the softmax mass outside the top k "
        "from this many sampled memories",
    )
    add_connection_arguments(parser)


def run_query(client: MemnetClient, args: argparse.Namespace, *, top_answers: int) -> QueryResponse:
    """Ask the question (or the vectors) of ``add_query_arguments`` flags."""
    if (args.question is None) == (args.vector_npy is None):
        raise ValidationError("give a question or --vector-npy (not both)", field="question")
    vectors = None
    if args.vector_npy is not None:
        import numpy as np

        try:
            vectors = np.atleast_2d(np.load(args.vector_npy, allow_pickle=False))
        except (OSError, ValueError) as error:
            raise ValidationError(
                f"cannot read {args.vector_npy}: {error}", field="--vector-npy"
            ) from error
    return client.query(
        args.bank,
        args.question,
        query_vectors=vectors,
        k=args.k,
        hops=args.hops,
        attention=args.attention,
        metadata_filter=json_object_argument(args.filter, flag="--filter"),
        top_answers=top_answers,
        tail_samples=args.tail_samples,
    )


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "query", help="answer a question; print the attention of every hop"
    )
    add_query_arguments(parser)
    parser.add_argument("--top-answers", type=int, default=5, help="alternatives to print")
    parser.add_argument("--rows", type=int, default=10, help="memories printed per hop")
    parser.add_argument("--width", type=int, default=60, help="characters of memory text shown")
    parser.set_defaults(func=run)


def format_result(result: QueryResult, *, rows: int, width: int) -> str:
    """The answer, its alternatives, and one attention table per hop (highest weight first)."""
    lines = []
    if result.answer:
        lines.append(f"answer: {result.answer}  (p={result.probability:.3f})")
        others = ", ".join(f"{a.answer} {a.probability:.3f}" for a in result.alternatives[1:])
        if others:
            lines.append(f"alternatives: {others}")
    else:
        lines.append(f"readout: ({result.readout.shape[0]},) vector, no answer head")
    if result.unknown_words:
        lines.append("unknown words (ignored): " + ", ".join(result.unknown_words))
    for hop in result.hops:
        lines.append(f"hop {hop.hop}")
        lines.append(f"  {'WEIGHT':>7}  {'SCORE':>8}  {'ID':<12}  TEXT")
        for memory in hop.memories[:rows]:
            lines.append(
                f"  {memory.weight:7.3f}  {memory.score:8.3f}  {truncate(memory.id, 12):<12}  "
                f"{truncate(memory.text, width)}"
            )
        if len(hop.memories) > rows:
            rest = sum(m.weight for m in hop.memories[rows:])
            lines.append(f"  {rest:7.3f}  (the other {len(hop.memories) - rows} memories)")
        if hop.tail_weight:
            lines.append(f"  {hop.tail_weight:7.3f}  (memories outside the top k, estimated)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    with connect(args) as client:
        response = run_query(client, args, top_answers=args.top_answers)
    for i, result in enumerate(response.results):
        if len(response.results) > 1:
            print(f"== query {i}")
        print(format_result(result, rows=args.rows, width=args.width))
    model = (
        f"{response.model}@{response.model_version}" if response.model_version else response.model
    )
    print(f"(model {model}, bank seq {response.bank_seq})", file=sys.stderr)
    return 0
