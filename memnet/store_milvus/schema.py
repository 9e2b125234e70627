"""The Milvus collections memnet makes: one per bank, plus the catalog.

A bank's collection (``<prefix>bank_<uid>``, a fresh uid per creation, so a bank
dropped and created again never sees the old rows) holds one row per live memory:

    id        VARCHAR primary key (upserts replace by id)
    key       FLOAT_VECTOR (Dk)   searched, with the bank's index and metric
    value     FLOAT_VECTOR (Dv)   returned exactly (a FLAT index: Milvus indexes every vector)
    seq       INT64               write order, unique and increasing within the bank
    written_ns INT64              unix time of the write, nanoseconds
    text      VARCHAR, nullable   the raw text the vectors were encoded from
    source    VARCHAR             raw input vector, base64 of float32 bytes ("" = none)
    metadata  JSON                the memory's metadata object

Index build parameters are sent nested (``params={"params": {...}}``): Milvus reads
that form, and Milvus Lite silently ignores the flat one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from memnet.errors import InvalidArgument
from memnet.store.types import BankConfig, IndexKind, IndexSpec, Metric

if TYPE_CHECKING:
    from pymilvus import CollectionSchema, MilvusClient
    from pymilvus.milvus_client.index import IndexParams

ID_MAX_BYTES = 1024
TEXT_MAX_BYTES = 65_535  # Milvus's VARCHAR limit
SOURCE_MAX_FLOATS = 12_287  # base64 of this many float32 fits in TEXT_MAX_BYTES
IVF_NLIST_MAX = 65_536  # Milvus's range for nlist
TOP_K_MAX = 16_384  # Milvus's largest limit (top-k) of one search or query
CATALOG_VECTOR_DIM = 2  # Milvus collections need a vector field; the catalog's is unused

MILVUS_INDEX_KINDS = (IndexKind.FLAT, IndexKind.HNSW, IndexKind.IVF)
METRIC_NAMES = {Metric.INNER_PRODUCT: "IP", Metric.L2: "L2", Metric.COSINE: "COSINE"}
FIELDS = ("id", "key", "value", "seq", "written_ns", "text", "source", "metadata")


def bank_collection(prefix: str, uid: str) -> str:
    return f"{prefix}bank_{uid}"


def catalog_collection(prefix: str) -> str:
    return f"{prefix}catalog"


def check_index(spec: IndexSpec) -> None:
    """InvalidArgument naming the field when the spec has no Milvus equivalent."""
    if spec.kind not in MILVUS_INDEX_KINDS:
        kinds = ", ".join(k.value for k in MILVUS_INDEX_KINDS)
        raise InvalidArgument(
            f"index.kind {spec.kind.value!r} is not available on the milvus store "
            f"(available: {kinds})",
            field="index.kind",
        )
    if spec.kind is IndexKind.IVF and spec.nlist > IVF_NLIST_MAX:
        raise InvalidArgument(
            f"index.nlist must be 1..{IVF_NLIST_MAX} on the milvus store, got {spec.nlist}",
            field="index.nlist",
        )
    if spec.train_size is not None:
        raise InvalidArgument(
            "index.train_size is not used on the milvus store (Milvus trains each segment's "
            "index itself); leave it unset",
            field="index.train_size",
        )


def key_index_params(spec: IndexSpec) -> tuple[str, dict[str, Any]]:
    """Milvus index type and (nested) build parameters of a bank's key field."""
    if spec.kind is IndexKind.HNSW:
        return "HNSW", {"params": {"M": spec.hnsw_m, "efConstruction": spec.ef_construction}}
    if spec.kind is IndexKind.IVF:
        return "IVF_FLAT", {"params": {"nlist": spec.nlist}}
    return "FLAT", {}


def search_params(
    config: BankConfig, *, k: int, ef_search: int | None, nprobe: int | None
) -> dict[str, Any]:
    """Milvus search parameters for one search of ``k`` (HNSW needs ef >= k)."""
    metric = {"metric_type": METRIC_NAMES[config.metric]}
    spec = config.index
    if spec.kind is IndexKind.HNSW:
        ef = max(ef_search if ef_search is not None else spec.ef_search, k)
        return {**metric, "params": {"ef": ef}}
    if spec.kind is IndexKind.IVF:
        probes = min(nprobe if nprobe is not None else spec.nprobe, spec.nlist)
        return {**metric, "params": {"nprobe": probes}}
    return {**metric, "params": {}}


def bank_schema(config: BankConfig) -> tuple[CollectionSchema, IndexParams]:
    from pymilvus import DataType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=ID_MAX_BYTES)
    schema.add_field("key", DataType.FLOAT_VECTOR, dim=config.key_dim)
    schema.add_field("value", DataType.FLOAT_VECTOR, dim=config.value_dim)
    schema.add_field("seq", DataType.INT64)
    schema.add_field("written_ns", DataType.INT64)
    schema.add_field("text", DataType.VARCHAR, max_length=TEXT_MAX_BYTES, nullable=True)
    schema.add_field("source", DataType.VARCHAR, max_length=TEXT_MAX_BYTES)
    schema.add_field("metadata", DataType.JSON)
    index = MilvusClient.prepare_index_params()
    kind, params = key_index_params(config.index)
    index.add_index("key", index_type=kind, metric_type=METRIC_NAMES[config.metric], params=params)
    index.add_index("value", index_type="FLAT", metric_type="L2")
    index.add_index("seq", index_type="INVERTED")
    return schema, index


def catalog_schema() -> tuple[CollectionSchema, IndexParams]:
    """Rows ``bank/<name>``, ``claim/<name>/<uid>`` and ``head/<uid>/<writer>``."""
    from pymilvus import DataType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=512)
    schema.add_field("bank", DataType.VARCHAR, max_length=128)
    schema.add_field("kind", DataType.VARCHAR, max_length=16)
    schema.add_field("doc", DataType.JSON)
    schema.add_field("unused", DataType.FLOAT_VECTOR, dim=CATALOG_VECTOR_DIM)
    index = MilvusClient.prepare_index_params()
    index.add_index("unused", index_type="FLAT", metric_type="L2")
    return schema, index


def create_collection(
    client: MilvusClient,
    name: str,
    schema: CollectionSchema,
    index: IndexParams,
    timeout_s: float,
) -> None:
    """Create a collection (Strong consistency, one shard), its indexes, and load it.

    Index creation does not wait for the build (``sync=False``): the collection is empty,
    and pymilvus's wait polls every 0.5 s per index.
    """
    client.create_collection(
        name, schema=schema, consistency_level="Strong", num_shards=1, timeout=timeout_s
    )
    client.create_index(name, index, timeout=timeout_s, sync=False)
    client.load_collection(name, timeout=timeout_s)
