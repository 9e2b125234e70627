"""Per-task test error and supporting-fact hit rates of a trained model."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

from memnet.data.tensors import BabiTensors
from memnet.model.memn2n import MemN2N

LOG = logging.getLogger(__name__)

FAILED_ERROR_PCT = 5.0  # a bAbI task is failed when its test error exceeds 5 %


@dataclass(frozen=True)
class TaskResult:
    task: int
    name: str
    questions: int
    error_pct: float
    failed: bool
    support_hit_pct: list[float]  # per hop: argmax of the attention is a supporting fact


@dataclass(frozen=True)
class EvalReport:
    tasks: list[TaskResult]
    mean_error_pct: float
    failed_tasks: int
    mean_support_hit_pct: list[float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        """A markdown table, one row per task plus the mean."""
        hops = len(self.mean_support_hit_pct)
        hop_cols = "".join(f" hop {h + 1} hit % |" for h in range(hops))
        lines = [
            f"| task | questions | error % | failed |{hop_cols}",
            "|---|---:|---:|:---:|" + "---:|" * hops,
        ]
        for t in self.tasks:
            hits = "".join(f" {x:.1f} |" for x in t.support_hit_pct)
            fail = "yes" if t.failed else ""
            lines.append(
                f"| {t.task} {t.name} | {t.questions} | {t.error_pct:.1f} | {fail} |{hits}"
            )
        hits = "".join(f" {x:.1f} |" for x in self.mean_support_hit_pct)
        lines.append(
            f"| **mean** | {sum(t.questions for t in self.tasks)} | "
            f"**{self.mean_error_pct:.2f}** | **{self.failed_tasks}** |{hits}"
        )
        return "\n".join(lines)


@torch.inference_mode()
def predict(
    model: MemN2N, data: BabiTensors, *, batch_size: int = 256, linear: bool = False
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Answers (N,), per-hop argmax slots (N, H), and the summed cross-entropy loss.

    Batches are cut from the length-sorted data and trimmed to their longest story and
    sentence, which changes nothing but the padding.
    """
    model.eval()
    N, H = len(data), model.cfg.hops
    answers = torch.zeros(N, dtype=torch.int64)
    argmaxes = torch.zeros(N, H, dtype=torch.int64)
    loss = 0.0
    for idx in data.lengths.argsort().split(batch_size):
        M = max(1, int(data.lengths[idx].max()))
        stories = data.stories[idx, :M]  # (B, M, T)
        stories = stories[..., : max(1, int((stories > 0).sum(-1).max()))]
        mask = torch.arange(M).unsqueeze(0) < data.lengths[idx].unsqueeze(1)  # (B, M)
        out = model(data.queries[idx], stories, mask, linear=linear)
        answers[idx] = out.logits.argmax(-1)
        argmaxes[idx] = torch.stack([h.weights.argmax(-1) for h in out.hops], dim=1)
        loss += float(
            F.cross_entropy(out.logits, data.answers[idx], reduction="sum", ignore_index=-1)
        )
    return answers, argmaxes, loss


def evaluate(
    model: MemN2N, data: BabiTensors, *, task_names: dict[int, str] | None = None
) -> EvalReport:
    """Error % per task (failed = error > 5 %) and each hop's supporting-fact hit rate.

    A hop hits when the memory with its largest attention weight is one of the
    question's supporting facts; questions whose supporting facts all fell out of the
    memory window count as misses.
    """
    pred, argmax, _ = predict(model, data)
    correct = pred == data.answers  # (N,)
    hit = (argmax.unsqueeze(-1) == data.support.unsqueeze(1)).any(-1)  # (N, H)
    rows = []
    for task in sorted(set(data.tasks.tolist())):
        sel = data.tasks == task
        n = int(sel.sum())
        err = 100.0 * int((~correct[sel]).sum()) / n
        hits = [100.0 * int(x) / n for x in hit[sel].sum(0)]
        name = (task_names or {}).get(task, "")
        hits = [round(x, 2) for x in hits]
        rows.append(TaskResult(task, name, n, round(err, 2), err > FAILED_ERROR_PCT, hits))
    mean_err = sum(r.error_pct for r in rows) / len(rows)
    H = argmax.shape[1]
    mean_hits = [sum(r.support_hit_pct[h] for r in rows) / len(rows) for h in range(H)]
    return EvalReport(rows, mean_err, sum(r.failed for r in rows), mean_hits)
