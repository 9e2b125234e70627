"""The server's engine: binds each bank to its model and runs writes and queries.

The engine speaks domain types (numpy arrays, store records, ``ModelInfo``), never
protobuf; servicers decode requests into calls to it and encode what it returns.
A bank's ``BankConfig.model`` names the model whose encoders fill and query it
(always stored explicitly, so changing the server's default model never rebinds
an existing bank).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np

from memnet.core.search_options import SearchOptions
from memnet.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    KeySpaceChanged,
    MemnetError,
)
from memnet.serving.bank_source import BankMemorySource
from memnet.serving.contract import (
    AttentionMode,
    InputKind,
    ModelInfo,
    QueryOutput,
    ServedModel,
    check_options,
)
from memnet.serving.repository import ModelRef, ModelVersion
from memnet.store.interface import BankStore
from memnet.store.interface import MemoryBank as Bank
from memnet.store.types import (
    JsonObject,
    MemoryBatch,
    MemoryContent,
    MemoryRecord,
    WriteMode,
    WriteResult,
)
from memnet_server import binding
from memnet_server.bank_requests import BankRequest, bank_config
from memnet_server.batching import Batcher, BatchObserver, batching_pays, slice_output
from memnet_server.binding import ModelCatalog
from memnet_server.config import ServerSettings
from memnet_server.placement import INLINE_MAX_QUERIES, Placement, place_query
from memnet_server.reindex import Reindexer, ReindexStatus

LOG = logging.getLogger(__name__)

RECORD_CHUNK = 10_000  # ids per bank.get when attaching vectors to attended memories


@dataclass(frozen=True)
class WriteInput:
    """N memories from one write message; vector columns only for vector banks."""

    ids: list[str | None] | None
    texts: list[str | None] | None
    metadata: list[JsonObject] | None
    keys: np.ndarray | None  # (N, Dk)
    values: np.ndarray | None  # (N, Dv)


@dataclass(frozen=True)
class WriteOutcome:
    result: WriteResult
    unknown_words: list[str]  # sorted, unique


@dataclass(frozen=True)
class QueryAnswer:
    output: QueryOutput  # rows of this request only
    unknown_words: list[list[str]]  # per question
    contents: dict[str, MemoryContent]  # text/metadata of attended memories that have any
    records: dict[str, MemoryRecord]  # attended memories with vectors, only with include_vectors
    bank_seq: int
    model: ModelInfo
    model_version: int  # the version of ``model`` that answered


class Engine:
    """Banks, models and the query batchers of one server process."""

    def __init__(
        self,
        store: BankStore,
        models: ModelCatalog,
        settings: ServerSettings,
        *,
        observe_batch: BatchObserver | None = None,
    ) -> None:
        self.store = store
        self.models = models
        self.settings = settings
        self._observe_batch = observe_batch
        self._default_model = settings.default_model or models.default_name
        self.models.get(self._default_model)  # fail at startup, not at the first request
        self._batchers: dict[str, tuple[Bank, Batcher]] = {}  # bank name → (bank, batcher)
        self.reindexer = Reindexer(models)
        self._lock = threading.Lock()

    # Models.

    @property
    def default_model(self) -> str:
        return self._default_model

    def model(self, ref: str) -> ModelVersion:
        """The version ``ref`` (NAME = the latest ready one, or NAME@VERSION) names."""
        return self.models.get(ref)

    def version_of(self, bank: Bank) -> ModelVersion:
        """The model version whose keys the bank holds (FAILED_PRECONDITION if unserved)."""
        return binding.version_of(self.models, bank.config, default_model=self._default_model)

    def model_of(self, bank: Bank) -> ServedModel:
        return self.version_of(bank).served()

    def reindex_bank(self, bank_name: str, ref: str) -> ReindexStatus:
        """Start re-encoding a text bank with the model version ``ref`` names."""
        bank = self.bank(bank_name)
        try:
            current = self.version_of(bank).served().info.input_kind
        except FailedPrecondition:
            current = InputKind.TEXT  # its version is gone: reindexing is how it comes back
        if current is not InputKind.TEXT:
            raise FailedPrecondition(
                f"bank {bank.name!r} holds its callers' own vectors (model "
                f"{bank.config.model!r}): there is nothing to re-encode",
                field="bank",
            )
        return self.reindexer.start(bank, self.model(ref))

    def load_models(self, name: str | None) -> list[ModelVersion]:
        """Scan the models directory now (for model ``name``, or all); the changes."""
        return self.models.refresh(only=name)

    def unload_model(self, name: str, version: int) -> None:
        """Forget ``name@version``; FAILED_PRECONDITION naming the banks that use it."""
        self.models.unload(
            name, version, in_use=lambda n, v: binding.banks_using(self.store.banks(), n, v)
        )

    # Banks.

    def create_bank(self, request: BankRequest) -> Bank:
        ref = ModelRef.parse(request.model or self._default_model, field="spec.model")
        version = self.models.get(ref)
        config = bank_config(request, version)
        bank = self.store.create_bank(config)  # index errors: the servicer names spec.index...
        LOG.info(
            "created bank %s (model %s, %s)", config.name, version.ref, config.index.kind.value
        )
        return bank

    def bank(self, name: str) -> Bank:
        if not name:
            raise InvalidArgument("bank name is required", field="bank")
        return self.store.bank(name)

    def banks(self) -> Sequence[Bank]:
        return self.store.banks()

    def drop_bank(self, name: str) -> None:
        self.bank(name)
        with self._lock:
            self._batchers.pop(name, None)
        self.store.drop_bank(name)
        LOG.info("dropped bank %s", name)

    def key_space(self, bank: Bank) -> str:
        """Which key space the bank's index holds and which hops search it."""
        config = bank.config
        ref = binding.describe(config, self._default_model)
        try:
            hops = self.version_of(bank).served().info.max_hops
        except FailedPrecondition:
            return f"keys of model {ref} (not served), dim {config.key_dim}, {config.metric.value}"
        return (
            f"one key space: keys of model {ref}, dim {config.key_dim}, "
            f"{config.metric.value}; searched by every hop 1..{hops}"
        )

    # Memories.

    def write(self, bank_name: str, data: WriteInput, *, mode: WriteMode) -> WriteOutcome:
        """Encode (text banks) and store one batch; if the bank switched model versions
        meanwhile (a reindex), the batch is encoded again with the new version."""
        try:
            return self._write_once(bank_name, data, mode=mode)
        except KeySpaceChanged:
            return self._write_once(bank_name, data, mode=mode)

    def _write_once(self, bank_name: str, data: WriteInput, *, mode: WriteMode) -> WriteOutcome:
        bank = self.bank(bank_name)
        config = bank.config
        model = binding.version_of(self.models, config, default_model=self._default_model).served()
        info = model.info
        unknown: set[str] = set()
        if info.input_kind is InputKind.TEXT:
            if data.keys is not None or data.values is not None:
                raise InvalidArgument(
                    f"bank {bank.name!r} holds text (model {info.name!r}): send memories[].text, "
                    "not batch.keys / batch.values",
                    field="batch.keys",
                )
            texts = data.texts or []
            for i, text in enumerate(texts):
                if not text or not text.strip():
                    raise InvalidArgument(
                        f"batch.memories[{i}].text is empty", field=f"batch.memories[{i}].text"
                    )
            encoded = model.encode_memories([t or "" for t in texts])
            keys, values = encoded.keys, encoded.values
            for words in encoded.unknown_words:
                unknown.update(words)
        else:
            if data.keys is None or data.values is None:
                raise InvalidArgument(
                    f"bank {bank.name!r} holds vectors: batch.keys [N, {bank.config.key_dim}] and "
                    f"batch.values [N, {bank.config.value_dim}] are required",
                    field="batch.keys" if data.keys is None else "batch.values",
                )
            keys, values = data.keys, data.values
        batch = MemoryBatch(
            keys=keys,
            values=values,
            ids=data.ids,
            texts=data.texts,
            metadata=data.metadata,
            key_space=config.key_space if info.input_kind is InputKind.TEXT else None,
        )
        result = bank.write(batch, mode=mode)
        return WriteOutcome(result=result, unknown_words=sorted(unknown))

    # Queries.

    def placement(self, bank_name: str, n_queries: int) -> Placement:
        """Where the server runs a query of ``n_queries`` to the bank (``place_query``;
        always the pool with ``queries_on_loop`` off). Errors are cheap: a query to a
        bank that does not exist (yet) runs on the loop and fails there."""
        if (
            not self.settings.queries_on_loop
            or n_queries > INLINE_MAX_QUERIES
            or not self.store.in_process
        ):
            return Placement.POOL
        try:
            bank = self.bank(bank_name)
            version = binding.version_of(
                self.models, bank.config, default_model=self._default_model
            )
            info = version.served().info
        except MemnetError:
            return Placement.LOOP
        return place_query(bank, info, batching=self.settings.batching_enabled)

    def query(
        self,
        bank_name: str,
        options: SearchOptions,
        *,
        questions: list[str] | None,
        vectors: np.ndarray | None,
        deadline: float | None,
        include_vectors: bool = False,
        include_contents: bool = True,
        direct: bool = False,
    ) -> QueryAnswer:
        """Answer B questions (text) or (B, Dk) query vectors against one bank.

        The attended memories' text and metadata come with the answer unless
        ``include_contents`` is False; their key and value vectors (a copy each) only
        with ``include_vectors``. A query never mixes model versions: if the bank
        switches versions while it runs (a reindex), it runs again on the new one.
        ``direct``: run the forward in this thread, never through the batcher (the
        caller batched already; the batch size is observed as the batcher's would be).
        """

        def once() -> QueryAnswer:
            return self._query_once(
                bank_name,
                options,
                questions=questions,
                vectors=vectors,
                deadline=deadline,
                include_vectors=include_vectors,
                include_contents=include_contents,
                direct=direct,
            )

        try:
            return once()
        except KeySpaceChanged:
            return once()

    def _query_once(
        self,
        bank_name: str,
        options: SearchOptions,
        *,
        questions: list[str] | None,
        vectors: np.ndarray | None,
        deadline: float | None,
        include_vectors: bool,
        include_contents: bool,
        direct: bool,
    ) -> QueryAnswer:
        bank = self.bank(bank_name)
        config = bank.config
        version = binding.version_of(self.models, config, default_model=self._default_model)
        model = version.served()
        info = model.info
        if info.input_kind is InputKind.TEXT:
            options = replace(options, key_space=config.key_space)
        self._check_options(info, options, bank)
        _check_deadline(deadline)
        if info.input_kind is InputKind.TEXT:
            if vectors is not None or not questions:
                raise InvalidArgument(
                    f"bank {bank.name!r} (model {info.name!r}) takes questions, not query_vectors",
                    field="questions",
                )
            encoded = model.encode_queries(questions)
            queries, unknown = encoded.vectors, encoded.unknown_words
        else:
            if vectors is None or questions:
                raise InvalidArgument(
                    f"bank {bank.name!r} (model {info.name!r}) takes query_vectors "
                    f"[B, {bank.config.key_dim}], not questions",
                    field="query_vectors",
                )
            if vectors.shape[1] != bank.config.key_dim:
                raise InvalidArgument(
                    f"query_vectors must be [B, {bank.config.key_dim}], got {list(vectors.shape)}",
                    field="query_vectors.shape",
                )
            queries, unknown = vectors, [[] for _ in range(vectors.shape[0])]
        _check_deadline(deadline)
        bank_seq = bank.last_seq
        queries = np.ascontiguousarray(queries)
        output = self._run(bank, model, options, queries, deadline, direct=direct)
        records: dict[str, MemoryRecord] = {}
        if include_vectors:
            ordered = sorted(set(_attended(output)))
            for start in range(0, len(ordered), RECORD_CHUNK):
                chunk = bank.get(ordered[start : start + RECORD_CHUNK])
                records.update((record.id, record) for record in chunk if record is not None)
        return QueryAnswer(
            output=output,
            unknown_words=unknown,
            # A generator: a bank without text or metadata never walks the ids.
            contents=bank.contents(_attended(output)) if include_contents else {},
            records=records,
            bank_seq=bank_seq,
            model=info,
            model_version=version.version,
        )

    def _check_options(self, info: ModelInfo, options: SearchOptions, bank: Bank) -> None:
        check_options(info, options)
        if options.mode is AttentionMode.SOFT and bank.count() > self.settings.max_k:
            raise InvalidArgument(
                f"ATTENTION_MODE_SOFT attends over all {bank.count()} memories of bank "
                f"{bank.name!r}; the limit is max_k={self.settings.max_k}",
                field="attention_mode",
            )

    def _run(
        self,
        bank: Bank,
        model: ServedModel,
        options: SearchOptions,
        queries: np.ndarray,
        deadline: float | None,
        *,
        direct: bool,
    ) -> QueryOutput:
        """The forward, in this thread or through the bank's batcher; ``direct``: in this
        thread, its batch size observed as the batcher's would be."""
        if direct and self._observe_batch is not None:
            self._observe_batch(int(queries.shape[0]))
        batched = self.settings.batching_enabled and batching_pays(model.info, bank.config)
        if direct or not batched:
            return model.query(queries, BankMemorySource(bank), options)
        return self._batcher(bank, model).submit(options, queries, deadline=deadline)

    def _batcher(self, bank: Bank, model: ServedModel) -> Batcher:
        with self._lock:
            cached = self._batchers.get(bank.name)
            # A bank dropped and created again under its name gets a new batcher: the old
            # one (cached by a query that raced the drop) still runs against the old bank.
            batcher = cached[1] if cached is not None and cached[0] is bank else None
            if batcher is None:
                source = BankMemorySource(bank)

                def run_batch(key: Hashable, queries: np.ndarray) -> QueryOutput:
                    assert isinstance(key, SearchOptions)
                    return model.query(queries, source, key)

                batcher = Batcher(
                    run_batch,
                    max_batch=self.settings.batching_max_batch,
                    max_delay_s=self.settings.batching_max_delay_ms / 1000.0,
                    workers=self.settings.batching_workers,
                    max_queued=self.settings.max_queued_queries,
                    observe_batch=self._observe_batch,
                )
                self._batchers[bank.name] = (bank, batcher)
            return batcher


def answer_rows(answer: QueryAnswer, start: int, stop: int) -> QueryAnswer:
    """Rows [start, stop) of an answer to several requests' questions joined."""
    return replace(
        answer,
        output=slice_output(answer.output, start, stop),
        unknown_words=answer.unknown_words[start:stop],
    )


def _attended(output: QueryOutput) -> Iterator[str]:
    """The ids of every attended memory (padding dropped; repeats across hops and rows)."""
    return (i for hop in output.hops for row in hop.ids for i in row if i)


def _check_deadline(deadline: float | None) -> None:
    if deadline is not None and deadline <= time.monotonic():
        raise DeadlineExceeded("deadline exceeded before the query ran")
