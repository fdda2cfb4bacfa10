"""Vector stores: explicit ids, every kind round-trips through disk, the size policy, threads.

Recall is checked here only as a sanity floor on small random data; the measured
recall and latency at 100k and 1M passages come from ``scripts/bench.py``.
"""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from index.ann import FaissStore
from index.ann.faiss_store import omp_threads
from index.ann.policy import (
    APPROXIMATE_KINDS,
    DEFAULT_ANN_FROM,
    DEFAULT_IVF_FROM,
    auto_kind,
    choose_store,
    ivf_params,
)

DIM = 32


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    vectors = _unit(rng, 3000)
    ids = np.arange(3000, dtype=np.int64) * 10 + 5  # ids that are not positions
    queries = _unit(rng, 40)
    return vectors, ids, queries


KINDS = {
    "flat": lambda: FaissStore.flat(DIM),
    "hnsw": lambda: FaissStore.hnsw(DIM, m=16, ef_construction=64, ef_search=64),
    "hnsw-refine": lambda: FaissStore.hnsw_refine(DIM, m=16, ef_construction=64, ef_search=64),
    "ivf": lambda: FaissStore.ivf(DIM, nlist=16, nprobe=4),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_store_returns_our_ids_and_survives_save_load(kind: str, data, tmp_path: Path) -> None:
    vectors, ids, queries = data
    store = KINDS[kind]()
    assert store.kind == kind and store.size == 0
    store.add(ids, vectors)
    assert store.size == len(ids)
    scores, got = store.search(vectors[:1], 5)
    assert got[0][0] == ids[0] and scores[0][0] == pytest.approx(1.0, abs=1e-2)
    store.save(tmp_path)
    loaded = FaissStore.load(tmp_path)
    assert loaded.kind == kind and loaded.size == store.size
    assert loaded.ef_search == store.ef_search
    assert loaded.k_factor == store.k_factor
    assert loaded.nprobe == store.nprobe
    a = store.search(queries, 10)[1]
    b = loaded.search(queries, 10)[1]
    assert np.array_equal(a, b)


@pytest.mark.parametrize("kind", ["hnsw", "hnsw-refine", "ivf"])
def test_approximate_kinds_find_the_exact_neighbours(kind: str, data) -> None:
    vectors, ids, queries = data
    exact = FaissStore.flat(DIM)
    exact.add(ids, vectors)
    store = KINDS[kind]()
    store.add(ids, vectors)
    store.ef_search = 128
    store.nprobe = 12  # of 16 lists: random data has no clusters to exploit
    truth = exact.search(queries, 10)[1]
    got = store.search(queries, 10)[1]
    recall = np.mean([len(set(t) & set(g)) / 10 for t, g in zip(truth, got, strict=True)])
    assert recall >= 0.9


def test_refine_scores_are_exact(data) -> None:
    vectors, ids, queries = data
    store = FaissStore.hnsw_refine(DIM, m=16, ef_search=64, k_factor=4)
    store.add(ids, vectors)
    scores, got = store.search(queries[:5], 3)
    position = {int(i): p for p, i in enumerate(ids)}
    for q, row_s, row_i in zip(queries[:5], scores, got, strict=True):
        for s, i in zip(row_s, row_i, strict=True):
            assert s == pytest.approx(float(vectors[position[int(i)]] @ q), abs=1e-5)


def test_empty_store_and_k_larger_than_size() -> None:
    store = FaissStore.flat(DIM)
    _, ids = store.search(np.ones(DIM, dtype=np.float32), 10)
    assert ids.tolist() == [[-1]]
    rng = np.random.default_rng(1)
    store.add(np.array([3, 4], dtype=np.int64), _unit(rng, 2))
    _, ids = store.search(_unit(rng, 1), 10)
    assert sorted(ids[0].tolist()) == [3, 4]


def test_size_policy() -> None:
    assert auto_kind(10) == "flat"
    assert auto_kind(DEFAULT_ANN_FROM - 1) == "flat"
    assert auto_kind(DEFAULT_ANN_FROM) == "hnsw"
    assert auto_kind(DEFAULT_IVF_FROM - 1) == "hnsw"
    assert auto_kind(DEFAULT_IVF_FROM) == auto_kind(1_000_000) == "ivf"
    assert auto_kind(5000, ann_from=1000) == "hnsw"
    assert auto_kind(500_000, ann_from=600_000) == "flat"  # ann_from wins over ivf_from
    assert auto_kind(700_000, ann_from=600_000) == "ivf"
    assert choose_store("hnsw", DIM, 100_000).ef_search == 128  # narrower below 150k
    assert choose_store("hnsw", DIM, 200_000).ef_search == 256
    assert choose_store("auto", DIM, 10).kind == "flat"
    assert choose_store("auto", DIM, 10, ann_from=5).kind == auto_kind(10, 5)
    for kind in ("flat", *APPROXIMATE_KINDS):
        assert choose_store(kind, DIM, 10).kind == kind
    with pytest.raises(ValueError, match="Unknown vector store"):
        choose_store("pq", DIM, 10)


def test_single_queries_search_with_one_thread_and_restore_it(data, monkeypatch) -> None:
    vectors, ids, queries = data
    store = FaissStore.flat(DIM)
    store.add(ids, vectors)
    seen: list[int] = []
    inner = store._index

    class Spy:
        ntotal = inner.ntotal

        def search(self, q: np.ndarray, k: int):
            seen.append(faiss.omp_get_max_threads())
            return inner.search(q, k)

    store._index = Spy()  # type: ignore[assignment]
    with omp_threads(2):
        store.search(queries[:1], 5)
        store.search(queries, 5)
        assert faiss.omp_get_max_threads() == 2
    assert seen == [1, 2]


def test_ivf_lists_grow_with_the_archive(data) -> None:
    assert ivf_params(1_000)["nlist"] == 256
    assert ivf_params(1_000_000) == {"nlist": 1024, "nprobe": 128}
    assert ivf_params(100_000_000)["nlist"] == 4096
    vectors, ids, queries = data
    store = FaissStore.ivf(DIM, nlist=16, nprobe=16)  # every list probed: exact
    store.add(ids, vectors)
    exact = FaissStore.flat(DIM)
    exact.add(ids, vectors)
    assert np.array_equal(store.search(queries, 5)[1], exact.search(queries, 5)[1])
    assert store.kind == "ivf" and store.nprobe == 16
