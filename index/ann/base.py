"""Vector store interface: explicit integer ids, inner-product search on unit vectors."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np


class VectorStore(ABC):
    """Nearest-neighbour search over unit-length vectors, by inner product (cosine).

    Ids are explicit int64 values (the passage ids), never positions FAISS chose.
    """

    kind: str
    FILENAME = "dense.faiss"

    @abstractmethod
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None: ...

    @abstractmethod
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Return (scores, ids), each of shape (len(queries), k); missing slots have id -1."""

    @abstractmethod
    def save(self, directory: Path) -> None: ...

    @classmethod
    @abstractmethod
    def load(cls, directory: Path) -> VectorStore: ...

    @property
    @abstractmethod
    def size(self) -> int: ...
