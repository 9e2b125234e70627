"""Index specs are checked at creation: what memnet cannot drive, or what breaks a limit, is
refused naming the field; what is accepted trains on as many points as FAISS needs and
keeps every acknowledged memory readable across a restart."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from store_testlib import batch, clustered, make_bank_config, open_store

from memnet.errors import InvalidArgument
from memnet.store import IndexKind, IndexSpec, Metric, index_plan
from memnet.store import index as ix
from memnet.store.bank import CONFIG_FILE

D = 16


def _factory(text: str, **kw: object) -> IndexSpec:
    return IndexSpec(kind=IndexKind.FACTORY, factory=text, **kw)  # type: ignore[arg-type]


def _rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / (1 << 20)


REFUSED = {
    "IVF4,Flat,RFlat": "refine",
    "IVF4,Flat,Refine(SQ8)": "refine",
    "IDMap,Flat": "IDMap",
    "IDMap2,Flat": "IDMap2",
    "NSG16": "NSG",
    "IVF16_NSG16,Flat": "coarse quantizer",
    "IVF16,FlatDedup": "does not drive",
    "MinMax,Flat": "one write at a time",
    "IVF4,PQ4+8": "re-ranking",
    "garbage": "could not parse",
    "IVF10000000,Flat": "above 1048576",
    "IMI2x11,Flat": "2**22 lists",
    "HNSW200": "HNSW M=200",
    "IVF4,RQ2x2": "2 bits",
    "PCAW32,Flat": "more dimensions (32) than it takes (16)",
}


@pytest.mark.parametrize("text", list(REFUSED))
def test_a_factory_string_memnet_cannot_drive_is_refused_by_field(
    tmp_path: Path, text: str
) -> None:
    store = open_store(tmp_path)
    with pytest.raises(InvalidArgument) as caught:  # L2: FAISS builds IVFPQR for L2 only
        store.create_bank(make_bank_config(key_dim=D, metric=Metric.L2, index=_factory(text)))
    assert caught.value.field == "index.factory"
    assert f"index.factory {text!r}" in str(caught.value)
    assert REFUSED[text] in str(caught.value)
    assert store.banks() == [] and not any((tmp_path / "banks").iterdir()), "nothing created"
    store.close()


def test_a_huge_ivf_is_refused_before_faiss_allocates_it(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    before = _rss_mib()
    with pytest.raises(InvalidArgument, match="above 1048576"):
        store.create_bank(make_bank_config(index=_factory("IVF10000000,Flat")))
    assert _rss_mib() - before < 100, "10M inverted lists take 1.5 GiB if FAISS builds them"
    store.close()


@pytest.mark.parametrize(
    ("spec", "key_dim", "field", "reason"),
    [
        (_factory("PQ4x16"), 8192, "index.factory", "2,048 MiB of codebooks"),
        (_factory("IVF1048576,Flat"), 1024, "index.factory", "4,256 MiB"),
        (IndexSpec(kind=IndexKind.IVF, nlist=1 << 20), 1024, "index", "4,256 MiB"),
        (IndexSpec(kind=IndexKind.IVF_PQ, pq_m=8, pq_nbits=16), 8192, "index", "2,048 MiB"),
        (_factory("Pad9000,Flat"), 16, "index.factory", "above 8192"),
    ],
)
def test_every_spelling_of_an_index_obeys_the_same_memory_limits(
    tmp_path: Path, spec: IndexSpec, key_dim: int, field: str, reason: str
) -> None:
    store = open_store(tmp_path)
    with pytest.raises(InvalidArgument) as caught:
        store.create_bank(make_bank_config(key_dim=key_dim, index=spec))
    assert caught.value.field == field
    assert reason in str(caught.value) and "limit" in str(caught.value)
    store.close()


@pytest.mark.parametrize(
    ("text", "train_points"),
    [
        ("IVF4,PQ4", 39 * 256),  # PQ4: 4 sub-quantizers of 8 bits, 256 centroids each
        ("IVF4,PQ8", 39 * 256),
        ("IVF2,PQ16", 39 * 256),
        ("OPQ4,IVF4,PQ4", 39 * 256),
        ("IVF4,PQ4x4", 39 * 16),
        ("IVF64,PQ4x4", 39 * 64),
        ("IMI2x5,Flat", 39 * 32),
        ("HNSW16_PQ4x6", 39 * 64),
        ("SQ8", index_plan.STATISTICS_TRAIN_POINTS),
        ("PCA8,IVF4,Flat", index_plan.STATISTICS_TRAIN_POINTS),
        ("HNSW16", 0),
        ("Flat", 0),
    ],
)
def test_training_needs_follow_every_component_not_ivf_alone(
    tmp_path: Path, text: str, train_points: int
) -> None:
    store = open_store(tmp_path)
    config = make_bank_config(key_dim=D, metric=Metric.L2, index=_factory(text))
    bank = store.create_bank(config)
    assert ix.train_threshold(bank.config.index, key_dim=D) == train_points
    store.close()


@pytest.mark.parametrize("text", ["IVF4,PQ4", "IVF2,PQ16", "OPQ4,IVF4,PQ4"])
def test_writes_below_the_training_size_are_readable_after_a_restart(
    tmp_path: Path, text: str
) -> None:
    keys = clustered(np.random.default_rng(1), 400, D)
    ids = [f"m{i}" for i in range(400)]
    store = open_store(tmp_path)
    bank = store.create_bank(make_bank_config(key_dim=D, metric=Metric.L2, index=_factory(text)))
    for lo in range(0, 400, 100):  # each write acknowledged (with IVFn's 39*n it failed to train)
        bank.write(batch(keys[lo : lo + 100], ids=ids[lo : lo + 100]))
    store.close()
    store = open_store(tmp_path)
    assert not store.recovery_reports()["b"].failed
    reopened = store.bank("b")
    assert reopened.count() == 400
    found = reopened.search(keys[:20], 1).ids
    assert [row[0] for row in found] == ids[:20]
    store.close()


def test_train_size_below_what_faiss_needs_is_refused(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    with pytest.raises(InvalidArgument, match="below the 256 points") as caught:
        store.create_bank(make_bank_config(key_dim=D, index=_factory("IVF4,PQ4", train_size=200)))
    assert caught.value.field == "index.train_size"
    with pytest.raises(InvalidArgument, match="below the 64 points"):
        store.create_bank(
            make_bank_config(index=IndexSpec(kind=IndexKind.IVF, nlist=64, train_size=10))
        )
    store.close()


BOTH_METRICS = (Metric.L2, Metric.INNER_PRODUCT)
DRIVEN = [
    *((text, metric) for metric in BOTH_METRICS for text in (
        "HNSW16_PQ4x4", "HNSW16_SQ8", "IVF8,PQ4x4", "IVF8_HNSW8,SQ8", "IVF8,PQ4x4fs",
        "PCA8,IVF8,Flat", "PCAR8,HNSW16", "L2norm,IVF8,Flat",
    )),
    ("RQ2x4", Metric.L2),  # slower to train: one metric
    ("IMI2x3,PQ4x4", Metric.L2),  # FAISS builds these for L2 only
    ("LSHrt", Metric.L2),
]  # fmt: skip


@pytest.mark.parametrize(("text", "metric"), DRIVEN)
def test_an_accepted_factory_index_trains_deletes_searches_and_reopens(
    tmp_path: Path, text: str, metric: Metric
) -> None:
    rng = np.random.default_rng(5)
    keys = clustered(rng, 1200, D)
    ids = [f"m{i}" for i in range(1200)]
    store = open_store(tmp_path, compact_min_dead=100_000)
    bank = store.create_bank(make_bank_config(key_dim=D, metric=metric, index=_factory(text)))
    threshold = ix.train_threshold(bank.config.index, key_dim=D)
    assert 0 < threshold <= 1200
    for lo in range(0, 1200, 400):
        bank.write(batch(keys[lo : lo + 400], ids=ids[lo : lo + 400]))
    assert bank.state.trained
    assert bank.delete(ids[:50]) == 50
    bank.write(batch(keys[50:100] + 5.0, ids=ids[50:100], seed=1))  # upsert moves them
    before = bank.search(keys[100:120], 5).ids
    assert not {m for row in before for m in row} & set(ids[:50]), "deleted never returned"
    store.close()
    store = open_store(tmp_path)
    reopened = store.bank("b")
    assert reopened.count() == 1150
    assert reopened.search(keys[100:120], 5).ids == before
    store.close()


def test_a_bank_created_with_an_undrivable_string_is_quarantined_with_the_reason(
    tmp_path: Path,
) -> None:
    store = open_store(tmp_path)
    store.create_bank(make_bank_config(key_dim=D, index=_factory("Flat")))
    store.close()
    config_path = tmp_path / "banks" / "b" / CONFIG_FILE
    config_path.write_text(config_path.read_text().replace('"Flat"', '"IDMap,Flat"'))
    store = open_store(tmp_path)
    report = store.recovery_reports()["b"]
    assert report.failed and "memnet labels memories itself" in report.error
    store.close()


def test_a_factory_bank_snapshotted_untrained_reopens_in_a_fresh_process(tmp_path: Path) -> None:
    """The training size is planned from the spec and key_dim alone: a process that opens
    the bank from a snapshot (no index built) still knows it."""
    store = open_store(tmp_path)
    bank = store.create_bank(make_bank_config(key_dim=D, index=_factory("IVF2,PQ4x5")))
    bank.write(batch(clustered(np.random.default_rng(2), 300, D)))
    bank.snapshot()
    store.close()
    script = (
        "import sys; from pathlib import Path; import numpy as np\n"
        "from memnet.store import MemoryStore, MemoryBatch\n"
        "from memnet.store import index as ix\n"
        "store = MemoryStore(Path(sys.argv[1]))\n"
        "assert not store.recovery_reports()['b'].failed, store.recovery_reports()['b']\n"
        "bank = store.bank('b')\n"
        f"assert ix.train_threshold(bank.config.index, key_dim={D}) == 39 * 32\n"
        f"keys = np.random.default_rng(3).standard_normal((1000, {D})).astype(np.float32)\n"
        "bank.write(MemoryBatch(keys=keys, values=np.zeros((1000, 8), np.float32)))\n"
        "print(bank.count(), bank.search(keys[:1], 1).ids[0][0] != '')\n"
        "store.close()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1300", "True"]


def test_big_adds_run_on_every_core_and_leave_the_thread_setting_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import faiss

    before = faiss.omp_get_max_threads()
    monkeypatch.setattr(ix, "ADD_THREADS", before + 1)  # differs from this thread's setting
    calls: list[int] = []
    real_set = faiss.omp_set_num_threads

    def recording_set(n: int) -> None:
        calls.append(n)
        real_set(n)

    monkeypatch.setattr(faiss, "omp_set_num_threads", recording_set)
    spec = IndexSpec(kind=IndexKind.HNSW, hnsw_m=8, ef_construction=16, ef_search=64)
    index = ix.build(spec, Metric.INNER_PRODUCT, 16)
    keys = clustered(np.random.default_rng(4), ix.PARALLEL_ADD_MIN, 16)
    ix.add(index, np.arange(len(keys) - 1), keys[:-1])  # below the threshold
    small = list(calls)
    ix.add(index, np.arange(len(keys) - 1, 2 * len(keys) - 1), keys)  # at the threshold
    assert index.ntotal == 2 * len(keys) - 1
    assert faiss.omp_get_max_threads() == before
    assert small == [] and calls == [before + 1, before]
