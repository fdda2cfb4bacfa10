"""What the answer model sees of each candidate sentence: one row of numbers.

``candidate_features`` turns a question and its ranked hits into one row of numbers per
sentence (``FEATURES`` names the columns). The answer model (``index.answer.model``) was
fitted on exactly these columns from labelled questions (``scripts/train_answerer.py``),
so training and answering share this one function.

The features, by what they look at:

* the question: its expected answer kind (one-hot), yes/no form, length;
* the passage: its retrieval rank and scores (fused, dense cosine, BM25), how much of the
  question's rare words (IDF from the BM25 index) it and its title hold;
* the article: the rarest question word it lacks (``absent_idf``: the near-miss signal;
  "Ocean's Twelve" asked, "Twelve" nowhere in the Ocean's Eleven article), the share of
  the question's IDF it lacks, question numbers it lacks, whether it never mentions a
  country the question names (``absent_country``, ``index.answer.places``), how many top
  passages it has;
* the sentence: dense cosine to the question (vectors stored at index time), word
  coverage alone and with its title and neighbours, the answer-kind match and how close
  it sits to the question's words, position, length, words it adds to the question's, and
  each of these relative to the best candidate of the same question.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from index.answer.candidates import Candidate, read_candidates
from index.answer.places import mentioned_countries, named_countries
from index.answer.text import (
    TermsMemo,
    content_terms,
    coverage,
    expand,
    one_edit,
    pool_weights,
    static_weights,
    typo_aliases,
)
from index.answer.types import answer_type, proximity, type_matches
from index.lexical import LexicalIndex
from index.lexical import tokenize as lexical_terms
from index.sentence_vectors import SentenceVectors
from index.types import Hit

log = logging.getLogger(__name__)

KINDS = (
    "date",
    "person",
    "place",
    "entity",
    "reason",
    "money",
    "percent",
    "count",
    "measure",
    "number",
)
_YES_NO = re.compile(
    r"^\s*(?:is|are|was|were|did|does|do|has|have|had|can|could|will|would|should)\b", re.I
)

# The hand-set score of the first extractor, kept as one feature among the others.
_HEURISTIC = {"dense": 0.10, "lex_ctx": 0.25, "type": 0.30, "near": 0.20, "prev_lex": 0.10}

FEATURES: tuple[str, ...] = (
    *(f"kind_{k}" for k in (*KINDS, "none")),
    "yes_no",
    "q_terms",
    "hit_index",
    "fused_ratio",
    "p_dense",
    "p_dense_gap",
    "p_lex_ratio",
    "p_idf_cov",
    "p_absent_idf",
    "title_idf_cov",
    "doc_idf_cov",
    "absent_idf",
    "absent_idf_share",
    "absent_numbers",
    "absent_country",
    "doc_hits",
    "doc_best_hit",
    "dense",
    "dense_gap",
    "dense_rank",
    "lex",
    "lex_ctx",
    "lex_ctx_gap",
    "focus",
    "prev_lex",
    "next_lex",
    "idf_cov",
    "idf_cov_gap",
    "ctx_idf_cov",
    "ctx_absent_idf",
    "type",
    "type_count",
    "near",
    "near_gap",
    "heuristic",
    "heuristic_gap",
    "novel",
    "eligible",
    "words",
    "sent_index",
    "article_first",
)


# Question-level figures the answerability model reads, from the candidates' scores.
DECISION: tuple[str, ...] = (
    "best",
    "second",
    "margin",
    "best_doc_mass",
    "entropy",
    "best_hit_index",
    "best_type",
    "best_near",
    "best_dense",
    "best_idf_cov",
    "best_ctx_idf_cov",
    "absent_idf",
    "absent_idf_share",
    "absent_numbers",
    "absent_country",
    "p_dense",
    "top_dense",
    "q_terms",
    "kind_none",
    "yes_no",
)


@dataclass(slots=True)
class Scored:
    """A question's candidates with their feature matrix (rows in candidate order)."""

    question: str
    kind: str | None
    candidates: list[Candidate]
    matrix: np.ndarray
    q_terms: set[str]


# How many passages the prior (word rarity in general English) counts for: an index much
# larger than this weighs words by its own document frequencies, a small one (the shipped
# sample has five passages, where every unseen word would look rarest) by the prior.
PRIOR_PASSAGES = 2000.0
# The prior of a word missing from the prior's vocabulary: rarer than any word in it.
PRIOR_MAX = math.log(1.0 + 30000 / 10)


