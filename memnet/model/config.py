"""The model's configuration: everything needed to rebuild it from a checkpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from memnet.errors import InvalidArgument

Tying = Literal["adjacent", "layerwise", "kv"]
Scoring = Literal["dot", "scaled_dot", "cosine"]
Activation = Literal["none", "half_relu"]
Head = Literal["linear", "relational"]
PositionForm = Literal["paper", "reference"]
TransformInit = Literal["normal", "identity"]

TYINGS: tuple[str, ...] = ("adjacent", "layerwise", "kv")
SCORINGS: tuple[str, ...] = ("dot", "scaled_dot", "cosine")
ACTIVATIONS: tuple[str, ...] = ("none", "half_relu")
HEADS: tuple[str, ...] = ("linear", "relational")
POSITION_FORMS: tuple[str, ...] = ("paper", "reference")
TRANSFORM_INITS: tuple[str, ...] = ("normal", "identity")


@dataclass(frozen=True)
class ModelConfig:
    """A MemN2N / KV-MemNN.

    tying (Sukhbaatar et al. 2015, §2.2; Miller et al. 2016, §3):
      adjacent   A_{h+1} = C_h, B = A_1; u_{h+1} = u_h + o_h. One key space per hop.
                 With hop_transform, u_{h+1} = R_h(u_h + o_h) as in kv.
      layerwise  A_1 = A_2 = ..., C_1 = C_2 = ...; u_{h+1} = H u_h + o_h. One key space.
      kv         key encoder A (also the question encoder), value encoder C;
                 u_{h+1} = R_h(u_h + o_h). One key space.
    """

    vocab_size: int  # V, including the nil word at index 0
    answer_size: int  # A
    dim: int = 50  # D
    hops: int = 3  # H
    tying: Tying = "layerwise"
    temporal_buckets: int = 50  # time embeddings; 0 = no temporal encoding
    position_encoding: bool = True
    # "paper": l_kj with J each sentence's own length (Sukhbaatar et al. 2015, §4.1);
    # "reference": the authors' code's form with one J = position_length for all.
    position_form: PositionForm = "paper"
    position_length: int = 12
    scoring: Scoring = "dot"
    heads: int = 1
    # Applied to u after each hop's update: "half_relu" = ReLU on the second half of
    # the units (Sukhbaatar et al. 2015, §4.4, joint training); "none" keeps it linear.
    activation: Activation = "none"
    # Gated hop update (Liu & Perez 2017, GMemN2N): the sum u_h + o_h becomes
    # g ⊙ o_h + (1 − g) ⊙ u_h with g = σ(W_g,h u_h + b_g,h), one gate per hop.
    gate: bool = False
    # Adjacent tying only: a learned R_h (D x D) per hop on the update, as the kv form
    # has, u_{h+1} = R_h(u_h + o_h), keeping one key space per hop. Off = the paper's sum.
    hop_transform: bool = False
    # Initial weights of the update's matrices (R_h, or H for layerwise): "normal" =
    # N(0, init_std) like every other weight; "identity" = I, so that training starts
    # from the paper's sum u_h + o_h (and keeps o_h in the space the next keys live in).
    transform_init: TransformInit = "normal"
    init_std: float = 0.1  # N(0, 0.1) initialisation (Sukhbaatar et al. 2015, §4.2)
    # The answer head: "linear" = softmax(W u_H) (Sukhbaatar et al. 2015, eq. 3);
    # "relational" adds a relation network over the hops' readouts o_1..o_H and the
    # question u_0 (Pavez et al. 2018, §3.3): W u_H + W_r Σ_{i,j} g([o_i; o_j; u_0]).
    head: Head = "linear"
    relation_dim: int = 128  # width of each layer of g
    relation_layers: int = 2  # layers of g (Linear + ReLU each)
    dropout: float = 0.0  # on the relation network's hidden units during training

    def __post_init__(self) -> None:
        if self.tying not in TYINGS:
            raise InvalidArgument(f"tying must be one of {TYINGS}", field="tying")
        if self.activation not in ACTIVATIONS:
            raise InvalidArgument(f"activation must be one of {ACTIVATIONS}", field="activation")
        if self.scoring not in SCORINGS:
            raise InvalidArgument(f"scoring must be one of {SCORINGS}", field="scoring")
        if self.position_form not in POSITION_FORMS:
            raise InvalidArgument(
                f"position_form must be one of {POSITION_FORMS}", field="position_form"
            )
        if self.hop_transform and self.tying != "adjacent":
            raise InvalidArgument(
                "hop_transform applies to tying 'adjacent' only (kv always has R_h, "
                "layerwise has H)",
                field="hop_transform",
            )
        if self.transform_init not in TRANSFORM_INITS:
            raise InvalidArgument(
                f"transform_init must be one of {TRANSFORM_INITS}", field="transform_init"
            )
        if self.transform_init == "identity" and self.update_matrices == 0:
            raise InvalidArgument(
                "transform_init 'identity' needs an update matrix: adjacent tying has one "
                "only with hop_transform",
                field="transform_init",
            )
        if self.head not in HEADS:
            raise InvalidArgument(f"head must be one of {HEADS}", field="head")
        if not 0.0 <= self.dropout < 1.0:
            raise InvalidArgument("dropout must be in [0, 1)", field="dropout")
        for name in (
            "vocab_size",
            "answer_size",
            "dim",
            "hops",
            "heads",
            "relation_dim",
            "position_length",
        ):
            if getattr(self, name) < 1:
                raise InvalidArgument(f"{name} must be >= 1", field=name)
        if self.relation_layers < 1:
            raise InvalidArgument("relation_layers must be >= 1", field="relation_layers")
        if self.temporal_buckets < 0:
            raise InvalidArgument("temporal_buckets must be >= 0", field="temporal_buckets")

    @property
    def transforms_update(self) -> bool:
        """True when each hop's update is R_h(u_h + o_h): kv, or adjacent with hop_transform."""
        return self.tying == "kv" or self.hop_transform

    @property
    def update_matrices(self) -> int:
        """How many D x D update matrices the model has: R_1..R_H, layerwise's H, or none."""
        if self.transforms_update:
            return self.hops
        return int(self.tying == "layerwise")

    @property
    def single_key_space(self) -> bool:
        """True when every hop scores against the same key encoder (servable from one index)."""
        return self.tying != "adjacent" or self.hops == 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        return cls(**d)
