"""The passage reranker: which of the fused top 50 passages to read first.

Hybrid retrieval fuses the dense and BM25 rankings by reciprocal rank, which knows only
ranks. The reranker sees more of each passage (``PASSAGE_FEATURES``): its fused, dense
and BM25 scores and ranks, how much of the question's rare words (IDF, as the reader
weighs them) the passage, its title and its whole article hold, the rarest question word
the passage lacks, and the dense cosine of the question to the passage's best sentences
(the stored sentence vectors). Boosted trees fitted on ``train.jsonl`` (LambdaRank:
passages holding the answer span first; ``scripts/train_answerer.py --rerank``) score
them, and the retriever returns the fused candidates in that order. The trees travel
inside the answer model file (``passages``), which also names these features; a file
without them, the shipped one included (README, "Quality": measured, opt-in), leaves the
fused order as it is.

Everything here reads the index's own arrays (BM25 postings for word presence, the
stored sentence vectors), so ranking 50 candidates costs no stemming of passage or
article text at query time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Protocol

import numpy as np

from index.answer.features import QuestionIdf
from index.lexical import LexicalIndex
from index.lexical import tokenize as lexical_terms
from index.sentence_vectors import SentenceVectors
from index.types import Hit, Passage

PASSAGE_FEATURES: tuple[str, ...] = (
    "fused",
    "fused_rank",
    "fused_ratio",
    "dense",
    "dense_rank",
    "dense_gap",
    "has_dense",
    "lex_ratio",
    "lex_rank",
    "has_lex",
    "p_idf_cov",
    "p_absent_idf",
    "title_idf_cov",
    "doc_idf_cov",
    "doc_absent_share",
    "s_best",
    "s_second",
    "s_best_gap",
    "doc_hits",
    "doc_best_rank",
    "q_terms",
)
MISSING_RANK = 51.0  # a ranking that did not list the passage (each lists 50)


class PassageIndex(Protocol):
    """What the reranker reads of an index (``index.store.LoadedIndex`` is one): its BM25
    postings, its stored sentence vectors and each article's passages."""

    lexical: LexicalIndex
    sentences: SentenceVectors | None

    def passages_of(self, doc_id: str) -> Sequence[Passage]: ...


@lru_cache(maxsize=4096)
def _title_terms(title: str) -> frozenset[str]:
    return frozenset(lexical_terms(title))