def prior_idf(rank: int, first_word: int) -> float:
    """A Zipf estimate of a word's IDF from its frequency rank: a word of rank r (0 =
    the most common) is in about 10/r of ~100-word passages, so IDF ~ log(1 + r/10)."""
    return math.log(1.0 + max(rank - first_word, 1) / 10)


class QuestionIdf:
    """How rare a question word is: the BM25 index's IDF blended with a prior from the
    word's general frequency (``PRIOR_PASSAGES``); rare words name what is asked about."""

    def __init__(self, lexical: LexicalIndex | None, prior: Mapping[str, float] | None) -> None:
        self.lexical = lexical
        self.prior = prior
        n = lexical.num_docs if lexical is not None else 0
        self.n = float(max(n, 1))

    def seen(self, term: str) -> bool:
        return self.lexical is not None and self.lexical.document_frequency(term) is not None

    def __call__(self, term: str) -> float:
        lexical = self.lexical
        if lexical is None:
            return 1.0
        df = lexical.document_frequency(term) or 0
        own = math.log(1.0 + (self.n - df + 0.5) / (df + 0.5))
        if not self.prior:
            return own
        prior = self.prior.get(term, PRIOR_MAX)
        return (self.n * own + PRIOR_PASSAGES * prior) / (self.n + PRIOR_PASSAGES)


@lru_cache(maxsize=512)
def article_terms(text: str) -> frozenset[str]:
    """The BM25 terms of a whole article. Cached by its text (a str caches its hash, and
    the index hands out the same str each time), so the articles that questions read are
    stemmed once, and a new index version's changed text is never served stale."""
    return frozenset(lexical_terms(text))


def _idf_coverage(weights: dict[str, float], terms: frozenset[str] | set[str]) -> float:
    total = sum(weights.values())
    if total <= 0:
        return 0.0
    return sum(w for t, w in weights.items() if t in terms) / total


def _absent(weights: dict[str, float], terms: frozenset[str]) -> float:
    """The IDF of the rarest question word that ``terms`` lack (0 when none is missing)."""
    return max((w for t, w in weights.items() if not _present(t, terms)), default=0.0)


def _present(term: str, terms: frozenset[str] | set[str]) -> bool:
    """In ``terms``, exactly or (for words of five letters or more) by one typo."""
    if term in terms:
        return True
    return len(term) >= 5 and term.isalpha() and any(one_edit(term, t) for t in terms)


