"""A deterministic, dependency-free embedder for tests and quick demos.

Each word (lower-cased, with a crude plural/suffix strip) and each word bigram is
hashed into one of ``dimension`` buckets with a sign; the vector is normalised.
Texts that share words get a high cosine, which is enough to exercise the whole
pipeline without a neural model. Select it with ``NEWSDESK_EMBEDDING_MODEL=hashing``.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Sequence

import numpy as np

from index.embedders.base import Embedder, LateItem, LateVectors, normalise
from index.embedders.late import pool_spans

_WORD = re.compile(r"\w+", re.UNICODE)


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


class HashingEmbedder(Embedder):
    """``embed_late`` treats each word as a token whose output is its (stemmed) word's
    bucket, context-free, so a span's late vector is the same wherever the span stands;
    ``max_tokens`` (tests) cuts texts there, as a model's maximum sequence length does."""

    def __init__(self, dimension: int = 256, *, max_tokens: int | None = None) -> None:
        self.name = "hashing"
        self.dimension = dimension
        self.fingerprint = f"hashing-v1-{dimension}"
        self.max_tokens = max_tokens
        self.calls = 0
        self.texts_embedded = 0
        self.late_calls = 0

    def _bucket(self, token: str) -> tuple[int, float]:
        digest = hashlib.blake2b(token.encode(), digest_size=8).digest()
        value = int.from_bytes(digest, "little")
        return value % self.dimension, 1.0 if (value >> 63) & 1 else -1.0

    def embed(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        self.calls += 1
        self.texts_embedded += len(texts)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            words = [_stem(w) for w in _WORD.findall(text.lower())]
            tokens = words + [f"{a} {b}" for a, b in itertools.pairwise(words)]
            for token in tokens:
                col, sign = self._bucket(token)
                out[row, col] += sign
            if not tokens:
                out[row, 0] = 1.0
        return normalise(out) if len(texts) else out

    def embed_late(self, items: Sequence[LateItem], *, batch_size: int = 32) -> LateVectors:
        self.late_calls += 1
        texts = self.embed([text for text, _ in items], batch_size=batch_size)
        vectors, pooled = [], []
        for text, spans in items:
            every = list(_WORD.finditer(text))
            words = every[: self.max_tokens]
            tokens = np.zeros((len(words), self.dimension), dtype=np.float32)
            for row, match in enumerate(words):
                col, sign = self._bucket(_stem(match.group().lower()))
                tokens[row, col] = sign
            v, ok = pool_spans(
                tokens, [m.span() for m in words], list(spans), truncated=len(words) < len(every)
            )
            vectors.append(v)
            pooled.append(ok)
        if not vectors:
            return LateVectors(texts, np.zeros((0, self.dimension), np.float32), np.zeros(0, bool))
        return LateVectors(texts, np.concatenate(vectors), np.concatenate(pooled))
