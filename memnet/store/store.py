"""The store: a directory of banks, each in ``banks/<name>/`` with its lock, log and snapshots."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from memnet.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
)
from memnet.store import fs
from memnet.store import index as ix
from memnet.store.bank import CONFIG_FILE, Bank
from memnet.store.diskfull import disk_full_as_resource_exhausted, is_disk_full
from memnet.store.interface import StoreStatus
from memnet.store.locks import DirLock
from memnet.store.types import BankConfig, FsyncPolicy, RecoveryReport, StoreSettings
from memnet.store.validation import shown

LOG = logging.getLogger(__name__)

BANKS_DIR = "banks"


@dataclass(frozen=True)
class FailedBank:
    """A bank directory that could not be opened: kept on disk, refused with ``reason``."""

    directory: Path
    reason: str


class MemoryStore:
    """Opens (or creates) ``data_dir`` and every bank in it, replaying their logs.

    Banks are opened by a pool of ``settings.open_threads`` threads. By default the
    constructor returns once every bank is open (or quarantined); with
    ``open_in_background=True`` it returns at once and banks become available as they
    open: until then ``status().opening`` lists them and ``bank(name)`` raises
    FailedPrecondition saying the bank is opening (``wait_until_open`` waits for all).
    """

    in_process = True  # banks live in this process

    def __init__(
        self,
        data_dir: Path,
        settings: StoreSettings | None = None,
        *,
        open_in_background: bool = False,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.settings = settings if settings is not None else StoreSettings()
        (self.data_dir / BANKS_DIR).mkdir(parents=True, exist_ok=True)
        self._lock = DirLock(self.data_dir, what="store")
        self._mutex = threading.Lock()  # guards the bank tables, not bank contents
        self._banks: dict[str, Bank] = {}
        self._failed: dict[str, FailedBank] = {}  # quarantined: could not be opened
        self._opening: dict[str, float] = {}  # banks being opened: name -> start (monotonic)
        self._all_opened = threading.Event()
        self._closed = False
        self._stop = threading.Event()
        self._pool: ThreadPoolExecutor | None = None
        try:
            root = self.data_dir / BANKS_DIR
            for leftover in root.glob(".*"):  # half-created or half-dropped banks
                fs.get().rmtree(leftover)
            directories = sorted(p for p in root.iterdir() if p.is_dir())
            self._opening = {d.name: time.monotonic() for d in directories}
            if not directories:
                self._all_opened.set()
            if open_in_background or len(directories) > 1:
                self._pool = ThreadPoolExecutor(
                    max_workers=max(1, self.settings.open_threads),
                    thread_name_prefix="memnet-open",
                )
                for d in directories:
                    self._pool.submit(self._open_bank, d)
                self._pool.shutdown(wait=not open_in_background)
            else:  # nothing to overlap: no threads
                for d in directories:
                    self._open_bank(d)
        except BaseException:
            self.close()
            raise
        self._timer = threading.Thread(
            target=self._timer_loop, name="memnet-store-timer", daemon=True
        )
        self._timer.start()

    def _open_bank(self, directory: Path) -> None:
        """Open one bank; one that cannot be opened is logged and quarantined, files untouched."""
        name = directory.name
        bank: Bank | None = None
        failed: FailedBank | None = None
        try:
            config = BankConfig.model_validate_json((directory / CONFIG_FILE).read_text())
            bank = Bank(directory, config, self.settings)
        except Exception as err:
            reason = f"{type(err).__name__}: {err}"
            LOG.error(
                "bank %s cannot be opened and is quarantined (its files are kept; "
                "repair it with `memnet repair`, or drop it to remove them): %s",
                name,
                reason,
            )
            failed = FailedBank(directory, reason)
        with self._mutex:
            self._opening.pop(name, None)
            closed = self._closed
            if bank is not None and not closed:
                self._banks[bank.name] = bank
            elif failed is not None:
                self._failed[name] = failed
            if not self._opening:
                self._all_opened.set()
        if bank is not None and closed:
            bank.close()

    def wait_until_open(self, timeout_s: float | None = None) -> bool:
        """Wait until every bank has opened or been quarantined; False on timeout."""
        return self._all_opened.wait(timeout_s)

    def _timer_loop(self) -> None:
        """Every ``fsync_interval_ms`` (INTERVAL policy) fsync the banks' logs; every quarter
        of ``snapshot_after_log_age_s`` (at most every minute) snapshot banks whose log
        has held records that long."""
        s = self.settings
        age_period_s = min(60.0, max(0.05, s.snapshot_after_log_age_s / 4))
        flushing = s.fsync is FsyncPolicy.INTERVAL
        period_s = min(age_period_s, s.fsync_interval_ms / 1000.0) if flushing else age_period_s
        next_age_check = time.monotonic() + age_period_s
        while not self._stop.wait(period_s):
            for bank in self.banks() if flushing else []:
                try:
                    bank.flush()
                except OSError:
                    LOG.exception("fsync of bank %s failed", bank.name)
            if time.monotonic() >= next_age_check:
                next_age_check = time.monotonic() + age_period_s
                for bank in self.banks():
                    try:
                        bank.snapshot_if_due()
                    except Exception:
                        LOG.exception("age snapshot of bank %s failed", bank.name)

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
            if config.name in self._banks or config.name in self._opening:
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
            layer = fs.get()
            try:
                with disk_full_as_resource_exhausted(f"cannot create bank {config.name!r}"):
                    layer.mkdir(tmp)
                    fs.write_file(tmp / CONFIG_FILE, [config.model_dump_json(indent=2).encode()])
                    layer.fsync_dir(tmp)
                    layer.rename(tmp, final)
                    layer.fsync_dir(root)
            except BaseException:
                layer.rmtree(tmp)
                raise
            try:
                bank = Bank(final, config, self.settings)
            except ResourceExhausted:
                layer.rmtree(final)
                raise
            except Exception as err:
                layer.rmtree(final)
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
            started = self._opening.get(name)
            if started is not None:
                raise FailedPrecondition(
                    f"bank {name!r} is opening (replaying its log for "
                    f"{time.monotonic() - started:.1f} s); try again shortly",
                    field="bank",
                )
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
            if name in self._opening:
                raise FailedPrecondition(
                    f"bank {name!r} is opening; drop it once it has opened", field="bank"
                )
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
            layer = fs.get()
            layer.rename(directory, doomed)
            layer.fsync_dir(root)
            layer.rmtree(doomed)
            LOG.info("dropped bank %s", name)

    def status(self) -> StoreStatus:
        """Serving while open (also while some banks are still opening, which are listed);
        quarantined banks are listed with their reasons."""
        with self._mutex:
            failed = {name: bank.reason for name, bank in self._failed.items()}
            opening = tuple(sorted(self._opening))
        return StoreStatus(
            serving=not self._closed,
            detail="closed" if self._closed else "",
            opening=opening,
            failed=failed,
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
        timer = getattr(self, "_timer", None)
        if timer is not None:
            timer.join()
        pool = self._pool
        if pool is not None:  # banks still queued are not opened; those opening finish
            pool.shutdown(wait=True, cancel_futures=True)
        with self._mutex:
            self._opening.clear()
            self._all_opened.set()
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
