"""The store: a directory of banks, each in ``banks/<name>/`` with its lock, log and snapshots."""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

from memnet.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
)
from memnet.store import index as ix
from memnet.store.bank import CONFIG_FILE, Bank
from memnet.store.diskfull import disk_full_as_resource_exhausted, is_disk_full
from memnet.store.interface import StoreStatus
from memnet.store.locks import DirLock
from memnet.store.types import BankConfig, FsyncPolicy, RecoveryReport, StoreSettings
from memnet.store.validation import shown
from memnet.store.wal import fsync_dir

LOG = logging.getLogger(__name__)

BANKS_DIR = "banks"


@dataclass(frozen=True)
class FailedBank:
    """A bank directory that could not be opened: kept on disk, refused with ``reason``."""

    directory: Path
    reason: str


class MemoryStore:
    """Opens (or creates) ``data_dir`` and every bank in it, replaying their logs."""

    def __init__(self, data_dir: Path, settings: StoreSettings | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.settings = settings if settings is not None else StoreSettings()
        (self.data_dir / BANKS_DIR).mkdir(parents=True, exist_ok=True)
        self._lock = DirLock(self.data_dir, what="store")
        self._mutex = threading.Lock()  # guards the bank table, not bank contents
        self._banks: dict[str, Bank] = {}
        self._failed: dict[str, FailedBank] = {}  # quarantined: could not be opened
        self._closed = False
        try:
            root = self.data_dir / BANKS_DIR
            for leftover in root.glob(".*"):  # half-created or half-dropped banks
                shutil.rmtree(leftover, ignore_errors=True)
            for d in sorted(p for p in root.iterdir() if p.is_dir()):
                self._open_bank(d)
        except BaseException:
            for bank in self._banks.values():
                bank.close(snapshot_if_needed=False)
            self._lock.release()
            raise
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        if self.settings.fsync is FsyncPolicy.INTERVAL:
            self._flusher = threading.Thread(
                target=self._flush_loop, name="memnet-wal-flush", daemon=True
            )
            self._flusher.start()

    def _open_bank(self, directory: Path) -> None:
        """Open one bank; one that cannot be opened is logged and quarantined, files untouched."""
        try:
            config = BankConfig.model_validate_json((directory / CONFIG_FILE).read_text())
            self._banks[config.name] = Bank(directory, config, self.settings)
        except Exception as err:
            reason = f"{type(err).__name__}: {err}"
            LOG.error(
                "bank %s cannot be opened and is quarantined (its files are kept; "
                "drop it to remove them): %s",
                directory.name,
                reason,
            )
            self._failed[directory.name] = FailedBank(directory, reason)

    def _flush_loop(self) -> None:
        interval_s = self.settings.fsync_interval_ms / 1000.0
        while not self._stop.wait(interval_s):
            for bank in self.banks():
                try:
                    bank.flush()
                except OSError:
                    LOG.exception("fsync of bank %s failed", bank.name)

    def _check_open(self) -> None:
        if self._closed:
            raise FailedPrecondition("the memory store is closed", field="store")

    def create_bank(self, config: BankConfig) -> Bank:
        """Create an empty bank; AlreadyExists if the name is taken."""
        if not isinstance(config, BankConfig):
            raise InvalidArgument("config must be a BankConfig", field="config")
        if config.index.kind.value == "ivf_pq" and config.key_dim % config.index.pq_m:
            raise InvalidArgument(
                f"index.pq_m={config.index.pq_m} must divide key_dim={config.key_dim}",
                field="index.pq_m",
            )
        plan = ix.check(config)  # refuses an index memnet cannot drive, before anything exists
        with self._mutex:
            self._check_open()
            if config.name in self._banks:
                raise AlreadyExists(f"bank {config.name!r} already exists", field="name")
            failed = self._failed.get(config.name)
            if failed is not None:
                raise AlreadyExists(
                    f"bank {config.name!r} already exists but could not be opened "
                    f"({failed.reason}); drop it first to replace it",
                    field="name",
                )
            root = self.data_dir / BANKS_DIR
            final = root / config.name
            tmp = root / f".creating-{config.name}-{uuid.uuid4().hex}"
            try:
                with disk_full_as_resource_exhausted(f"cannot create bank {config.name!r}"):
                    tmp.mkdir()
                    with open(tmp / CONFIG_FILE, "w") as f:
                        f.write(config.model_dump_json(indent=2))
                        f.flush()
                        os.fsync(f.fileno())
                    fsync_dir(tmp)
                    os.rename(tmp, final)
                    fsync_dir(root)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            try:
                bank = Bank(final, config, self.settings)
            except ResourceExhausted:
                shutil.rmtree(final, ignore_errors=True)
                raise
            except Exception as err:
                shutil.rmtree(final, ignore_errors=True)
                if is_disk_full(err):
                    raise ResourceExhausted(
                        f"cannot create bank {config.name!r}: the disk is full ({err})",
                        field="disk",
                    ) from err
                raise InvalidArgument(
                    f"cannot build bank {config.name!r}: {err}", field="index"
                ) from err
            self._banks[config.name] = bank
            LOG.info(
                "created bank %s (%s, %s): %s, trains at %d memories, ~%.0f MiB fixed",
                config.name,
                config.index.kind.value,
                config.metric.value,
                plan.structure,
                ix.train_threshold(config.index, key_dim=config.key_dim),
                plan.fixed_bytes / (1 << 20),
            )
            return bank

    def bank(self, name: str) -> Bank:
        with self._mutex:
            self._check_open()
            try:
                return self._banks[name]
            except KeyError:
                pass
            failed = self._failed.get(name)
            if failed is not None:
                raise FailedPrecondition(
                    f"bank {name!r} could not be opened: {failed.reason}", field="bank"
                )
            raise NotFound(f"bank {shown(name)} not found", field="bank")

    def banks(self) -> list[Bank]:
        with self._mutex:
            return [self._banks[n] for n in sorted(self._banks)]

    def drop_bank(self, name: str) -> None:
        """Delete a bank and its directory (also a quarantined one); NotFound if there is none."""
        with self._mutex:
            self._check_open()
            bank = self._banks.pop(name, None)
            if bank is not None:
                bank.close(snapshot_if_needed=False, dropped=True)
                directory = bank.directory
            elif name in self._failed:
                directory = self._failed.pop(name).directory
            else:
                raise NotFound(f"bank {shown(name)} not found", field="bank")
            root = self.data_dir / BANKS_DIR
            doomed = root / f".dropping-{name}-{uuid.uuid4().hex}"
            os.rename(directory, doomed)
            fsync_dir(root)
            shutil.rmtree(doomed, ignore_errors=True)
            LOG.info("dropped bank %s", name)

    def status(self) -> StoreStatus:
        """Serving once open; quarantined banks are listed with their reasons."""
        with self._mutex:
            failed = {name: bank.reason for name, bank in self._failed.items()}
        return StoreStatus(
            serving=not self._closed, detail="closed" if self._closed else "", failed=failed
        )

    def recovery_reports(self) -> dict[str, RecoveryReport]:
        """What opening each bank found; quarantined banks have ``failed`` and ``error``."""
        with self._mutex:
            reports = {name: b.recovery for name, b in self._banks.items()}
            for name, failed in self._failed.items():
                reports[name] = RecoveryReport(
                    0, 0, failed.reason, index_rebuilt=False, failed=True, error=failed.reason
                )
            return reports

    def close(self) -> None:
        """Flush and snapshot every bank, release all locks. Idempotent."""
        with self._mutex:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        if self._flusher is not None:
            self._flusher.join()
        try:
            for bank in self.banks():
                try:
                    bank.close()
                except Exception:
                    LOG.exception("closing bank %s failed; closing the others", bank.name)
        finally:
            self._lock.release()

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MemoryStore({str(self.data_dir)!r}, banks={json.dumps(sorted(self._banks))})"