def candidate_features(
    question: str,
    hits: Sequence[Hit],
    article_text: Callable[[str], str],
    *,
    query_vector: np.ndarray | None,
    sentence_vectors: SentenceVectors | None,
    lexical: LexicalIndex | None,
    embed: Callable[[list[str]], np.ndarray] | None = None,
    max_passages: int = 8,
    word_idf: Mapping[str, float] | None = None,
) -> Scored:
    """Every candidate sentence of the top ``max_passages`` hits, with its feature row.
    ``word_idf``: the prior IDF of word stems (``prior_idf``; the model file carries it)."""
    kind = answer_type(question)
    q_list = content_terms(question)
    q_set = set(q_list)
    memo = TermsMemo()
    candidates = read_candidates(hits, article_text, sentence_vectors, max_passages, memo)
    if not candidates or not q_list:
        return Scored(question, kind, [], np.zeros((0, len(FEATURES)), np.float32), q_set)

    # -- question -------------------------------------------------------------
    idf = QuestionIdf(lexical, word_idf)
    lex_q = list(dict.fromkeys(lexical_terms(question)))
    # Every question word weighs by its rarity; one the index has never seen weighs most
    # (a name from another story, or a typo: a typo is found one edit from a word the
    # text holds, see ``_present``).
    known = {t: idf(t) for t in lex_q}
    is_number = {t for t in lex_q if any(ch.isdigit() for ch in t)}
    asked_countries = named_countries(question)
    base: dict[str, float] = {f"kind_{k}": 0.0 for k in (*KINDS, "none")}
    base[f"kind_{kind or 'none'}"] = 1.0
    base["yes_no"] = 1.0 if _YES_NO.match(question) else 0.0
    base["q_terms"] = float(len(q_list))

    # -- passages and articles -----------------------------------------------
    lex_cache: dict[str, frozenset[str]] = {}

    def lex_of(text: str) -> frozenset[str]:
        found = lex_cache.get(text)
        if found is None:
            found = lex_cache[text] = frozenset(lexical_terms(text))
        return found

    read = hits[:max_passages]
    top_fused = max((h.score for h in read), default=0.0) or 1.0
    top_dense = max((h.dense_score or 0.0 for h in read), default=0.0)
    top_lex = max((h.lexical_score or 0.0 for h in read), default=0.0) or 1.0
    doc_stats: dict[str, dict[str, float]] = {}
    for index, hit in enumerate(read):
        doc = hit.passage.doc_id
        stats = doc_stats.get(doc)
        if stats is None:
            try:
                text = article_text(doc)
                words = article_terms(text) | lex_of(hit.passage.title)
                countries = mentioned_countries(text) | mentioned_countries(hit.passage.title)
            except Exception:
                words = countries = frozenset()
            absent = [t for t in known if not _present(t, words)]
            total = sum(known.values()) or 1.0
            stats = doc_stats[doc] = {
                "doc_idf_cov": _idf_coverage(known, words),
                "absent_idf": max((known[t] for t in absent), default=0.0),
                "absent_idf_share": sum(known[t] for t in absent) / total,
                "absent_numbers": float(sum(1 for t in is_number if t not in words)),
                "absent_country": 1.0 if asked_countries - countries else 0.0,
                "doc_hits": 0.0,
                "doc_best_hit": float(index),
            }
        stats["doc_hits"] += 1.0

    passage_feats: dict[int, dict[str, float]] = {}
    for index, hit in enumerate(read):
        p = hit.passage
        p_dense = hit.dense_score if hit.dense_score is not None else 0.0
        p_words = lex_of(p.text) | lex_of(p.title)
        passage_feats[index] = {
            "hit_index": float(index),
            "fused_ratio": hit.score / top_fused,
            "p_dense": p_dense,
            "p_dense_gap": p_dense - top_dense,
            "p_lex_ratio": (hit.lexical_score or 0.0) / top_lex,
            "p_idf_cov": _idf_coverage(known, p_words),
            "p_absent_idf": _absent(known, p_words),
            "title_idf_cov": _idf_coverage(known, lex_of(p.title)),
            **doc_stats[p.doc_id],
        }

    # -- sentences ------------------------------------------------------------
    vocab: set[str] = set()
    for cand in candidates:
        vocab.update(memo(cand.text), memo(cand.passage.title))
    aliases = typo_aliases(q_set, vocab)
    sent_terms = [expand(set(memo(c.text)), aliases) for c in candidates]
    prev_terms = [expand(set(memo(c.previous)), aliases) for c in candidates]
    next_terms = [expand(set(memo(c.following)), aliases) for c in candidates]
    ctx_terms = [
        expand(set(memo(c.passage.title)), aliases) | st | pt
        for c, st, pt in zip(candidates, sent_terms, prev_terms, strict=True)
    ]
    weights = static_weights(q_list)
    focus_w = pool_weights(q_set, sent_terms)
    dense = _dense(candidates, query_vector, question, embed)

    rows: list[dict[str, float]] = []
    for i, cand in enumerate(candidates):
        cand.type_spans = type_matches(kind, cand.text, q_set)
        type_score = max((m.strength for m in cand.type_spans), default=0.0)
        near = proximity(cand.text, cand.type_spans, weights, aliases)
        if kind is None:
            type_score = 0.5
            near = 0.5 * coverage(weights, sent_terms[i])
        sent_lex = lex_of(cand.text)
        context = (
            sent_lex | lex_of(cand.previous) | lex_of(cand.following) | lex_of(cand.passage.title)
        )
        novel = len(sent_terms[i] - q_set)
        f = {
            **base,
            **passage_feats[cand.hit_index],
            "dense": float(dense[i]),
            "lex": coverage(weights, sent_terms[i]),
            "lex_ctx": coverage(weights, ctx_terms[i]),
            "focus": coverage(focus_w, sent_terms[i]),
            "prev_lex": coverage(weights, prev_terms[i]),
            "next_lex": coverage(weights, next_terms[i]),
            "idf_cov": _idf_coverage(known, sent_lex),
            "ctx_idf_cov": _idf_coverage(known, context),
            "ctx_absent_idf": _absent(known, context),
            "type": type_score,
            "type_count": float(len(cand.type_spans)),
            "near": near,
            "novel": float(novel),
            "eligible": 1.0 if novel > 0 or (kind is not None and type_score > 0) else 0.0,
            "words": float(memo.count(cand.text)),
            "sent_index": float(cand.sent_index),
            "article_first": 1.0 if cand.passage.position == 0 and cand.sent_index == 0 else 0.0,
        }
        f["heuristic"] = sum(w * f[name] for name, w in _HEURISTIC.items()) + 0.05 / (
            1.0 + cand.hit_index
        )
        rows.append(f)

    for name, gap in (
        ("dense", "dense_gap"),
        ("lex_ctx", "lex_ctx_gap"),
        ("idf_cov", "idf_cov_gap"),
        ("near", "near_gap"),
        ("heuristic", "heuristic_gap"),
    ):
        best = max(r[name] for r in rows)
        for r in rows:
            r[gap] = r[name] - best
    order = np.argsort(-np.asarray([r["dense"] for r in rows]), kind="stable")
    for rank, i in enumerate(order):
        rows[int(i)]["dense_rank"] = float(rank)

    matrix = np.asarray([[r[name] for name in FEATURES] for r in rows], dtype=np.float32)
    for cand, r in zip(candidates, rows, strict=True):
        cand.features = r
    return Scored(question, kind, candidates, matrix, q_set)


