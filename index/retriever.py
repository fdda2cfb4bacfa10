"""Hybrid retrieval: dense (FAISS) and lexical (BM25) rankings fused by reciprocal rank."""

from __future__ import annotations

from typing import Literal, Protocol

import numpy as np

from index.embedders.base import Embedder
from index.store import LoadedIndex
from index.types import Hit

Mode = Literal["hybrid", "dense", "bm25"]
MODES: tuple[Mode, ...] = ("bm25", "dense", "hybrid")


class Reranker(Protocol):
    """Reorders the fused candidates (``index.answer.passages.PassageRanker``)."""

    def rerank(
        self, question: str, hits: list[Hit], *, query_vector: np.ndarray, index: LoadedIndex
    ) -> list[Hit]: ...


class Retriever:
    """Ranks an index's passages for a query.

    Hybrid mode takes the top ``candidates`` of each ranking and fuses them with
    reciprocal rank fusion (score = sum of 1 / (rrf_k + rank)), which needs no
    score calibration between BM25 and cosine. With a ``reranker``, hybrid mode hands
    it every fused candidate and returns the top ``k`` in its order.
    """

    def __init__(
        self,
        index: LoadedIndex,
        embedder: Embedder,
        *,
        candidates: int = 50,
        rrf_k: int = 20,
        reranker: Reranker | None = None,
    ) -> None:
        self.index = index
        self.embedder = embedder
        self.candidates = candidates
        self.rrf_k = rrf_k
        self.reranker = reranker

    def dense(self, query_vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        scores, ids = self.index.vectors.search(query_vector[None, :], k)
        return [(int(i), float(s)) for s, i in zip(scores[0], ids[0], strict=True) if i >= 0]

    def search(
        self,
        query: str,
        k: int = 10,
        mode: Mode = "hybrid",
        query_vector: np.ndarray | None = None,
    ) -> list[Hit]:
        passages = self.index.passages
        if not passages:
            return []
        depth = max(k, self.candidates)
        dense: list[tuple[int, float]] = []
        lexical: list[tuple[int, float]] = []
        if mode in ("dense", "hybrid"):
            if query_vector is None:
                query_vector = self.embedder.embed([query])[0]
            dense = self.dense(query_vector, depth)
        if mode in ("bm25", "hybrid"):
            lexical = self.index.lexical.search(query, depth)
        if mode == "dense":
            return [
                Hit(passages[i], s, rank, dense_score=s) for rank, (i, s) in enumerate(dense[:k], 1)
            ]
        if mode == "bm25":
            return [
                Hit(passages[i], s, rank, lexical_score=s)
                for rank, (i, s) in enumerate(lexical[:k], 1)
            ]
        fused: dict[int, float] = {}
        dense_scores = dict(dense)
        lexical_scores = dict(lexical)
        for ranking in (dense, lexical):
            for rank, (i, _) in enumerate(ranking, 1):
                fused[i] = fused.get(i, 0.0) + 1.0 / (self.rrf_k + rank)
        dense_rank = {i: rank for rank, (i, _) in enumerate(dense, 1)}
        order = sorted(fused, key=lambda i: (-fused[i], dense_rank.get(i, depth + 1), i))
        hits = [
            Hit(
                passages[i],
                fused[i],
                rank,
                dense_score=dense_scores.get(i),
                lexical_score=lexical_scores.get(i),
            )
            for rank, i in enumerate(order if self.reranker is not None else order[:k], 1)
        ]
        if self.reranker is not None and query_vector is not None:
            hits = self.reranker.rerank(query, hits, query_vector=query_vector, index=self.index)
        return hits[:k]

    def within(
        self, query: str, doc_id: str, k: int = 5, query_vector: np.ndarray | None = None
    ) -> list[Hit]:
        """Rank one article's passages for a query by cosine, best first."""
        own = self.index.passages_of(doc_id)
        if not own:
            return []
        matrix = self.index.vector_matrix()
        if query_vector is None:
            query_vector = self.embedder.embed([query])[0]
        scores = np.asarray(matrix[[p.passage_id for p in own]]) @ query_vector
        order = np.argsort(-scores, kind="stable")[:k]
        return [
            Hit(own[i], float(scores[i]), rank, dense_score=float(scores[i]))
            for rank, i in enumerate(order, 1)
        ]
