"""sentence-transformers backend (torch). Imported only when a neural model is used."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from index.embedders.base import Embedder, LateItem, LateVectors, normalise
from index.embedders.late import leading_space, pool_spans
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

    def embed_late(self, items: Sequence[LateItem], *, batch_size: int = 32) -> LateVectors:
        """Each text's vector (as ``embed``) and its spans' vectors pooled from the same
        forward pass's token outputs (``index.embedders.late``). Offsets come from the
        model's own tokenizer on the stripped text, as sentence-transformers embeds it;
        a text whose token count differs from the outputs' has none of its spans pooled."""
        texts = [text for text, _ in items]
        total = sum(len(spans) for _, spans in items)
        span_vectors = np.zeros((total, self.dimension), dtype=np.float32)
        pooled = np.zeros(total, dtype=bool)
        if not items:
            return LateVectors(np.zeros((0, self.dimension), np.float32), span_vectors, pooled)
        stripped = [str(t).strip() for t in texts]
        encoded = self._model.tokenizer(
            stripped,
            return_offsets_mapping=True,
            truncation=True,
            max_length=self._model.max_seq_length,
        )
        with self._autocast():
            outputs = self._model.encode(
                stripped,
                batch_size=batch_size,
                output_value=None,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        text_vectors = np.zeros((len(items), self.dimension), dtype=np.float32)
        row = 0
        for i, ((text, spans), out) in enumerate(zip(items, outputs, strict=True)):
            text_vectors[i] = _array(out["sentence_embedding"])
            tokens = _array(out["token_embeddings"])
            mask = out.get("attention_mask")
            if mask is not None:  # outputs may be padded to their batch's longest text
                tokens = tokens[: int(_array(mask).sum())]
            offsets = [tuple(o) for o in encoded["offset_mapping"][i]]
            shift = leading_space(str(text))
            if len(offsets) == tokens.shape[0] and spans:
                local = [(max(0, s - shift), max(0, e - shift)) for s, e in spans]
                cut = len(offsets) >= self._model.max_seq_length
                vectors, ok = pool_spans(tokens, offsets, local, truncated=cut)
                span_vectors[row : row + len(spans)] = vectors
                pooled[row : row + len(spans)] = ok
            row += len(spans)
        return LateVectors(normalise(text_vectors), span_vectors, pooled)


def _array(value: object) -> np.ndarray:
    """A float32 array of a model output (a torch tensor, possibly bf16, or an array)."""
    if hasattr(value, "detach"):
        value = value.detach().float().cpu().numpy()  # type: ignore[attr-defined]
    return np.asarray(value, dtype=np.float32)