def _dense(
    candidates: list[Candidate],
    query_vector: np.ndarray | None,
    question: str,
    embed: Callable[[list[str]], np.ndarray] | None,
) -> np.ndarray:
    """Cosine of each candidate to the question, embedding only what isn't stored."""
    vectors = [c.vector for c in candidates]
    missing = [i for i, v in enumerate(vectors) if v is None]
    texts = ([] if query_vector is not None else [question]) + [candidates[i].text for i in missing]
    if texts:
        if embed is None:
            raise ValueError("sentence vectors are missing and no embedder was given")
        embedded = embed(texts)
        if query_vector is None:
            query_vector, embedded = embedded[0], embedded[1:]
        for n, i in enumerate(missing):
            vectors[i] = embedded[n]
    assert query_vector is not None
    matrix = np.asarray(vectors, dtype=np.float32).reshape(len(candidates), -1)
    return np.clip(matrix @ np.asarray(query_vector, dtype=np.float32), 0.0, 1.0)


__all__ = [
    "DECISION",
    "FEATURES",
    "Scored",
    "candidate_features",
    "decision_features",
]


def decision_features(scored: Scored, probs: np.ndarray) -> tuple[int, np.ndarray]:
    """The best candidate (by the sentence model's ``probs``) and the ``DECISION`` row
    the answerability model reads: how far the best stands out, how much of the mass its
    article holds, and what the question asks that its article lacks."""
    cands = scored.candidates
    best = int(np.argmax(probs))
    b = cands[best]
    others = [float(p) for i, p in enumerate(probs) if cands[i].text != b.text]
    second = max(others, default=0.0)
    total = float(probs.sum()) or 1.0
    doc_mass = sum(
        float(p) for c, p in zip(cands, probs, strict=True) if c.passage.doc_id == b.passage.doc_id
    )
    share = probs / total
    entropy = float(-(share * np.log(np.clip(share, 1e-12, None))).sum())
    f = b.features
    row = {
        "best": float(probs[best]),
        "second": second,
        "margin": float(probs[best]) - second,
        "best_doc_mass": doc_mass / total,
        "entropy": entropy,
        "best_hit_index": f["hit_index"],
        "best_type": f["type"],
        "best_near": f["near"],
        "best_dense": f["dense"],
        "best_idf_cov": f["idf_cov"],
        "best_ctx_idf_cov": f["ctx_idf_cov"],
        "absent_idf": f["absent_idf"],
        "absent_idf_share": f["absent_idf_share"],
        "absent_numbers": f["absent_numbers"],
        "absent_country": f["absent_country"],
        "p_dense": f["p_dense"],
        "top_dense": f["p_dense"] - f["p_dense_gap"],
        "q_terms": f["q_terms"],
        "kind_none": f["kind_none"],
        "yes_no": f["yes_no"],
    }
    return best, np.asarray([row[name] for name in DECISION], dtype=np.float64)
