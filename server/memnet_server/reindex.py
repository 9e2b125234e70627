"""Background reindexes: re-encode a text bank with another model version, then switch.

One job per bank runs in its own thread: it copies the bank's live memories (the
store's ``start_reindex``), encodes their texts with the target model chunk by chunk
into a second state, re-encodes the writes that arrive meanwhile (queued by the
bank), and asks the bank to switch (``finish_reindex``: the last queued writes, a
durable snapshot of the new state, the swap). Until the switch every query and write
uses the old version; after it, the new one. A job can be cancelled; a failure
(including a full disk at the snapshot) leaves the bank on its old version.

After a restart, a reindex that was cut off (its intent file is still there) starts
again from the beginning if its target version is loaded with the same checkpoint;
otherwise it is abandoned and reported as failed.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

from memnet.errors import FailedPrecondition, MemnetError
from memnet.serving.contract import InputKind, ServedModel
from memnet.serving.repository import ModelRef, ModelVersion
from memnet.store.interface import MemoryBank
from memnet.store.records import Record, WriteRecord
from memnet.store.reindex import ReindexSession
from memnet.store.types import BankConfig
from memnet_server.binding import ModelCatalog

LOG = logging.getLogger(__name__)

ENCODE_CHUNK = 512  # memories encoded per model call
CATCH_UP_ROUNDS = 100  # rounds of queued writes applied outside the bank's write mutex


@runtime_checkable
class ReindexableBank(Protocol):
    """A bank that can be rebuilt into another key space (the embedded FAISS store)."""

    @property
    def config(self) -> BankConfig: ...

    def start_reindex(self, target: BankConfig) -> ReindexSession: ...

    def finish_reindex(
        self, session: ReindexSession, reencode: Callable[[list[Record]], list[Record]]
    ) -> None: ...

    def cancel_reindex(self, session: ReindexSession | None = None) -> bool: ...


class JobState(StrEnum):
    IDLE = "idle"
    REINDEXING = "reindexing"
    FAILED = "failed"
    DONE = "done"


@dataclass(frozen=True)
class ReindexStatus:
    state: JobState
    from_model: str = ""  # NAME@VERSION the bank serves from (during) / served from (after)
    to_model: str = ""
    done: int = 0  # memories encoded so far
    total: int = 0
    rate_per_s: float = 0.0
    error: str = ""
    started_at_s: float = 0.0


IDLE = ReindexStatus(JobState.IDLE)


class _Job:
    def __init__(
        self,
        bank: ReindexableBank,
        model: ServedModel,
        target: BankConfig,
        session: ReindexSession,
    ) -> None:
        self.bank = bank
        self.model = model
        self.target = target
        self.source = bank.config
        self.session: ReindexSession | None = session
        self.cancel_requested = threading.Event()
        self.keep_intent = False  # a server stop: leave the intent so a restart resumes
        self.state = JobState.REINDEXING
        self.error = ""
        self.started_at_s = time.time()
        self.finished_at_s = 0.0
        self.thread = threading.Thread(target=self.run, name=f"reindex-{target.name}", daemon=True)

    def status(self) -> ReindexStatus:
        session = self.session
        done = session.done if session is not None else 0
        total = session.total if session is not None else 0
        end = self.finished_at_s or time.time()
        return ReindexStatus(
            state=self.state,
            from_model=_ref(self.source),
            to_model=_ref(self.target),
            done=done,
            total=total,
            rate_per_s=done / max(end - self.started_at_s, 1e-9),
            error=self.error,
            started_at_s=self.started_at_s,
        )

    def run(self) -> None:
        session = self.session
        assert session is not None
        try:
            for chunk in session.rows.chunks(ENCODE_CHUNK):
                self._check_cancelled()
                encoded = self.model.encode_memories(_texts(chunk.ids, chunk.texts))
                session.add(chunk, encoded.keys, encoded.values)
            self._check_cancelled()
            session.index_copy()
            for _ in range(CATCH_UP_ROUNDS):  # most writes of the rebuild, without the mutex
                queued = session.take_queued()
                if not queued:
                    break
                self._check_cancelled()
                for record in self.reencode(queued):
                    session.apply(record)
            self._check_cancelled()
            self.bank.finish_reindex(session, self.reencode)
            self.state = JobState.DONE
            LOG.info(
                "reindexed bank %s: %s -> %s",
                self.target.name,
                _ref(self.source),
                _ref(self.target),
            )
        except Exception as error:
            self.state = JobState.FAILED
            self.error = (
                str(error) if isinstance(error, MemnetError) else f"{type(error).__name__}: {error}"
            )
            if self.session is not None and not self.keep_intent:
                self.bank.cancel_reindex(self.session)
            level = logging.INFO if self.cancel_requested.is_set() else logging.ERROR
            LOG.log(level, "reindex of bank %s ended: %s", self.target.name, self.error)
        finally:
            self.finished_at_s = time.time()

    def _check_cancelled(self) -> None:
        if self.cancel_requested.is_set() or (
            self.session is not None and self.session.cancelled.is_set()
        ):
            raise FailedPrecondition("the reindex was cancelled", field="bank")

    def reencode(self, records: list[Record]) -> list[Record]:
        """Queued records in the target's key space: the texts of all their writes are
        encoded again in one model call."""
        writes = [r for r in records if isinstance(r, WriteRecord)]
        if not writes:
            return records
        texts = [
            text
            for w in writes
            for text in _texts(w.ids, w.texts if w.texts is not None else [None] * len(w.ids))
        ]
        encoded = self.model.encode_memories(texts)
        if self.session is not None:
            self.session.done += len(texts)
        out: list[Record] = []
        start = 0
        for record in records:
            if isinstance(record, WriteRecord):
                stop = start + len(record.ids)
                keys, values = encoded.keys[start:stop], encoded.values[start:stop]
                out.append(dataclasses.replace(record, keys=keys, values=values))
                start = stop
            else:
                out.append(record)
        return out


class Reindexer:
    """The reindex jobs of one server: at most one per bank."""

    def __init__(self, catalog: ModelCatalog) -> None:
        self._catalog = catalog
        self._jobs: dict[str, _Job] = {}
        self._not_resumed: dict[str, ReindexStatus] = {}  # cut off by a restart, not resumed
        self._lock = threading.Lock()

    def start(self, bank: MemoryBank, target: ModelVersion) -> ReindexStatus:
        """Start re-encoding ``bank`` into ``target``; FAILED_PRECONDITION when the bank or
        the model cannot be reindexed, or a reindex of the bank is running."""
        if not isinstance(bank, ReindexableBank):
            raise FailedPrecondition(
                f"bank {bank.name!r}: this store cannot re-encode banks", field="bank"
            )
        model = target.served()
        config = bank.config
        if model.info.input_kind is not InputKind.TEXT:
            raise FailedPrecondition(
                f"model {target.ref} takes vectors, not text: a bank can be re-encoded only "
                "with a text model",
                field="model",
            )
        target_config = config.model_copy(
            update={
                "model": target.name,
                "model_version": target.version,
                "model_fingerprint": target.fingerprint,
                "key_dim": model.info.key_dim,
                "value_dim": model.info.value_dim,
                "metric": model.info.metric,
            }
        )
        with self._lock:
            running = self._jobs.get(bank.name)
            if running is not None and running.state is JobState.REINDEXING:
                raise FailedPrecondition(
                    f"bank {bank.name!r} is already being reindexed into {_ref(running.target)}",
                    field="bank",
                )
            # The intent is durable before the call returns: a restart resumes this job.
            session = bank.start_reindex(target_config)
            job = _Job(bank, model, target_config, session)
            self._jobs[bank.name] = job
            self._not_resumed.pop(bank.name, None)
        job.thread.start()
        return job.status()

    def cancel(self, bank_name: str) -> ReindexStatus:
        with self._lock:
            job = self._jobs.get(bank_name)
        if job is None or job.state is not JobState.REINDEXING:
            raise FailedPrecondition(f"bank {bank_name!r} is not being reindexed", field="bank")
        job.cancel_requested.set()
        if job.session is not None:
            job.bank.cancel_reindex(job.session)
        job.thread.join(timeout=30)
        return job.status()

    def status(self, bank_name: str) -> ReindexStatus:
        with self._lock:
            job = self._jobs.get(bank_name)
            if job is None:
                return self._not_resumed.get(bank_name, IDLE)
        return job.status()

    def resume_interrupted(self, banks: list[MemoryBank]) -> None:
        """Start again every reindex a restart cut off whose target is still loaded."""
        for bank in banks:
            target = getattr(bank, "interrupted_reindex", None)
            if not isinstance(target, BankConfig) or not isinstance(bank, ReindexableBank):
                continue
            ref = ModelRef(target.model or "", target.model_version)
            try:
                version = self._catalog.get(ref)
                if version.fingerprint != target.model_fingerprint:
                    raise FailedPrecondition(f"{ref} now holds another checkpoint", field="model")
            except MemnetError as error:
                reason = f"interrupted by a restart and not resumed: {error}"
                bank.forget_interrupted_reindex()  # type: ignore[attr-defined]
                with self._lock:
                    self._not_resumed[bank.name] = ReindexStatus(
                        JobState.FAILED,
                        from_model=_ref(bank.config),
                        to_model=str(ref),
                        error=reason,
                        started_at_s=time.time(),
                    )
                LOG.warning("bank %s: %s", bank.name, reason)
                continue
            LOG.info("bank %s: resuming the reindex into %s from the start", bank.name, ref)
            self.start(bank, version)

    def stop(self) -> None:
        """Cancel every running job (their intent files stay: a restart resumes them)."""
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            if job.state is JobState.REINDEXING:
                job.keep_intent = True
                job.cancel_requested.set()
        for job in jobs:
            if job.state is JobState.REINDEXING and job.thread.is_alive():
                job.thread.join(timeout=10)


def _texts(ids: list[str], texts: list[str | None]) -> list[str]:
    """The memories' texts; FailedPrecondition naming a memory that has none."""
    for memory_id, text in zip(ids, texts, strict=True):
        if not text:
            raise FailedPrecondition(f"memory {memory_id!r} has no text to re-encode", field="bank")
    return [t or "" for t in texts]


def _ref(config: BankConfig) -> str:
    return str(ModelRef(config.model or "", config.model_version))