def passage_features(
    question: str,
    hits: Sequence[Hit],
    *,
    query_vector: np.ndarray,
    index: PassageIndex,
    word_idf: Mapping[str, float] | None = None,
) -> np.ndarray:
    """One row of ``PASSAGE_FEATURES`` per hit, in the hits' (fused) order, read from
    ``index``'s BM25 postings and stored sentence vectors."""
    out = np.zeros((len(hits), len(PASSAGE_FEATURES)), dtype=np.float32)
    if not hits:
        return out
    lexical = index.lexical
    idf = QuestionIdf(lexical, word_idf)
    known = {t: idf(t) for t in dict.fromkeys(lexical_terms(question))}
    total = sum(known.values()) or 1.0
    pids = np.asarray([h.passage.passage_id for h in hits], dtype=np.int64)
    docs = list(dict.fromkeys(h.passage.doc_id for h in hits))
    doc_pids = [np.asarray([p.passage_id for p in index.passages_of(d)], np.int64) for d in docs]
    doc_of = np.concatenate([np.full(len(p), i) for i, p in enumerate(doc_pids)])
    all_doc_pids = np.concatenate(doc_pids) if doc_pids else np.zeros(0, np.int64)
    # Which hits' passages (and which articles) hold each question word: BM25 postings.
    in_passage = np.zeros((len(known), len(hits)), dtype=bool)
    in_doc = np.zeros((len(known), len(docs)), dtype=bool)
    for row, term in enumerate(known):
        in_passage[row] = lexical.holds(term, pids)
        held = lexical.holds(term, all_doc_pids)
        in_doc[row] = np.bincount(doc_of[held], minlength=len(docs)) > 0
    weights = np.asarray(list(known.values()), dtype=np.float64)
    doc_index = {d: i for i, d in enumerate(docs)}
    doc_hits: dict[str, int] = {}
    doc_best: dict[str, int] = {}
    for rank, hit in enumerate(hits, 1):
        doc_hits[hit.passage.doc_id] = doc_hits.get(hit.passage.doc_id, 0) + 1
        doc_best.setdefault(hit.passage.doc_id, rank)
    best, second = _best_sentences(pids, query_vector, index.sentences)
    dense_rank = _ranks(hits, "dense_score")
    lex_rank = _ranks(hits, "lexical_score")
    top_fused = hits[0].score or 1.0
    top_dense = max((h.dense_score or 0.0 for h in hits), default=0.0)
    top_lex = max((h.lexical_score or 0.0 for h in hits), default=0.0) or 1.0
    top_best = float(best.max()) if len(best) else 0.0
    for i, hit in enumerate(hits):
        title = _title_terms(hit.passage.title)
        title_w = sum(w for t, w in known.items() if t in title)
        d = doc_index[hit.passage.doc_id]
        held = in_passage[:, i] if len(known) else np.zeros(0, bool)
        doc_held = in_doc[:, d] | np.asarray([t in title for t in known], dtype=bool)
        out[i] = (
            hit.score,
            i + 1,
            hit.score / top_fused,
            hit.dense_score or 0.0,
            dense_rank.get(i, MISSING_RANK),
            (hit.dense_score or 0.0) - top_dense,
            float(hit.dense_score is not None),
            (hit.lexical_score or 0.0) / top_lex,
            lex_rank.get(i, MISSING_RANK),
            float(hit.lexical_score is not None),
            float(weights[held].sum() / total) if len(known) else 0.0,
            float(weights[~held].max()) if (~held).any() else 0.0,
            title_w / total,
            float(weights[doc_held].sum() / total) if len(known) else 0.0,
            float(weights[~doc_held].sum() / total) if len(known) else 0.0,
            best[i],
            second[i],
            best[i] - top_best,
            doc_hits[hit.passage.doc_id],
            doc_best[hit.passage.doc_id],
            len(known),
        )
    return out


def _ranks(hits: Sequence[Hit], score: str) -> dict[int, float]:
    """Each hit's rank (1 = best) by one retriever's score, among the hits that have one."""
    scored = [(getattr(h, score), i) for i, h in enumerate(hits) if getattr(h, score) is not None]
    return {i: float(r) for r, (_, i) in enumerate(sorted(scored, key=lambda x: -x[0]), 1)}


def _best_sentences(
    pids: np.ndarray, query_vector: np.ndarray, sentences: SentenceVectors | None
) -> tuple[np.ndarray, np.ndarray]:
    """Per passage, the cosine of the question to its best and second-best sentence."""
    best = np.zeros(len(pids), dtype=np.float32)
    second = np.zeros(len(pids), dtype=np.float32)
    if sentences is None or not len(sentences.spans):
        return best, second
    column = sentences.spans[:, 0]
    lo = np.searchsorted(column, pids, "left")
    hi = np.searchsorted(column, pids, "right")
    rows = np.concatenate([np.arange(a, b) for a, b in zip(lo, hi, strict=True)])
    if not len(rows):
        return best, second
    cos = np.asarray(sentences.vectors[rows], dtype=np.float32) @ np.asarray(
        query_vector, dtype=np.float32
    )
    start = 0
    for i, count in enumerate(hi - lo):
        if count:
            part = np.sort(cos[start : start + count])[::-1]
            best[i] = part[0]
            second[i] = part[1] if count > 1 else part[0]
        start += count
    return best, second


class Scorer(Protocol):
    """Fitted trees (``index.answer.model.Trees``): one raw score per feature row."""

    def raw(self, x: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True, slots=True)
class PassageRanker:
    """Reorders fused hits by the fitted trees' scores, best first."""

    trees: Scorer
    word_idf: Mapping[str, float] | None = None

    def rerank(
        self,
        question: str,
        hits: list[Hit],
        *,
        query_vector: np.ndarray,
        index: PassageIndex,
    ) -> list[Hit]:
        if len(hits) < 2:
            return hits
        matrix = passage_features(
            question, hits, query_vector=query_vector, index=index, word_idf=self.word_idf
        )
        scores = self.trees.raw(matrix)
        order = np.argsort(-scores, kind="stable")
        return [replace(hits[int(i)], rank=rank) for rank, i in enumerate(order, 1)]
