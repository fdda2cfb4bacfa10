"""sentence-transformers backend (torch). Imported only when a neural model is used."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from index.embedders.base import Embedder, normalise
from index.errors import ModelError


class SentenceTransformerEmbedder(Embedder):
    def __init__(self, source: Path | str, *, name: str, fingerprint: str) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        try:
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(source), device="cpu", local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - any loader failure becomes one clear message
            raise ModelError(
                f"Cannot load embedding model {name!r} from {source}: {exc}. Models are never "
                "downloaded: set NEWSDESK_EMBEDDING_MODEL to a local sentence-transformers folder."
            ) from exc
        self.name = name
        self.fingerprint = fingerprint
        get_dim = getattr(self._model, "get_embedding_dimension", None) or getattr(
            self._model, "get_sentence_embedding_dimension"
        )
        dim = get_dim()
        self.dimension = int(dim) if dim else int(self.embed(["probe"]).shape[1])

    def embed(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            batch_size=batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return normalise(vectors)
