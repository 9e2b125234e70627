"""Disk full: the server's data directory on a 4 MiB tmpfs made for the test.

Writes on a full disk must fail with a clear status and store nothing; what was
acknowledged before must survive, also across a restart on the still-full disk;
once space is freed, writes succeed again. Needs root (``mount -t tmpfs``); skipped
with the reason otherwise.
"""

from __future__ import annotations

import errno
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from reliability_support import (
    Stubs,
    fetch_keys,
    in_process_server,
    keys_for,
    record_figures,
    serve_process,
    start_in_process,
    vector_bank_request,
    write_request,
)

from memnet.api.tensors import to_tensor
from memnet.api.v1 import bank_pb2, memory_pb2, query_pb2

FS_SIZE = "4m"
FS_BYTES = 4 * 1024 * 1024
DIM = 64
BANK = "full"
BATCH = 50
FILLER_BYTES = 3 * 1024 * 1024
MAX_BATCHES = 200
REFUSED_WRITES = 3
STOP_WAIT_S = 5.0


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A fresh 4 MiB tmpfs, unmounted at teardown (lazily if something still holds it)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount_point = tmp_path / "small-fs"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={FS_SIZE}", "tmpfs", str(mount_point)],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        unmounted = subprocess.run(["umount", str(mount_point)], check=False, capture_output=True)
        if unmounted.returncode:
            subprocess.run(["umount", "-l", str(mount_point)], check=True, capture_output=True)


