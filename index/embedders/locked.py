"""An embedder that embeds one call at a time: Hugging Face fast tokenizers fail when one
tokenizer is used by several threads at once (the bot answers on a thread pool)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from index.embedders.base import Embedder, LateItem, LateVectors, WrappedEmbedder


class LockedEmbedder(WrappedEmbedder):
    """One ``embed`` at a time."""

    def __init__(self, inner: Embedder) -> None:
        super().__init__(inner)
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        with self._lock:
            return self.inner.embed(texts, batch_size=batch_size)

    def embed_late(self, items: Sequence[LateItem], *, batch_size: int = 32) -> LateVectors:
        with self._lock:
            return self.inner.embed_late(items, batch_size=batch_size)
