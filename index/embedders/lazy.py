"""An embedder that loads its model on the first ``embed`` call.

Its name, fingerprint and (for local models) dimension are known up front, from the
verified weights hash and the model's config files, so a re-index that finds nothing
changed, or a manifest check, never imports torch or starts ONNX Runtime.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import numpy as np

from index.embedders.base import Embedder, LateItem, LateVectors


class LazyEmbedder(Embedder):
    def __init__(
        self,
        *,
        name: str,
        fingerprint: str,
        factory: Callable[[], Embedder],
        dimension: int | None = None,
    ) -> None:
        self.name = name
        self.fingerprint = fingerprint
        self._dimension = dimension
        self._factory = factory
        self._inner: Embedder | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._inner is not None

    @property
    def inner(self) -> Embedder:
        """The real embedder, loaded now if it was not yet."""
        if self._inner is None:
            with self._lock:
                if self._inner is None:
                    inner = self._factory()
                    if inner.fingerprint != self.fingerprint:
                        raise RuntimeError(
                            f"embedder fingerprint {inner.fingerprint!r} differs from the "
                            f"announced {self.fingerprint!r}"
                        )
                    self._inner = inner
        return self._inner

    @property  # type: ignore[override]
    def dimension(self) -> int:
        if self._dimension is None:
            self._dimension = self.inner.dimension
        return self._dimension

    def embed(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return self.inner.embed(texts, batch_size=batch_size)

    def embed_late(self, items: Sequence[LateItem], *, batch_size: int = 32) -> LateVectors:
        return self.inner.embed_late(items, batch_size=batch_size)