def _fill(mount_point: Path) -> Path:
    """Take every free byte of the filesystem with a filler file; returns its path."""
    filler = mount_point / "filler"
    chunk = b"\0" * (64 * 1024)
    with open(filler, "wb", buffering=0) as handle:
        for size in (len(chunk), 4096, 1):
            for _ in range(2 * FS_BYTES // size):  # bounded: the filesystem is this small
                try:
                    handle.write(chunk[:size])
                except OSError as error:
                    assert error.errno == errno.ENOSPC, error
                    break
            else:
                raise AssertionError(f"wrote {2 * FS_BYTES} bytes to a {FS_SIZE} filesystem")
    return filler


def _reserve(mount_point: Path, size: int) -> Path:
    """A filler file of ``size`` bytes, so that the server's own writes fill the rest."""
    filler = mount_point / "filler"
    with open(filler, "wb") as handle:
        handle.write(b"\0" * size)
    return filler


def _ids(batch: int) -> list[str]:
    return [f"b{batch}-{i}" for i in range(BATCH)]


def _count(stubs: Stubs) -> int:
    return stubs.memories.CountMemories(memory_pb2.CountMemoriesRequest(bank=BANK)).count


def _check_acknowledged(stubs: Stubs, acked: list[str]) -> None:
    found = fetch_keys(stubs, BANK, acked)
    assert len(found) == len(acked), f"{len(acked) - len(found)} acknowledged memories lost"
    expected = keys_for(acked, DIM)
    for row, memory_id in enumerate(acked):
        np.testing.assert_array_equal(found[memory_id], expected[row], err_msg=memory_id)


def _refused_writes(stubs: Stubs) -> list[tuple[grpc.StatusCode, str]]:
    """Writes on the full disk: every one must fail, storing nothing."""
    failures = []
    before = stubs.banks.GetBank(bank_pb2.GetBankRequest(name=BANK)).bank
    for attempt in range(REFUSED_WRITES):
        ids = [f"refused{attempt}-{i}" for i in range(BATCH)]
        with pytest.raises(grpc.RpcError) as caught:
            stubs.memories.WriteMemories(write_request(BANK, keys_for(ids, DIM), ids), timeout=30)
        failures.append((caught.value.code(), caught.value.details() or ""))
    after = stubs.banks.GetBank(bank_pb2.GetBankRequest(name=BANK)).bank
    assert (after.memory_count, after.last_seq) == (before.memory_count, before.last_seq)
    return failures


def test_full_disk_fails_writes_keeps_acknowledged_data_and_recovers(
    small_fs: Path, tmp_path: Path
) -> None:
    """A filler file takes most of the 4 MiB; the server's writes fill the rest until one
    fails. Then: refused writes, reads, a SIGKILL + restart on the full disk, and once
    the filler is deleted, writes succeed again."""
    began = time.monotonic()
    acked: list[str] = []
    with serve_process(small_fs / "data", tmp_path / "server.log") as server:
        server.start()
        filler = _reserve(small_fs, FILLER_BYTES)
        with grpc.insecure_channel(server.target) as channel:
            stubs = Stubs(channel)
            stubs.banks.CreateBank(vector_bank_request(BANK, DIM))
            first_failure: tuple[grpc.StatusCode, str] | None = None
            for batch in range(MAX_BATCHES):
                ids = _ids(batch)
                try:
                    stubs.memories.WriteMemories(
                        write_request(BANK, keys_for(ids, DIM), ids), timeout=30
                    )
                except grpc.RpcError as error:
                    first_failure = (error.code(), error.details() or "")
                    break
                acked += ids
            assert first_failure is not None, f"{MAX_BATCHES} batches fit on the small disk"
            assert acked, "not one write fitted before the disk was full"
            failures = [first_failure, *_refused_writes(stubs)]
            codes = {code for code, _ in failures}
            assert grpc.StatusCode.UNAVAILABLE not in codes, "the server died on a full disk"
            assert _count(stubs) == len(acked)
            _check_acknowledged(stubs, acked)
            vectors = to_tensor(keys_for(acked[:2], DIM))
            query = query_pb2.QueryRequest(bank=BANK, query_vectors=vectors)
            assert len(stubs.queries.Query(query).results) == 2  # reads still work
        server.kill()
        server.start()  # recovery on the still-full disk
        with grpc.insecure_channel(server.target) as channel:
            stubs = Stubs(channel)
            assert _count(stubs) == len(acked)
            _check_acknowledged(stubs, acked)
            failures += _refused_writes(stubs)
            filler.unlink()
            ids = _ids(MAX_BATCHES)
            stubs.memories.WriteMemories(write_request(BANK, keys_for(ids, DIM), ids))
            acked += ids
            _check_acknowledged(stubs, acked)
            assert _count(stubs) == len(acked)
        assert server.terminate() == 0
    record_figures(
        "disk-full",
        filesystem=f"tmpfs size={FS_SIZE}, filler {FILLER_BYTES} bytes",
        acknowledged_before_full=len(acked) - BATCH,
        refused_writes=len(failures),
        refused_with=sorted({code.name for code, _ in failures}),
        acknowledged_lost=0,
        duration_s=round(time.monotonic() - began, 1),
    )


def test_full_disk_is_resource_exhausted_naming_the_disk(small_fs: Path) -> None:
    with (
        in_process_server(small_fs / "data") as (_, port),
        grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        stubs = Stubs(channel)
        stubs.banks.CreateBank(vector_bank_request(BANK, DIM))
        filler = _fill(small_fs)
        try:
            failures = _refused_writes(stubs)
        finally:
            filler.unlink()  # so that the server's own shutdown snapshot fits
    assert {code for code, _ in failures} == {grpc.StatusCode.RESOURCE_EXHAUSTED}, failures
    assert all("disk" in details or "space" in details for _, details in failures), failures


def test_graceful_stop_on_a_full_disk_completes_and_releases_the_store(
    small_fs: Path,
) -> None:
    data_dir = small_fs / "data"
    service, port = start_in_process(data_dir)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stubs = Stubs(channel)
            stubs.banks.CreateBank(vector_bank_request(BANK, DIM))
            stubs.memories.WriteMemories(write_request(BANK, keys_for(_ids(0), DIM), _ids(0)))
        _fill(small_fs)
    finally:
        stopped = service.stop(0).wait(STOP_WAIT_S)
    assert stopped, "the stop did not complete"
    assert not list((data_dir / "banks" / BANK).glob("tmp-*"))
    (small_fs / "filler").unlink()
    with (
        in_process_server(data_dir) as (_, port),
        grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        assert _count(Stubs(channel)) == BATCH
