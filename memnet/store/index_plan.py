"""What a FAISS index needs and costs, and whether memnet can drive it.

memnet drives an index in one way: train it once on the bank's live keys, add keys
under slot labels (``add_with_ids``, or in order for a bare HNSW), remove labels or
search past tombstones with an ``IDSelector``, write and read it, clone it empty.
An index built from a plain kind or from any ``index_factory`` string is walked
component by component (pre-transforms, coarse quantizer, codec, graph storage):

* components memnet has not been shown to drive are refused, with the reason;
* the training it needs is the largest of its components' needs: k-means with k
  centroids (IVF lists, 2**nbits per PQ or additive sub-quantizer, OPQ's rotation)
  needs at least k points and is trained at 39 per centroid (FAISS warns below);
  statistics (scalar quantizer ranges, PCA, LSH thresholds) at 1,000 points;
* its fixed memory (centroids, codebooks, rotations, empty inverted lists, IVF-PQ's
  precomputed table) is estimated, and the same limits bind every spelling.

Factory strings are screened before FAISS parses them, since FAISS allocates some
structures at construction (a list header per IVF list, a PQ's codebooks).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import faiss

from memnet.store.types import MAX_VECTOR_DIM, IndexKind, IndexSpec

# FAISS k-means warns below 39 training points per centroid; memnet trains at that level.
POINTS_PER_CENTROID = 39
STATISTICS_TRAIN_POINTS = 1000  # ranges, means, PCA: estimated, not clustered
MAX_LISTS = 1 << 20  # IVF nlist (IMI: lists of the product quantizer), as for kind "ivf"
MAX_INDEX_BYTES = 1 << 30  # estimated fixed memory of one index, before any memory is added
MIN_CODEBOOK_BITS, MAX_CODEBOOK_BITS = 4, 16  # bits per PQ / additive sub-quantizer code
MAX_SUBQUANTIZERS = 512  # PQ M, additive quantizer M
MIN_HNSW_M, MAX_HNSW_M = 4, 128
LIST_HEADER_BYTES = 160  # RSS of one empty IVF inverted list (measured: 2**20 lists, 160 MiB)

_LEAVES = {"IndexFlat", "IndexFlatL2", "IndexFlatIP", "IndexScalarQuantizer", "IndexPQ",
           "IndexPQFastScan", "IndexResidualQuantizer", "IndexLocalSearchQuantizer",
           "IndexProductResidualQuantizer", "IndexLSH"}  # fmt: skip
_GRAPHS = {"IndexHNSWFlat", "IndexHNSWPQ", "IndexHNSWSQ"}
_IVFS = {"IndexIVFFlat", "IndexIVFPQ", "IndexIVFPQFastScan", "IndexIVFScalarQuantizer",
         "IndexIVFResidualQuantizer", "IndexIVFLocalSearchQuantizer"}  # fmt: skip
_COARSE = {"IndexFlat", "IndexFlatL2", "IndexFlatIP", "IndexHNSWFlat", "MultiIndexQuantizer"}
_TRANSFORMS = {"OPQMatrix", "PCAMatrix", "RandomRotationMatrix", "ITQTransform",
               "NormalizationTransform", "RemapDimensionsTransform",
               "CenteringTransform"}  # fmt: skip
_REFUSED = {
    "IndexIDMap": "memnet labels memories itself: drop 'IDMap'",
    "IndexIDMap2": "memnet labels memories itself: drop 'IDMap2'",
    "IndexRefine": "memnet already re-scores every candidate from the exact stored keys: "
    "drop the refine stage",
    "IndexRefineFlat": "memnet already re-scores every candidate from the exact stored keys: "
    "drop the refine stage ('RFlat')",
    "IndexNSGFlat": "an NSG graph is built once from all vectors and cannot grow with writes",
    "IndexNSGPQ": "an NSG graph is built once from all vectors and cannot grow with writes",
    "IndexNSGSQ": "an NSG graph is built once from all vectors and cannot grow with writes",
    "IndexIVFPQR": "its re-ranking cannot be combined with the id filters memnet searches with",
    "IndexRowwiseMinMax": "it cannot add vectors one write at a time",
}
# SQ types that need no training (direct or float encodings).
_UNTRAINED_SQ = {faiss.ScalarQuantizer.QT_fp16, faiss.ScalarQuantizer.QT_8bit_direct}
for _name in ("QT_bf16", "QT_8bit_direct_signed"):
    if hasattr(faiss.ScalarQuantizer, _name):
        _UNTRAINED_SQ.add(getattr(faiss.ScalarQuantizer, _name))


@dataclass(frozen=True)
class IndexPlan:
    """The walk of one built index: what it is, needs and costs, and what is wrong with it."""

    structure: str  # e.g. "IndexPreTransform[OPQMatrix] > IndexIVFPQ(nlist=4, M=4, nbits=8)"
    needs_training: bool
    min_train_points: int  # FAISS refuses to train on fewer points (0: no training)
    train_points: int  # live memories before memnet trains it (0: no training)
    fixed_bytes: int  # estimated memory of its trained structures, before any memory
    unsupported: tuple[str, ...]  # why memnet cannot drive it; empty when it can
    over_limits: tuple[str, ...]  # limits it breaks; empty when none


@dataclass
class _Walk:
    parts: list[str] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)
    over_limits: list[str] = field(default_factory=list)
    kmeans_k: int = 0  # largest k of a k-means the training runs
    statistics_points: int = 0
    min_points: int = 0  # FAISS refuses to train on fewer
    fixed_bytes: int = 0

    def clusters(self, k: int) -> None:
        self.kmeans_k = max(self.kmeans_k, k)
        self.min_points = max(self.min_points, k)

    def statistics(self, points: int, *, minimum: int = 1) -> None:
        self.statistics_points = max(self.statistics_points, points)
        self.min_points = max(self.min_points, minimum)

    def limit(self, ok: bool, message: str) -> None:
        if not ok:
            self.over_limits.append(message)


def screen(spec: IndexSpec, *, dim: int) -> list[str]:
    """Limits ``spec`` breaks that FAISS would allocate for while constructing the index."""
    if spec.factory is not None:
        return _screen_factory(spec.factory, dim=dim)
    if spec.kind is IndexKind.IVF_PQ:
        return _codebook_bytes(spec.pq_nbits, dim)
    return []


def _codebook_bytes(nbits: int, dim: int) -> list[str]:
    """A PQ allocates its 2**nbits x dim codebooks when constructed."""
    if (1 << nbits) * dim * 4 <= MAX_INDEX_BYTES:
        return []
    return [
        f"a PQ of {nbits} bits at dimension {dim} needs {_mib((1 << nbits) * dim * 4)} "
        f"of codebooks, above {_mib(MAX_INDEX_BYTES)}"
    ]


def _screen_factory(text: str, *, dim: int) -> list[str]:
    problems: list[str] = []
    for number in (int(n) for n in re.findall(r"\d+", text)):
        if number > MAX_LISTS:
            problems.append(f"the number {number} is above {MAX_LISTS}")
    for a, b in re.findall(r"IMI(\d+)x(\d+)", text):
        if int(a) * int(b) > MAX_LISTS.bit_length() - 1:
            problems.append(f"IMI{a}x{b} makes 2**{int(a) * int(b)} lists, above {MAX_LISTS}")
    for _m, bits in re.findall(r"(?<![A-Za-z])PQ(\d+)x(\d+)", text):
        nbits = int(bits)
        if nbits > MAX_CODEBOOK_BITS:
            problems.append(f"PQ codes of {nbits} bits are above {MAX_CODEBOOK_BITS}")
        else:
            problems.extend(_codebook_bytes(nbits, dim))
    return problems


def analyse(index: faiss.Index, *, l2: bool) -> IndexPlan:
    """Walk a built (untrained) index; ``l2``: its metric is L2 (IVF-PQ precomputes tables)."""
    walk = _Walk()
    _visit(faiss.downcast_index(index), walk, l2=l2)
    needs_training = not index.is_trained
    minimum = walk.min_points if needs_training else 0
    wanted = max(POINTS_PER_CENTROID * walk.kmeans_k, walk.statistics_points)
    wanted = wanted if needs_training else 0
    if walk.fixed_bytes > MAX_INDEX_BYTES:
        walk.over_limits.append(
            f"its trained structures need about {_mib(walk.fixed_bytes)}, "
            f"above {_mib(MAX_INDEX_BYTES)}"
        )
    return IndexPlan(
        structure=" > ".join(walk.parts),
        needs_training=needs_training,
        min_train_points=minimum,
        train_points=max(wanted, minimum),
        fixed_bytes=walk.fixed_bytes,
        unsupported=tuple(walk.unsupported),
        over_limits=tuple(walk.over_limits),
    )


def _visit(index: Any, walk: _Walk, *, l2: bool) -> None:
    """Record ``index`` (a downcast SWIG object: its class is known at run time only)."""
    name = type(index).__name__
    walk.limit(
        index.d <= MAX_VECTOR_DIM, f"{name} works in dimension {index.d}, above {MAX_VECTOR_DIM}"
    )
    if name in _REFUSED:
        walk.parts.append(name)
        walk.unsupported.append(f"{name}: {_REFUSED[name]}")
    elif name == "IndexPreTransform":
        _visit_pretransform(index, walk, l2=l2)
    elif name in _IVFS:
        _visit_ivf(index, walk, l2=l2)
    elif name in _GRAPHS:
        m = _hnsw_m(index, walk)
        walk.parts.append(f"{name}(M={m})")
        storage = faiss.downcast_index(index.storage)
        if type(storage).__name__ not in ("IndexFlat", "IndexFlatL2", "IndexFlatIP"):
            _visit(storage, walk, l2=l2)
    elif name in _LEAVES:
        walk.parts.append(name)
        _visit_codec(index, walk)
    else:
        walk.parts.append(name)
        walk.unsupported.append(f"{name}: memnet does not drive this FAISS index type")


def _visit_pretransform(index: Any, walk: _Walk, *, l2: bool) -> None:
    names = []
    for i in range(index.chain.size()):
        transform: Any = faiss.downcast_VectorTransform(index.chain.at(i))
        name = type(transform).__name__
        names.append(name)
        d_in, d_out = int(transform.d_in), int(transform.d_out)
        walk.limit(
            max(d_in, d_out) <= MAX_VECTOR_DIM,
            f"{name} maps dimension {d_in} to {d_out}, above {MAX_VECTOR_DIM}",
        )
        if name not in _TRANSFORMS:
            walk.unsupported.append(f"{name}: memnet does not drive this FAISS transform")
        elif name == "OPQMatrix":
            nbits = int(transform.pq.nbits) if transform.pq is not None else 8  # FAISS default
            walk.clusters(1 << nbits)
            walk.fixed_bytes += 4 * d_in * d_out + 4 * (1 << nbits) * d_out
        elif name in ("PCAMatrix", "ITQTransform"):
            if d_out > d_in:
                walk.unsupported.append(
                    f"{name}: it cannot output more dimensions ({d_out}) than it takes ({d_in})"
                )
            # FAISS keeps min(points, d_in) principal components: d_out needs d_out points.
            walk.statistics(max(STATISTICS_TRAIN_POINTS, d_out), minimum=d_out)
            walk.fixed_bytes += 4 * (2 * d_in * d_in + d_in * d_out + d_out * d_out)
        elif name == "CenteringTransform":
            walk.statistics(STATISTICS_TRAIN_POINTS)
        elif name in ("RandomRotationMatrix", "RemapDimensionsTransform"):
            walk.fixed_bytes += 4 * d_in * d_out
    walk.parts.append(f"IndexPreTransform[{', '.join(names)}]")
    _visit(faiss.downcast_index(index.index), walk, l2=l2)


def _visit_ivf(index: Any, walk: _Walk, *, l2: bool) -> None:
    name, nlist, d = type(index).__name__, int(index.nlist), int(index.d)
    walk.limit(nlist <= MAX_LISTS, f"{name} has nlist {nlist}, above {MAX_LISTS}")
    walk.fixed_bytes += nlist * LIST_HEADER_BYTES
    quantizer: Any = faiss.downcast_index(index.quantizer)
    coarse = type(quantizer).__name__
    if coarse not in _COARSE:
        walk.unsupported.append(f"{coarse}: memnet does not drive this coarse quantizer of IVF")
    elif coarse == "MultiIndexQuantizer":  # IMI: k-means per half, lists = the product
        walk.clusters(1 << int(quantizer.pq.nbits))
        walk.fixed_bytes += 4 * (1 << int(quantizer.pq.nbits)) * d
    else:
        walk.clusters(nlist)
        walk.fixed_bytes += 4 * nlist * d
        if coarse == "IndexHNSWFlat":
            walk.fixed_bytes += 4 * nlist * 3 * _hnsw_m(quantizer, walk)
    walk.parts.append(f"{name}(nlist={nlist}, quantizer={coarse})")
    _visit_codec(index, walk)
    if name == "IndexIVFPQ" and l2 and index.by_residual:
        table = 4 * nlist * int(index.pq.M) * (1 << int(index.pq.nbits))
        if table <= _precomputed_table_max_bytes():  # FAISS skips larger tables
            walk.fixed_bytes += table


def _visit_codec(index: Any, walk: _Walk) -> None:
    """The vector codec of a flat-codes or IVF index: PQ, additive, scalar, LSH or none."""
    name = type(index).__name__
    if hasattr(index, "pq") and "PQ" in name:
        _product_quantizer(index.pq, walk)
    elif name == "IndexProductResidualQuantizer":
        for i in range(int(index.prq.nsplits)):
            _additive_quantizer(index.prq.subquantizer(i), walk)
    elif name.endswith(("ResidualQuantizer", "LocalSearchQuantizer")):
        _additive_quantizer(index.aq, walk)
    elif "ScalarQuantizer" in name:
        if index.sq.qtype not in _UNTRAINED_SQ:
            walk.statistics(STATISTICS_TRAIN_POINTS)
    elif name == "IndexLSH":
        if index.train_thresholds:
            walk.statistics(STATISTICS_TRAIN_POINTS)
        if index.rotate_data:
            walk.fixed_bytes += 4 * int(index.d) * int(index.nbits)


def _product_quantizer(pq: Any, walk: _Walk) -> None:
    m, nbits, d = int(pq.M), int(pq.nbits), int(pq.d)
    walk.parts[-1] += f"[PQ M={m}, nbits={nbits}]"
    _codebook_limits("PQ", m, [nbits], walk)
    walk.clusters(1 << nbits)  # every sub-quantizer runs a k-means with 2**nbits centroids
    walk.fixed_bytes += 4 * (1 << nbits) * d


def _additive_quantizer(aq: Any, walk: _Walk) -> None:
    bits = [int(b) for b in faiss.vector_to_array(aq.nbits)]
    _codebook_limits("additive quantizer", int(aq.M), bits, walk)
    walk.clusters(1 << max(bits))
    walk.fixed_bytes += sum(4 * (1 << b) * int(aq.d) for b in bits)


def _codebook_limits(what: str, m: int, bits: list[int], walk: _Walk) -> None:
    walk.limit(m <= MAX_SUBQUANTIZERS, f"{what} M={m} is above {MAX_SUBQUANTIZERS}")
    for nbits in sorted(set(bits)):
        walk.limit(
            MIN_CODEBOOK_BITS <= nbits <= MAX_CODEBOOK_BITS,
            f"{what} codes of {nbits} bits are outside {MIN_CODEBOOK_BITS}..{MAX_CODEBOOK_BITS}",
        )


def _hnsw_m(index: Any, walk: _Walk) -> int:
    m = int(index.hnsw.nb_neighbors(1))  # level 0 holds 2*M links, the levels above M
    walk.limit(MIN_HNSW_M <= m <= MAX_HNSW_M, f"HNSW M={m} is outside {MIN_HNSW_M}..{MAX_HNSW_M}")
    return m


def _precomputed_table_max_bytes() -> int:
    limit: int = getattr(faiss.cvar, "precomputed_table_max_bytes", 2 << 30)  # FAISS: 2 GiB
    return limit


def _mib(n_bytes: int) -> str:
    return f"{n_bytes / (1 << 20):,.0f} MiB"
