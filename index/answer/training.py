"""Fitting the answer model from labelled questions (``scripts/train_answerer.py``).

Needs LightGBM and scikit-learn (the ``dev`` extra); nothing on the query path imports
this module. The steps, all seeded and single-threaded so a run is reproducible:

0. ``collect_passages`` / ``fit_passages``: the passage reranker, fitted (LambdaRank) on
   the fused top 50 of every answerable training question, a passage being relevant when
   it holds the answer span; ``fold_rankers`` fits one per fold, so that every training
   question is read in the order a reranker that never saw its article gives;
1. ``collect``: run the real ``Engine``'s retrieval for every question and compute every
   candidate sentence's features, with labels (the sentence holds the answer span) and,
   per candidate, whether quoting it would answer the question;
2. ``cross_validate``: K folds grouped by article (a question's article is never in both
   the fitting and the scoring part), giving out-of-fold sentence probabilities and
   out-of-fold answerability scores for every training question;
3. ``fit``: the sentence model on all candidates, the answerability model on the
   out-of-fold decision rows (as it will meet them on new questions), and a Platt
   calibration of its scores, also from out-of-fold figures.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from index.answer.extractor import AnswerExtractor, answer_span, quote_bounds
from index.answer.features import (
    DECISION,
    FEATURES,
    Scored,
    candidate_features,
    decision_features,
    prior_idf,
)
from index.answer.model import FORMAT_VERSION, AnswerModel, Calibration, Trees
from index.answer.passages import PASSAGE_FEATURES, PassageRanker, passage_features
from index.answer.text import fold
from index.engine import Engine, clean_question
from index.lexical import tokenize as lexical_terms
from index.retriever import Retriever

SENTENCE_PARAMS = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_child_samples": 20,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "num_iterations": 300,
}
# The answerability model sees one row per question (959), so it is kept additive: stumps
# (two leaves), 50 rounds. Against 7 leaves and 150 rounds it ranks answers better on
# train's folds and on dev alike (README, Quality).
DECISION_PARAMS = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 2,
    "min_child_samples": 20,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "num_iterations": 50,
}
_FIXED = {
    "verbose": -1,
    "num_threads": 1,
    "deterministic": True,
    "force_row_wise": True,
    "use_missing": False,
    "zero_as_missing": False,
}


PASSAGE_PARAMS = {  # the sentence model's trees, ranking passages
    **SENTENCE_PARAMS,
    "objective": "lambdarank",
    "lambdarank_truncation_level": 20,
    "label_gain": [0, 1],
    "num_iterations": 200,
}
PASSAGE_DEPTH = 50  # the fused candidates the reranker orders (the retriever's default)


@dataclass(slots=True)
class RankedQuestion:
    """One question's fused candidates as the passage reranker sees them."""

    doc: str | None
    answerable: bool
    matrix: np.ndarray  # PASSAGE_FEATURES per fused candidate, in fused order
    labels: np.ndarray  # the candidate holds the answer span


@dataclass(slots=True)
class Question:
    """One labelled question as the reader saw it."""

    q: str
    answer: str | None
    doc: str | None
    kind: str
    type: str
    style: str
    matrix: np.ndarray  # candidate features
    labels: np.ndarray  # candidate holds the span
    quote_ok: np.ndarray  # quoting the candidate answers (the span is in its quote)
    passage_ids: np.ndarray  # each candidate's passage
    hit_passages: list[int] = field(default_factory=list)  # retrieval order
    hit_has_span: list[bool] = field(default_factory=list)
    scored: Scored | None = None  # kept only in memory, for decision rows


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text("utf-8").splitlines() if line]


def vocabulary_prior(tokenizer_json: Path) -> dict[str, float]:
    """The prior IDF (``prior_idf``) of every word stem of a WordPiece vocabulary, whose
    whole words are in frequency order (BERT's, as the default model ships it)."""
    vocab: dict[str, int] = json.loads(Path(tokenizer_json).read_text("utf-8"))["model"]["vocab"]
    words = sorted(
        (tid, tok) for tok, tid in vocab.items() if tok.isascii() and tok.isalpha() and len(tok) > 1
    )
    first = vocab.get("the", words[0][0] if words else 0)
    prior: dict[str, float] = {}
    for tid, tok in words:
        for stem in lexical_terms(tok):  # stopwords drop out
            prior.setdefault(stem, round(prior_idf(tid, first), 2))
    return prior


