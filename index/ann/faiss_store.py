"""FAISS-backed vector stores: exact (flat) search, and HNSW for large archives.

Kinds (``FaissStore.kind``, written in the manifest):

``flat``         exact inner-product search; right for small archives.
``hnsw``         an HNSW graph over the full vectors (``IndexHNSWFlat``).
``hnsw-refine``  an HNSW graph over 8-bit scalar-quantised vectors, whose top
                 ``k * k_factor`` candidates are re-ranked exactly against the full
                 vectors (``IndexRefineFlat``): exact scores in its final order.
``ivf``          an inverted file (``IndexIVFFlat``): k-means lists, ``nprobe`` of them
                 scanned exactly per query; trained on a sample when first filled.

Single queries search with one OpenMP thread: on a 2-core machine FAISS's threads
otherwise fight the encoder's for the same cores (see ``docs/benchmarks.md``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import faiss
import numpy as np

from index.ann.base import VectorStore

# Batches of at most this many queries search single-threaded (measured: see bench).
SINGLE_THREAD_MAX_QUERIES = 4


@contextmanager
def omp_threads(count: int) -> Iterator[None]:
    """Run FAISS with ``count`` OpenMP threads in this block (the calling thread's setting)."""
    previous = faiss.omp_get_max_threads()
    if count == previous:
        yield
        return
    faiss.omp_set_num_threads(count)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


def _unwrap(index: faiss.Index) -> faiss.Index:
    """The index inside an IndexIDMap(2), downcast to its concrete class."""
    inner = index.index if hasattr(index, "index") and hasattr(index, "id_map") else index
    return faiss.downcast_index(inner)


def _kind_of(index: faiss.Index) -> str:
    inner = _unwrap(index)
    if isinstance(inner, faiss.IndexRefine):
        return "hnsw-refine"
    if isinstance(inner, faiss.IndexHNSW):
        return "hnsw"
    if isinstance(inner, faiss.IndexIVF):
        return "ivf"
    return "flat"


class FaissStore(VectorStore):
    """A FAISS index wrapped in an IndexIDMap2 so ids are ours."""

    def __init__(self, index: faiss.Index) -> None:
        self._index = index
        self.kind = _kind_of(index)
        self.single_thread_max = SINGLE_THREAD_MAX_QUERIES

    @classmethod
    def flat(cls, dimension: int) -> FaissStore:
        return cls(faiss.IndexIDMap2(faiss.IndexFlatIP(dimension)))

    @classmethod
    def hnsw(
        cls, dimension: int, m: int = 32, ef_construction: int = 80, ef_search: int = 128
    ) -> FaissStore:
        inner = faiss.IndexHNSWFlat(dimension, m, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = ef_construction
        inner.hnsw.efSearch = ef_search
        return cls(faiss.IndexIDMap2(inner))

    @classmethod
    def hnsw_refine(
        cls,
        dimension: int,
        m: int = 32,
        ef_construction: int = 64,
        ef_search: int = 128,
        k_factor: float = 4.0,
    ) -> FaissStore:
        """HNSW over SQ8 codes, candidates re-ranked exactly on the full vectors."""
        base = faiss.IndexHNSWSQ(
            dimension, faiss.ScalarQuantizer.QT_8bit, m, faiss.METRIC_INNER_PRODUCT
        )
        base.hnsw.efConstruction = ef_construction
        base.hnsw.efSearch = ef_search
        refine = faiss.IndexRefineFlat(base)
        refine.k_factor = k_factor
        return cls(faiss.IndexIDMap2(refine))  # faiss's wrappers keep ``base`` alive

    @classmethod
    def ivf(
        cls,
        dimension: int,
        nlist: int = 1024,
        nprobe: int = 16,
        train_per_list: int = 32,
        kmeans_iterations: int = 10,
    ) -> FaissStore:
        """Exact scan of the ``nprobe`` nearest of ``nlist`` k-means lists."""
        quantizer = faiss.IndexFlatIP(dimension)
        inner = faiss.IndexIVFFlat(quantizer, dimension, nlist, faiss.METRIC_INNER_PRODUCT)
        inner.nprobe = nprobe
        inner.cp.niter = kmeans_iterations
        inner.cp.max_points_per_centroid = train_per_list
        inner.cp.seed = 1234
        return cls(faiss.IndexIDMap2(inner))  # ... and ``quantizer``

    # -- search parameters -------------------------------------------------------------

    def _hnsw(self) -> faiss.IndexHNSW | None:
        inner = _unwrap(self._index)
        if isinstance(inner, faiss.IndexRefine):
            inner = faiss.downcast_index(inner.base_index)
        return inner if isinstance(inner, faiss.IndexHNSW) else None

    @property
    def ef_search(self) -> int | None:
        hnsw = self._hnsw()
        return int(hnsw.hnsw.efSearch) if hnsw is not None else None

    @ef_search.setter
    def ef_search(self, value: int) -> None:
        hnsw = self._hnsw()
        if hnsw is not None:
            hnsw.hnsw.efSearch = int(value)

    @property
    def nprobe(self) -> int | None:
        inner = _unwrap(self._index)
        return int(inner.nprobe) if isinstance(inner, faiss.IndexIVF) else None

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        inner = _unwrap(self._index)
        if isinstance(inner, faiss.IndexIVF):
            inner.nprobe = int(value)

    @property
    def k_factor(self) -> float | None:
        inner = _unwrap(self._index)
        return float(inner.k_factor) if isinstance(inner, faiss.IndexRefine) else None

    @k_factor.setter
    def k_factor(self, value: float) -> None:
        inner = _unwrap(self._index)
        if isinstance(inner, faiss.IndexRefine):
            inner.k_factor = float(value)

    # -- the VectorStore API -------------------------------------------------------------

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            vectors = np.ascontiguousarray(vectors, dtype=np.float32)
            inner = _unwrap(self._index)
            if not inner.is_trained:
                inner.train(self._training_sample(inner, vectors))
            self._index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))

    @staticmethod
    def _training_sample(inner: faiss.Index, vectors: np.ndarray) -> np.ndarray:
        """A fixed random sample, as large as the k-means will use (its own cap)."""
        if not isinstance(inner, faiss.IndexIVF):
            return vectors
        cap = int(inner.nlist) * int(inner.cp.max_points_per_centroid)
        if len(vectors) <= cap:
            return vectors
        rows = np.random.default_rng(1234).choice(len(vectors), cap, replace=False)
        return np.ascontiguousarray(vectors[np.sort(rows)])

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim == 1:
            queries = queries[None, :]
        if self.size == 0:
            n = len(queries)
            return np.zeros((n, 1), dtype=np.float32), -np.ones((n, 1), dtype=np.int64)
        k = max(1, min(k, self.size))
        if len(queries) <= self.single_thread_max:
            with omp_threads(1):
                return self._index.search(queries, k)
        return self._index.search(queries, k)

    def save(self, directory: Path) -> None:
        """Write the index through a Python file: a failed write (a full disk) is an OSError
        with its errno, and so is one that only shows when the file is closed, which FAISS's
        own writer does not check (a short file would then pass for a whole one)."""
        with open(directory / self.FILENAME, "wb") as fh:
            faiss.write_index(self._index, faiss.PyCallbackIOWriter(fh.write))

    @classmethod
    def load(cls, directory: Path) -> FaissStore:
        return cls(faiss.read_index(str(directory / cls.FILENAME)))

    @property
    def size(self) -> int:
        return int(self._index.ntotal)
