"""sentence-transformers backend (torch). Imported only when a neural model is used."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from index.embedders.base import Embedder, normalise
from index.errors import ModelError

Precision = Literal["fp32", "bf16"]


class SentenceTransformerEmbedder(Embedder):
    """The reference backend. ``precision="bf16"`` runs the encoder under CPU bf16 autocast
    (faster where the CPU has AVX-512 BF16; vectors within cosine 0.9999 of fp32)."""

    def __init__(
        self,
        source: Path | str,
        *,
        name: str,
        fingerprint: str,
        precision: Precision = "fp32",
        threads: int | None = None,
    ) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        try:
            import torch
            from sentence_transformers import SentenceTransformer

            if threads:
                torch.set_num_threads(threads)
            self._torch = torch
            self._model = SentenceTransformer(str(source), device="cpu", local_files_only=True)
        except Exception as exc:  # any loader failure becomes one clear message
            raise ModelError(
                f"Cannot load embedding model {name!r} from {source}: {exc}. Models are never "
                "downloaded: set NEWSDESK_EMBEDDING_MODEL to a local sentence-transformers folder."
            ) from exc
        self.name = name
        self.fingerprint = fingerprint
        self.precision: Precision = precision
        get_dim = (
            getattr(self._model, "get_embedding_dimension", None)
            or self._model.get_sentence_embedding_dimension
        )
        dim = get_dim()
        self.dimension = int(dim) if dim else int(self.embed(["probe"]).shape[1])

    @contextlib.contextmanager
    def _autocast(self) -> Iterator[None]:
        if self.precision == "bf16":
            with self._torch.autocast("cpu", dtype=self._torch.bfloat16):
                yield
        else:
            yield

    def embed(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._autocast():
            vectors = self._model.encode(
                list(texts),
                batch_size=batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return normalise(np.asarray(vectors, dtype=np.float32))
