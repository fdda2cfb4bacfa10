"""FAISS-backed vector stores: exact (flat) search, and HNSW for large archives."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

from index.ann.base import VectorStore


class FaissStore(VectorStore):
    """A FAISS index wrapped in an IndexIDMap2 so ids are ours."""

    kind = "faiss"

    def __init__(self, index: faiss.Index) -> None:
        self._index = index

    @classmethod
    def flat(cls, dimension: int) -> FaissStore:
        store = cls(faiss.IndexIDMap2(faiss.IndexFlatIP(dimension)))
        store.kind = "flat"
        return store

    @classmethod
    def hnsw(cls, dimension: int, m: int = 32, ef_construction: int = 80, ef_search: int = 128):
        inner = faiss.IndexHNSWFlat(dimension, m, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = ef_construction
        inner.hnsw.efSearch = ef_search
        store = cls(faiss.IndexIDMap2(inner))
        store.kind = "hnsw"
        return store

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            self._index.add_with_ids(
                np.ascontiguousarray(vectors, dtype=np.float32),
                np.ascontiguousarray(ids, dtype=np.int64),
            )

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim == 1:
            queries = queries[None, :]
        k = max(1, min(k, self.size)) if self.size else 1
        if self.size == 0:
            n = len(queries)
            return np.zeros((n, 1), dtype=np.float32), -np.ones((n, 1), dtype=np.int64)
        return self._index.search(queries, k)

    def save(self, directory: Path) -> None:
        faiss.write_index(self._index, str(directory / self.FILENAME))

    @classmethod
    def load(cls, directory: Path) -> FaissStore:
        index = faiss.read_index(str(directory / cls.FILENAME))
        store = cls(index)
        inner = faiss.downcast_index(index.index) if hasattr(index, "index") else index
        store.kind = "hnsw" if isinstance(inner, faiss.IndexHNSW) else "flat"
        return store

    @property
    def size(self) -> int:
        return int(self._index.ntotal)
