"""The synchronous client, and the one source of the SDK's method surface.

``aio.py`` (``AsyncMemnetClient``) is generated from this file by
``scripts/gen_async_client.py``, and a test fails when the committed ``aio.py`` is
not what the script makes of this file. To add or change a method, edit it here
(and its row in ``_rpcs.RPCS``), then run ``python scripts/gen_async_client.py``.

Why the async client is generated rather than shared at run time: see the
docstring of ``scripts/gen_async_client.py``.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Unpack

from memnet.api.v1 import bank_pb2, memory_pb2, model_pb2
from memnet_client import _checks, _convert, _requests
from memnet_client._base import (
    DEFAULT_KEEPALIVE_S,
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_TIMEOUT_S,
    DEFAULT_WRITE_TIMEOUT_S,
    ClientBase,
)
from memnet_client._call import RetryPolicy
from memnet_client._channel import DEFAULT_TARGET, TlsConfig, close_channels, open_channel
from memnet_client._progress import Progress
from memnet_client.errors import MemnetError, ValidationError
from memnet_client.models import (
    Bank,
    CapacityPolicy,
    IndexKind,
    IndexSpec,
    Memory,
    MemoryPage,
    Metric,
    ModelInfo,
    ModelVersion,
    QueryArrays,
    QueryResponse,
    StreamWriteResult,
    WriteResult,
)
from memnet_client.options import (
    QueryKnobs,
    SearchKnobs,
    SearchParams,
    WriteKnobs,
    WriteOptions,
    search_params,
    write_options,
)


class MemnetClient(ClientBase):
    """A blocking client of memnet; use it as a context manager or call ``close()``.

    Args:
        target: where the server is: ``"host:port"`` (default ``127.0.0.1:50051``);
            several replicas as ``"host:port,host:port"`` or a list; or a gRPC URI,
            ``"dns:///name:port"`` for every address of a DNS name. Several replicas
            get client-side round-robin, and idempotent calls that fail with
            UNAVAILABLE are retried on another replica (docs/sdk.md, "Replicas").
        api_key: sent as ``authorization: Bearer <api_key>`` with every call.
        tls: a ``TlsConfig`` (CA, client certificate), True for TLS with the system's
            roots, None/False for plaintext.
        timeout_s: default deadline of reads and queries, in seconds (10).
        write_timeout_s: default deadline of each write request, in seconds (60).
        max_message_bytes: largest message sent or received (64 MiB; gRPC's own
            default is 4 MiB). Writes are chunked under it.
        keepalive_s: HTTP/2 keepalive ping interval, in seconds (300).
        retry: attempts and backoff of idempotent calls that fail with UNAVAILABLE
            (4 attempts).
        metadata: extra ``(key, value)`` pairs sent with every call.

    Every method takes ``timeout_s`` to override the default deadline. Errors are
    ``memnet_client.errors`` exceptions (all ``MemnetError``, a ``ValueError``).
    ``channels`` holds the client's gRPC channels (one unless ``target`` lists
    several host names), ``channel`` and ``stubs`` the first one's.
    """

    def __init__(
        self,
        target: str | Sequence[str] = DEFAULT_TARGET,
        *,
        api_key: str | None = None,
        tls: TlsConfig | bool | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        write_timeout_s: float = DEFAULT_WRITE_TIMEOUT_S,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        keepalive_s: float = DEFAULT_KEEPALIVE_S,
        retry: RetryPolicy | None = None,
        metadata: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(
            target,
            api_key=api_key,
            tls=tls,
            timeout_s=timeout_s,
            write_timeout_s=write_timeout_s,
            max_message_bytes=max_message_bytes,
            keepalive_s=keepalive_s,
            retry=retry,
            metadata=metadata,
        )
        self.channels = tuple(
            open_channel(t.target, tls=self.tls, options=self.channel_options(t))
            for t in self.channel_targets
        )
        self.channel = self.channels[0]
        self._attach(self.channels)

    def _call(
        self, rpc: str, request: object, timeout_s: float | None, *, idempotent: bool | None = None
    ) -> Any:
        """Every RPC of this client goes through here, into the one wrapper (``_call.Caller``)."""
        return self._caller.call(rpc, request, timeout_s=timeout_s, idempotent=idempotent)

    def close(self) -> None:
        """Close the channels; calls in flight are cancelled."""
        close_channels(self.channels)

    def __enter__(self) -> MemnetClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def create_bank(
        self,
        name: str,
        *,
        model: str | None = None,
        key_dim: int | None = None,
        value_dim: int | None = None,
        metric: Metric | None = None,
        index: IndexKind | IndexSpec = "flat",
        capacity: int | None = None,
        capacity_policy: CapacityPolicy = "reject",
        description: str = "",
        timeout_s: float | None = None,
    ) -> Bank:
        """Create a bank; AlreadyExists if the name is taken. Not retried.

        ``model`` None = the server's default text model; ``model="vector"`` needs
        ``key_dim`` (Dk) and ``value_dim`` (Dv). ``metric`` None = the model's.
        ``capacity`` = most live memories (None = unbounded), enforced per
        ``capacity_policy`` ("reject" or "evict_oldest").
        """
        request = _requests.create_bank_request(
            name,
            model=model,
            key_dim=key_dim,
            value_dim=value_dim,
            metric=metric,
            index=index,
            capacity=capacity,
            capacity_policy=capacity_policy,
            description=description,
        )
        response = self._call("CreateBank", request, timeout_s)
        return _convert.bank(response.bank)

    def get_bank(self, name: str, *, timeout_s: float | None = None) -> Bank:
        """Describe one bank (spec, memory count, last sequence number); NotFound if absent."""
        request = bank_pb2.GetBankRequest(name=_checks.bank_name(name, field="name"))
        response = self._call("GetBank", request, timeout_s)
        return _convert.bank(response.bank)

    def list_banks(self, *, timeout_s: float | None = None) -> builtins.list[Bank]:
        """Every bank the caller's API key may read."""
        response = self._call("ListBanks", bank_pb2.ListBanksRequest(), timeout_s)
        return [_convert.bank(b) for b in response.banks]

    def delete_bank(self, name: str, *, timeout_s: float | None = None) -> None:
        """Delete a bank and all its memories; NotFound if absent. Not retried."""
        request = bank_pb2.DeleteBankRequest(name=_checks.bank_name(name, field="name"))
        self._call("DeleteBank", request, timeout_s)

    def write(
        self,
        bank: str,
        texts: Sequence[str] | None = None,
        *,
        keys: Any = None,
        values: Any = None,
        ids: Sequence[str] | None = None,
        metadata: Sequence[Mapping[str, Any] | None] | None = None,
        options: WriteOptions | None = None,
        timeout_s: float | None = None,
        **knobs: Unpack[WriteKnobs],
    ) -> WriteResult:
        """Write N memories durably, in as many WriteMemories requests as needed.

        Text banks take ``texts`` (N sentences); vector banks take ``keys`` (N, Dk) and
        ``values`` (N, Dv), any real dtype (sent as float32, NaN/Inf refused), and
        optionally ``texts`` as raw content. ``ids`` (N client ids, unique) and
        ``metadata`` (N JSON-able dicts or None, each at most 64 KiB) are optional.

        ``options`` (a ``WriteOptions``) or its fields as keywords (``mode``,
        ``chunk_bytes``, ``max_chunk_memories``, ``progress``) say how to send it:
        ``mode="insert"`` fails with AlreadyExists if an id exists; the write is cut
        into requests of at most ``chunk_bytes`` (default 3 MiB, never above
        ``max_message_bytes``) and ``max_chunk_memories`` memories; ``progress``
        shows a tqdm bar on stderr. Each request is durable on its own: if one
        fails, the earlier ones stay written. ``timeout_s`` applies to each request.
        A request is retried on UNAVAILABLE (on another replica when there is one)
        only when ``mode="upsert"`` and ``ids`` are given: replaying it is harmless.
        """
        chosen = write_options(options, knobs)
        plan = self._plan(
            bank, texts=texts, keys=keys, values=values, ids=ids, metadata=metadata, options=chosen
        )
        responses: builtins.list[Any] = []
        with Progress(
            plan.write.size, desc=f"write {bank}", unit="mem", enabled=chosen.progress
        ) as bar:
            try:
                for request in plan.requests():
                    responses.append(
                        self._call("WriteMemories", request, timeout_s, idempotent=plan.idempotent)
                    )
                    bar.update(len(responses[-1].ids))
            except MemnetError as error:
                plan.note_partial(error, responses)
                raise
        return _convert.write_result(responses)

    def stream_write(
        self,
        bank: str,
        texts: Sequence[str] | None = None,
        *,
        keys: Any = None,
        values: Any = None,
        ids: Sequence[str] | None = None,
        metadata: Sequence[Mapping[str, Any] | None] | None = None,
        options: WriteOptions | None = None,
        timeout_s: float | None = None,
        **knobs: Unpack[WriteKnobs],
    ) -> StreamWriteResult:
        """Bulk load over one StreamWriteMemories call; arguments as for ``write``.

        Each chunk is one stream message, written durably in order. It returns counts,
        not ids (give ``ids`` if you need them). On an error the earlier messages stay
        written and the error's details say how many memories were committed.
        ``timeout_s`` (default 60 s) bounds the whole stream; ``progress`` counts the
        memories handed to the stream. Never retried.
        """
        chosen = write_options(options, knobs)
        plan = self._plan(
            bank, texts=texts, keys=keys, values=values, ids=ids, metadata=metadata, options=chosen
        )
        with Progress(
            plan.write.size, desc=f"stream {bank}", unit="mem", enabled=chosen.progress
        ) as bar:
            messages = plan.stream_requests(sent=bar.update)
            response = self._call("StreamWriteMemories", messages, timeout_s)
        return _convert.stream_write_result(response)

    def get(
        self,
        bank: str,
        ids: Sequence[str],
        *,
        include_vectors: bool = False,
        timeout_s: float | None = None,
    ) -> builtins.list[Memory]:
        """The memories with these ids, in request order; unknown ids are left out.

        With ``include_vectors`` each Memory carries ``key`` (Dk,) and ``value`` (Dv,).
        """
        request = memory_pb2.GetMemoriesRequest(
            bank=_checks.bank_name(bank),
            ids=_checks.strings(ids, field="ids"),
            include_vectors=_checks.flag(include_vectors, field="include_vectors"),
        )
        response = self._call("GetMemories", request, timeout_s)
        return [_convert.memory(m) for m in response.memories]

    def delete(self, bank: str, ids: Sequence[str], *, timeout_s: float | None = None) -> int:
        """Delete memories by id; returns how many existed. Unknown ids are ignored.

        Retried on UNAVAILABLE (deleting twice leaves the same bank; the count of a
        retried call may then be lower).
        """
        request = memory_pb2.DeleteMemoriesRequest(
            bank=_checks.bank_name(bank), ids=_checks.strings(ids, field="ids")
        )
        response = self._call("DeleteMemories", request, timeout_s)
        return int(response.deleted)

    def list_page(
        self,
        bank: str,
        *,
        page_size: int = 100,
        page_token: str = "",
        include_vectors: bool = False,
        timeout_s: float | None = None,
    ) -> MemoryPage:
        """One page (1-1000 memories) in write order; pass ``next_page_token`` back for more."""
        request = memory_pb2.ListMemoriesRequest(
            bank=_checks.bank_name(bank),
            page_size=_checks.count(page_size, field="page_size", minimum=1, maximum=1000),
            page_token=page_token,
            include_vectors=_checks.flag(include_vectors, field="include_vectors"),
        )
        response = self._call("ListMemories", request, timeout_s)
        return _convert.memory_page(response)

    def list(
        self,
        bank: str,
        *,
        page_size: int = 100,
        include_vectors: bool = False,
        timeout_s: float | None = None,
    ) -> Iterator[Memory]:
        """Every memory of the bank in write order, fetched page by page as it advances.

        Arguments are checked now; pages are requested as the iterator advances,
        ``timeout_s`` applying to each page request.
        """
        _checks.bank_name(bank)
        _checks.count(page_size, field="page_size", minimum=1, maximum=1000)
        return self._pages(bank, page_size, include_vectors, timeout_s)

    def _pages(
        self, bank: str, page_size: int, include_vectors: bool, timeout_s: float | None
    ) -> Iterator[Memory]:
        token = ""
        while True:
            page = self.list_page(
                bank,
                page_size=page_size,
                page_token=token,
                include_vectors=include_vectors,
                timeout_s=timeout_s,
            )
            yield from page.memories
            token = page.next_page_token
            if not token:
                return

    def count(self, bank: str, *, timeout_s: float | None = None) -> int:
        """Number of live memories in the bank."""
        request = memory_pb2.CountMemoriesRequest(bank=_checks.bank_name(bank))
        response = self._call("CountMemories", request, timeout_s)
        return int(response.count)

    def query(
        self,
        bank: str,
        question: str | None = None,
        *,
        questions: Sequence[str] | None = None,
        query_vectors: Any = None,
        params: SearchParams | None = None,
        timeout_s: float | None = None,
        **knobs: Unpack[QueryKnobs],
    ) -> QueryResponse:
        """Answer questions by attending over the bank; one QueryResult per question.

        Give exactly one of ``question`` (one text), ``questions`` (B texts) or
        ``query_vectors`` (B, Dk) for vector banks. How to search and what to return
        is ``params`` (a ``SearchParams``), or its fields as keywords, which override
        ``params``: ``k`` memories per hop (0 = server default, 32), ``hops`` (0 = the
        model's), ``attention`` ("sparse", "soft" or "hard"), ``metadata_filter``,
        ``ef_search`` / ``nprobe`` (index search parameters for this call),
        ``tail_samples`` (estimate the softmax mass outside the top k: the listed
        weights then sum to 1 - ``Hop.tail_weight``), ``include_vectors`` (each
        attended memory's key (Dk,) and value (Dv,)) and ``top_answers``
        (alternatives returned). Retried on UNAVAILABLE, on another replica first.
        """
        request = _requests.query_request(
            bank,
            question=question,
            questions=questions,
            query_vectors=query_vectors,
            params=search_params(params, knobs),
        )
        response = self._call("Query", request, timeout_s)
        return _convert.query_response(response)

    def query_arrays(
        self,
        bank: str,
        question: str | None = None,
        *,
        questions: Sequence[str] | None = None,
        query_vectors: Any = None,
        params: SearchParams | None = None,
        timeout_s: float | None = None,
        **knobs: Unpack[SearchKnobs],
    ) -> QueryArrays:
        """``query`` for throughput: the same attention as (B, H, K) id, score and weight
        arrays plus (B, D) readouts and the B best answers, without text or metadata
        (``get`` fetches those by id). Takes ``query``'s arguments; of ``params``,
        ``top_answers`` does not apply and ``include_vectors`` must be False.
        """
        request = _requests.query_request(
            bank,
            question=question,
            questions=questions,
            query_vectors=query_vectors,
            params=search_params(params, knobs, arrays=True),
            arrays=True,
        )
        response = self._call("Query", request, timeout_s)
        return _convert.query_arrays(response)

    def reindex_bank(
        self,
        bank: str,
        model: str,
        *,
        version: int | None = None,
        timeout_s: float | None = None,
    ) -> Bank:
        """Start re-encoding every memory of a text bank with ``model`` (``NAME`` = its
        latest version, ``NAME@VERSION``, or ``NAME`` with ``version``) in the background.

        Returns at once with ``Bank.reindex`` (state "reindexing"); poll ``get_bank``
        until its state is "done" or "failed". The bank answers on its old version until
        the switch. Needs the admin right when API keys are on. Not retried.
        """
        request = bank_pb2.ReindexBankRequest(
            bank=_checks.bank_name(bank),
            model=_checks.nonempty_string(model, field="model"),
            version=_checks.count(version or 0, field="version"),
        )
        response = self._call("ReindexBank", request, timeout_s)
        return _convert.bank(response.bank)

    def cancel_reindex(self, bank: str, *, timeout_s: float | None = None) -> Bank:
        """Stop the bank's running reindex; it stays on its current model version."""
        request = bank_pb2.CancelReindexRequest(bank=_checks.bank_name(bank))
        response = self._call("CancelReindex", request, timeout_s)
        return _convert.bank(response.bank)

    def load_models(
        self, name: str | None = None, *, timeout_s: float | None = None
    ) -> builtins.list[ModelVersion]:
        """Make the server scan its models directory now (for model ``name``, or all) and
        load new or replaced checkpoints; returns the versions loaded or failed. Admin."""
        request = model_pb2.LoadModelRequest(name=name or "")
        response = self._call("LoadModel", request, timeout_s)
        return [_convert.model_version(v) for v in response.changed]

    def unload_model(self, name: str, version: int, *, timeout_s: float | None = None) -> None:
        """Forget ``name@version``; FailedPrecondition naming the banks that still use it.
        Admin."""
        request = model_pb2.UnloadModelRequest(
            name=_checks.nonempty_string(name, field="name"),
            version=_checks.count(version, field="version", minimum=1),
        )
        self._call("UnloadModel", request, timeout_s)

    def list_models(self, *, timeout_s: float | None = None) -> builtins.list[ModelInfo]:
        """The models the server can attach to banks (``is_default`` marks the default)."""
        response = self._call("ListModels", model_pb2.ListModelsRequest(), timeout_s)
        return [_convert.model_info(m) for m in response.models]

    def get_model(self, name: str, *, timeout_s: float | None = None) -> ModelInfo:
        """Describe one model: ``NAME`` (its latest ready version) or ``NAME@VERSION``;
        NotFound if the server has no such model. ``versions`` lists every version."""
        if not isinstance(name, str) or not name:
            raise ValidationError("name must be a non-empty string", field="name")
        response = self._call("GetModel", model_pb2.GetModelRequest(name=name), timeout_s)
        return _convert.model_info(response.model)
