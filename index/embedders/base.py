"""The embedder interface: text in, L2-normalised float32 vectors out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from index.errors import ModelError

# A text and the character spans [start, end) of the parts to pool from its token outputs.
LateItem = tuple[str, Sequence[tuple[int, int]]]


@dataclass(slots=True)
class LateVectors:
    """What ``embed_late`` gives for a list of items: each text's vector (exactly what
    ``embed`` gives), and the vectors of all their spans, in order (``spans[i]`` valid only
    where ``pooled[i]``: a span the model never saw whole, cut off by its maximum sequence
    length or holding no token, is not pooled and must be embedded on its own)."""

    texts: np.ndarray  # (items, dimension)
    spans: np.ndarray  # (all spans, dimension), unit length where pooled
    pooled: np.ndarray  # (all spans,) bool


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

    def embed_late(self, items: Sequence[LateItem], *, batch_size: int = 32) -> LateVectors:
        """Late chunking: embed each text once and pool each span's vector from that one
        forward pass (the mean of the span's token outputs, L2-normalised). A backend that
        cannot do it raises ModelError."""
        raise ModelError(
            f"The {type(self).__name__} backend cannot pool sentence vectors from token "
            "outputs (late chunking): use NEWSDESK_EMBEDDING_BACKEND=torch, or "
            "NEWSDESK_SENTENCE_VECTORS=separate."
        )

    def embed_late_chunks(
        self, chunks: Sequence[Sequence[LateItem]], *, batch_size: int = 32
    ) -> Iterator[LateVectors]:
        """``embed_late`` of each chunk, in order, as each is done (as ``embed_chunks``)."""
        for chunk in chunks:
            yield self.embed_late(chunk, batch_size=batch_size)


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

    def embed_late(self, items: Sequence[LateItem], *, batch_size: int = 32) -> LateVectors:
        return self.inner.embed_late(items, batch_size=batch_size)


def normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim == 1:
        vectors = vectors[None, :]
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(vectors / norms, dtype=np.float32)
