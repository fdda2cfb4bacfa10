"""The embedder interface: text in, L2-normalised float32 vectors out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence

import numpy as np


class Embedder(ABC):
    """Turns texts into unit-length float32 vectors of a fixed dimension.

    ``name`` and ``fingerprint`` go into an index's manifest: an index built with
    one embedder is refused by another whose fingerprint differs.
    """

    name: str
    dimension: int
    fingerprint: str

    @abstractmethod
    def embed(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        """Return an array of shape (len(texts), dimension), rows of unit length."""

    def embed_one(self, text: str) -> np.ndarray:
        return self.embed([text])[0]

    def embed_chunks(
        self, chunks: Sequence[Sequence[str]], *, batch_size: int = 32
    ) -> Iterator[np.ndarray]:
        """The vectors of each chunk, in order, as each is done (for progress reports).
        A bulk embedder may work on several chunks at once (``index.embedders.pool``)."""
        for chunk in chunks:
            yield self.embed(chunk, batch_size=batch_size)


class WrappedEmbedder(Embedder):
    """An embedder around another one (``inner``), whose name, fingerprint, dimension and
    state it shows as its own; a wrapper changes how ``embed`` runs, never what it gives."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.fingerprint = inner.fingerprint

    @property  # type: ignore[override]
    def dimension(self) -> int:
        return self.inner.dimension

    @property
    def loaded(self) -> bool:
        """False while a lazy embedder inside has not loaded its model."""
        return bool(getattr(self.inner, "loaded", True))

    def embed(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        return self.inner.embed(texts, batch_size=batch_size)


def normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim == 1:
        vectors = vectors[None, :]
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(vectors / norms, dtype=np.float32)