def collect_passages(
    engine: Engine, rows: Sequence[dict], *, word_idf: dict[str, float] | None = None
) -> list[RankedQuestion]:
    """The fused top ``PASSAGE_DEPTH`` of every question (no reranker), with features and
    labels: what the passage reranker is fitted on."""
    texts = [clean_question(r["q"]) for r in rows]
    vectors = engine.embedder.embed(texts)
    index = engine.index
    fused = Retriever(index, engine.embedder, candidates=PASSAGE_DEPTH)
    out = []
    for row, text, vector in zip(rows, texts, vectors, strict=True):
        hits = fused.search(text, k=PASSAGE_DEPTH, mode="hybrid", query_vector=vector)
        matrix = passage_features(text, hits, query_vector=vector, index=index, word_idf=word_idf)
        span = row.get("answer")
        labels = [span is not None and fold(span) in fold(h.passage.text) for h in hits]
        out.append(
            RankedQuestion(row.get("doc"), span is not None, matrix, np.asarray(labels, np.int8))
        )
    return out


def fit_passages(questions: Sequence[RankedQuestion], seed: int) -> Trees:
    """The passage reranker (LambdaRank) over the questions with an answer among their
    candidates (the others teach no order)."""
    usable = [q for q in questions if len(q.labels) and q.labels.any()]
    if not usable:
        raise ValueError("no question has its answer span among its candidates")
    x = np.vstack([q.matrix for q in usable])
    y = np.concatenate([q.labels for q in usable])
    booster = _fit_trees(x, y, PASSAGE_PARAMS, seed, group=[len(q.labels) for q in usable])
    return Trees.from_lightgbm(booster.dump_model())


def fold_splits(docs: Sequence[str | None], folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """K folds grouped by article (a question without one stands alone), the same for the
    reranker and the reader."""
    from sklearn.model_selection import GroupKFold

    groups = [d or f"question-{i}" for i, d in enumerate(docs)]
    n = len(groups)
    return list(GroupKFold(n_splits=folds).split(np.zeros(n), groups=groups))


def fold_rankers(questions: Sequence[RankedQuestion], *, folds: int, seed: int) -> list[Trees]:
    """For every question, a reranker fitted on the other folds only."""
    out: list[Trees | None] = [None] * len(questions)
    for train_idx, test_idx in fold_splits([q.doc for q in questions], folds):
        trees = fit_passages([questions[i] for i in train_idx], seed)
        for i in test_idx:
            out[i] = trees
    assert all(t is not None for t in out), "every question falls in one fold"
    return [t for t in out if t is not None]


def rank_figures(
    questions: Sequence[RankedQuestion], rankers: Sequence[Trees | None]
) -> dict[str, float]:
    """The share of answerable questions with the span in the top 1 and top 5 passages,
    in fused and in reranked order."""
    answerable = [(q, r) for q, r in zip(questions, rankers, strict=True) if q.answerable]
    counts = dict.fromkeys(("fused_top1", "fused_top5", "top1", "top5"), 0)
    for q, trees in answerable:
        counts["fused_top1"] += bool(q.labels[:1].any())
        counts["fused_top5"] += bool(q.labels[:5].any())
        order = (
            np.arange(len(q.labels))
            if trees is None
            else np.argsort(-trees.raw(q.matrix), kind="stable")
        )
        counts["top1"] += bool(q.labels[order[:1]].any())
        counts["top5"] += bool(q.labels[order[:5]].any())
    total = max(len(answerable), 1)
    return {k: round(v / total, 4) for k, v in counts.items()}


def collect(
    engine: Engine,
    rows: Sequence[dict],
    *,
    max_passages: int,
    depth: int = 10,
    word_idf: dict[str, float] | None = None,
    rankers: Sequence[Trees | None] | None = None,
) -> list[Question]:
    """Retrieve, read and label every question, exactly as ``Engine.ask`` would read it.
    ``rankers``: the passage reranker to order each question's candidates with (None, or
    None for a question: the fused order, whatever reranker the engine's model carries)."""
    texts = [clean_question(r["q"]) for r in rows]
    vectors = engine.embedder.embed(texts)
    index = engine.index
    out: list[Question] = []
    for i, (row, text, vector) in enumerate(zip(rows, texts, vectors, strict=True)):
        trees = rankers[i] if rankers is not None else None
        ranker = None if trees is None else PassageRanker(trees, word_idf)
        hits = Retriever(index, engine.embedder, reranker=ranker).search(
            text, k=max(depth, max_passages), mode="hybrid", query_vector=vector
        )
        scored = candidate_features(
            text,
            hits,
            index.article_text,
            query_vector=vector,
            sentence_vectors=index.sentences,
            lexical=index.lexical,
            embed=engine.embedder.embed,
            max_passages=max_passages,
            word_idf=word_idf,
        )
        span = row.get("answer")
        cands = scored.candidates
        labels = np.asarray([span is not None and fold(span) in fold(c.text) for c in cands])
        quote_ok = []
        for c in cands:
            s, e = quote_bounds(c, cands)
            quote = index.article_text(c.passage.doc_id)[s:e]
            quote_ok.append(span is not None and fold(span) in fold(quote))
        kind = row.get("kind") or ("answerable" if span is not None else "unanswerable")
        out.append(
            Question(
                q=row["q"],
                answer=span,
                doc=row.get("doc"),
                kind=kind,
                type=row.get("type") or "",
                style=row.get("style") or "",
                matrix=scored.matrix,
                labels=labels.astype(np.int8),
                quote_ok=np.asarray(quote_ok, dtype=np.int8),
                passage_ids=np.asarray([c.passage.passage_id for c in cands], dtype=np.int64),
                hit_passages=[h.passage.passage_id for h in hits],
                hit_has_span=[
                    span is not None and fold(span) in fold(h.passage.text) for h in hits
                ],
                scored=scored,
            )
        )
    return out


def _lgb():
    import lightgbm

    return lightgbm


def _fit_trees(
    x: np.ndarray, y: np.ndarray, params: dict, seed: int, group: list[int] | None = None
):
    """LightGBM on rows ``x``, seeded and single-threaded; ``group``: rows per query, for
    a ranking objective."""
    lgb = _lgb()
    data = lgb.Dataset(x, label=y, group=group, params={"verbose": -1})
    return lgb.train({**params, **_FIXED, "seed": seed}, data)


def fit_sentence(questions: Sequence[Question], seed: int) -> Trees:
    rows = [q for q in questions if len(q.matrix)]
    x = np.vstack([q.matrix for q in rows])
    y = np.concatenate([q.labels for q in rows])
    booster = _fit_trees(x, y, SENTENCE_PARAMS, seed)
    return Trees.from_lightgbm(booster.dump_model())


def decision_row(question: Question, probs: np.ndarray) -> tuple[int, np.ndarray]:
    assert question.scored is not None
    return decision_features(question.scored, probs)


# The answerability model may only grow more confident as the best sentence's score and
# lead grow, and only less as the question's rare words go missing from its article (the
# issue's near misses: "a question whose key entity or year appears nowhere in the chosen
# article should rarely be answered"), whatever the few such examples in train suggest.
MONOTONE = {
    "best": 1,
    "margin": 1,
    "absent_idf": -1,
    "absent_idf_share": -1,
    "absent_numbers": -1,
    "absent_country": -1,
}


def fit_decision(rows: np.ndarray, targets: np.ndarray, seed: int) -> Trees:
    params = {**DECISION_PARAMS, "monotone_constraints": [MONOTONE.get(f, 0) for f in DECISION]}
    booster = _fit_trees(rows, targets, params, seed)
    return Trees.from_lightgbm(booster.dump_model())


@dataclass(slots=True)
class Outcome:
    """What the reader did with one question at some model: for the figures."""

    answerable: bool
    kind: str
    type: str
    style: str
    confidence: float
    right: bool  # the best candidate's quote holds the span
    top1: bool
    top5: bool
    top10: bool
    top5_retrieval: bool
    span_given: bool = False  # a short answer was marked in the quote
    span_right: bool = False  # ... and it is (part of) the gold answer, or holds it


def outcome(question: Question, probs: np.ndarray, confidence: float, best: int) -> Outcome:
    """The reader's result for ``question``, with passages reranked by their best sentence."""
    best_of: dict[int, float] = {}
    for pid, p in zip(question.passage_ids, probs, strict=True):
        best_of[int(pid)] = max(best_of.get(int(pid), 0.0), float(p))
    order = sorted(
        range(len(question.hit_passages)),
        key=lambda i: (
            question.hit_passages[i] not in best_of,
            -best_of.get(question.hit_passages[i], 0.0),
            i,
        ),
    )
    ranked = [question.hit_has_span[i] for i in order]
    right = bool(len(question.quote_ok) and question.quote_ok[best])
    span_given = span_right = False
    if question.scored is not None and question.scored.candidates:
        cand = question.scored.candidates[best]
        span = answer_span(cand, cand.start, question.scored.q_terms)
        if span is not None:
            span_given = True
            text = fold(cand.text[span[0] : span[1]])
            gold = fold(question.answer or "\0")
            span_right = bool(text) and (gold in text or text in gold)
    return Outcome(
        answerable=question.answer is not None,
        kind=question.kind,
        type=question.type,
        style=question.style,
        confidence=confidence,
        right=right,
        top1=any(ranked[:1]),
        top5=any(ranked[:5]),
        top10=any(ranked[:10]),
        top5_retrieval=any(question.hit_has_span[:5]),
        span_given=span_given,
        span_right=span_right,
    )


def cross_validate(
    questions: Sequence[Question], *, folds: int, seed: int
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, list[int]]:
    """Out-of-fold sentence probabilities, decision rows, decision scores and best indices.

    The answerability model of each fold is fitted on the other folds' out-of-fold
    decision rows, as the final one is."""
    n = len(questions)
    splits = fold_splits([q.doc for q in questions], folds)
    probs: list[np.ndarray] = [np.zeros(0)] * n
    for train_idx, test_idx in splits:
        model = fit_sentence([questions[i] for i in train_idx], seed)
        for i in test_idx:
            probs[i] = _sigmoid(model.raw(questions[i].matrix))
    rows = np.zeros((n, len(DECISION)))
    targets = np.zeros(n)
    best = [0] * n
    for i, q in enumerate(questions):
        if len(q.matrix):
            best[i], rows[i] = decision_row(q, probs[i])
            targets[i] = q.quote_ok[best[i]]
    scores = np.full(n, -1e9)
    for train_idx, test_idx in splits:
        usable = [i for i in train_idx if len(questions[i].matrix)]
        trees = fit_decision(rows[usable], targets[usable], seed)
        for i in test_idx:
            if len(questions[i].matrix):
                scores[i] = float(trees.raw(rows[i][None, :])[0])
    return probs, rows, scores, best


def fit_calibration(scores: np.ndarray, targets: np.ndarray) -> Calibration:
    """Platt scaling of the out-of-fold answerability scores to the share answered right."""
    from sklearn.linear_model import LogisticRegression

    keep = scores > -1e8
    platt = LogisticRegression(C=1e6, max_iter=1000).fit(scores[keep, None], targets[keep])
    return Calibration(float(platt.coef_[0, 0]), float(platt.intercept_[0]))


def fit(
    questions: Sequence[Question],
    *,
    folds: int,
    seed: int,
    threshold: float = 0.5,
    manifest: dict | None = None,
    word_idf: dict[str, float] | None = None,
    passages: Trees | None = None,
) -> tuple[AnswerModel, list[Outcome]]:
    """The final model, and the cross-validated outcome of every training question.
    ``passages``: the passage reranker the questions were collected with, shipped in the
    same file."""
    probs, rows, scores, best = cross_validate(questions, folds=folds, seed=seed)
    targets = np.asarray(
        [q.quote_ok[b] if len(q.matrix) else 0 for q, b in zip(questions, best, strict=True)]
    )
    calibration = fit_calibration(scores, targets)
    outcomes = [
        outcome(q, probs[i], calibration(scores[i]) if len(q.matrix) else 0.0, best[i])
        for i, q in enumerate(questions)
    ]
    usable = [i for i, q in enumerate(questions) if len(q.matrix)]
    model = AnswerModel(
        sentence=fit_sentence(questions, seed),
        answerable=fit_decision(rows[usable], targets[usable], seed),
        calibration=calibration,
        threshold=threshold,
        manifest={
            "format_version": FORMAT_VERSION,
            "features": list(FEATURES),
            "decision_features": list(DECISION),
            "seed": seed,
            "folds": folds,
            "sentence_params": SENTENCE_PARAMS,
            "decision_params": DECISION_PARAMS,
            "decision_monotone": MONOTONE,
            **(
                {"passage_features": list(PASSAGE_FEATURES), "passage_params": PASSAGE_PARAMS}
                if passages is not None
                else {}
            ),
            **(manifest or {}),
        },
        word_idf=dict(word_idf or {}),
        passages=passages,
    )
    return model, outcomes


def apply(model: AnswerModel, questions: Iterable[Question]) -> list[Outcome]:
    """Outcomes of a fitted model on other questions (dev)."""
    extractor = AnswerExtractor(model=model)  # reads model.word_idf as the engine does
    out = []
    for q in questions:
        if not len(q.matrix):
            out.append(outcome(q, np.zeros(0), 0.0, 0))
            continue
        assert q.scored is not None
        probs = extractor.model.sentence_scores(q.matrix)
        best, row = decision_features(q.scored, probs)
        out.append(outcome(q, probs, extractor.model.confidence(row), best))
    return out


def rates(outcomes: Sequence[Outcome], threshold: float) -> dict[str, float]:
    """The evaluation's figures at a threshold, plus precision (right among answered)."""
    ans = [o for o in outcomes if o.answerable]
    una = [o for o in outcomes if not o.answerable]
    answered = [o for o in ans if o.confidence >= threshold]
    right = [o for o in answered if o.right]
    wrong_una = [o for o in una if o.confidence >= threshold]
    given = len(answered) + len(wrong_una)
    swap = [o for o in una if o.kind == "unanswerable-swap"]
    spans = [o for o in answered if o.right and o.span_given]

    def share(part: int, whole: int) -> float:
        return part / whole if whole else float("nan")

    return {
        "top1": share(sum(o.top1 for o in ans), len(ans)),
        "top5": share(sum(o.top5 for o in ans), len(ans)),
        "top10": share(sum(o.top10 for o in ans), len(ans)),
        "top5_retrieval": share(sum(o.top5_retrieval for o in ans), len(ans)),
        "quote_has_span": share(len(right), len(ans)),
        "answered": share(len(answered), len(ans)),
        "declined": share(len(una) - len(wrong_una), len(una)),
        "swap_declined": share(sum(o.confidence < threshold for o in swap), len(swap)),
        "precision": share(len(right), given),
        "span_marked": share(len(spans), len(right)),
        "span_right": share(sum(o.span_right for o in spans), len(spans)),
    }


def reliability(outcomes: Sequence[Outcome], bins: Sequence[float]) -> list[tuple[str, int, float]]:
    """Per confidence bin: how many answers, and the share right (calibration check)."""
    out = []
    for lo, hi in itertools.pairwise(bins):
        inside = [
            o for o in outcomes if lo <= o.confidence < hi or (hi == 1.0 and o.confidence == 1.0)
        ]
        right = sum(o.right for o in inside)
        out.append(
            (f"{lo:.1f}-{hi:.1f}", len(inside), right / len(inside) if inside else float("nan"))
        )
    return out


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))
