"""Experiment (issue #9): where does the sentence choice stop, and do the obvious levers move
it? Not part of the product; it prints figures, asserts nothing.

    .venv/bin/python scripts/train_answerer.py --passages 5 --cache var/answer-cache.pkl
    NEWSDESK_INDEX_DIR=var/shared-index \\
        .venv/bin/python scripts/experiment_reader_limits.py --cache var/answer-cache.pkl

For answerable questions it prints the share whose chosen sentence's quote holds the
answer span ("top-1"; train cross-validated over 5 folds grouped by article, dev from a
model fitted on all of train), the same among the first 2 and 3, and the ceiling: some
candidate of the five passages read holds it. Then what each lever gives:

* the sentence trees' objective: binary (shipped), LambdaRank, XE-NDCG;
* bagging: the mean of the trees of several seeds;
* six more figures per candidate from the stored sentence vectors (``vector_columns``);
* soft word coverage: each word embedded alone, question words matched to the sentence's
  by cosine (``word_columns``);
* a query adapter fitted on train: the question's MiniLM vector mapped by ``I + B A``
  (rank 32) plus a learned sentence direction, scored against the stored sentence vectors
  with a listwise softmax; against the plain cosine, both alone (no trees).

Measured 2026-12-02 on an Intel Xeon (AVX-512 bf16 + AMX, 2 cores), see README, Quality.
"""

from __future__ import annotations

import argparse
import pickle
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from index.answer import training  # noqa: E402
from index.answer.training import Question  # noqa: E402
from index.engine import clean_question  # noqa: E402
from index.sentences import wordset  # noqa: E402
from newsdesk.services import open_engine  # noqa: E402
from newsdesk.settings import Settings  # noqa: E402

Scores = list[np.ndarray]


def ranks(questions: Sequence[Question], scores: Scores) -> list[int | None]:
    """Per answerable question: the place of the first candidate whose quote holds the
    span in the order of ``scores`` (None: no candidate holds it)."""
    out: list[int | None] = []
    for q, s in zip(questions, scores, strict=True):
        if q.answer is None:
            continue
        order = np.argsort(-s, kind="stable") if len(s) else np.zeros(0, dtype=int)
        hits = [k for k, i in enumerate(order) if q.quote_ok[i]]
        out.append(hits[0] if hits else None)
    return out


def top(questions: Sequence[Question], scores: Scores, k: int = 1) -> float:
    found = ranks(questions, scores)
    return sum(r is not None and r < k for r in found) / len(found)


def out_of_fold(
    train: Sequence[Question],
    dev: Sequence[Question],
    fit: Callable[[list[int]], Callable[[int, bool], np.ndarray]],
) -> tuple[Scores, Scores]:
    """Cross-validated train scores and dev scores of a model fitted on all of train.
    ``fit(indices)`` returns ``score(i, is_dev)``."""
    oof: Scores = [np.zeros(0)] * len(train)
    for fit_idx, test_idx in training.fold_splits([q.doc for q in train], 5):
        score = fit([int(i) for i in fit_idx])
        for i in test_idx:
            oof[i] = score(int(i), False)
    score = fit(list(range(len(train))))
    return oof, [score(i, True) for i in range(len(dev))]


def tree_scores(
    train, dev, params: dict, seed: int, extra: tuple[list, list] | None = None
) -> tuple[Scores, Scores]:
    """The trees' scores; ``extra``: more columns per question (train's, dev's)."""
    ranking = params["objective"] != "binary"

    def matrix(i: int, is_dev: bool) -> np.ndarray:
        q = (dev if is_dev else train)[i]
        return q.matrix if extra is None else np.hstack([q.matrix, extra[is_dev][i]])

    def fit(idx: list[int]):
        idx = [i for i in idx if len(train[i].matrix)]
        if ranking:  # a group without a positive teaches a ranker nothing
            idx = [i for i in idx if train[i].labels.any()]
        booster = training._fit_trees(
            np.vstack([matrix(i, False) for i in idx]),
            np.concatenate([train[i].labels for i in idx]),
            params,
            seed,
            group=[len(train[i].matrix) for i in idx] if ranking else None,
        )

        def score(i: int, is_dev: bool) -> np.ndarray:
            q = (dev if is_dev else train)[i]
            if not len(q.matrix):
                return np.zeros(0)
            return booster.predict(matrix(i, is_dev), raw_score=True)

        return score

    return out_of_fold(train, dev, fit)


def vectors(engine, questions: Sequence[Question]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each question's MiniLM vector and its candidates' sentence vectors."""
    qv = engine.embedder.embed([clean_question(q.q) for q in questions])
    out = []
    for q, v in zip(questions, qv, strict=True):
        cands = q.scored.candidates if q.scored is not None else []
        rows = [c.vector for c in cands]
        missing = [i for i, r in enumerate(rows) if r is None]
        if missing:
            embedded = engine.embedder.embed([cands[i].text for i in missing])
            for i, r in zip(missing, embedded, strict=True):
                rows[i] = r
        matrix = np.asarray(rows, dtype=np.float32).reshape(len(cands), -1)
        out.append((np.asarray(v, dtype=np.float32), matrix))
    return out


def vector_columns(question: Question, qv: np.ndarray, sv: np.ndarray) -> np.ndarray:
    """Six more figures per candidate from the stored vectors: its likeness to its
    passage's mean sentence, its neighbours' cosines to the question, its place among its
    passage's sentences by cosine, its likeness to its article's first candidate, and its
    cosine less its passage's best."""
    cands = question.scored.candidates if question.scored is not None else []
    cos = sv @ qv
    of_passage: dict[int, list[int]] = {}
    for i, c in enumerate(cands):
        of_passage.setdefault(c.passage.passage_id, []).append(i)
    rows = []
    for i, c in enumerate(cands):
        same = of_passage[c.passage.passage_id]
        at = same.index(i)
        centre = sv[same].mean(0)
        centre /= np.linalg.norm(centre) or 1.0
        lead = min((j for j in range(len(cands)) if cands[j].passage.doc_id == c.passage.doc_id),
                   key=lambda j: cands[j].start)  # fmt: skip
        rows.append(
            [
                float(sv[i] @ centre),
                float(cos[same[at - 1]]) if at > 0 else 0.0,
                float(cos[same[at + 1]]) if at + 1 < len(same) else 0.0,
                float(sum(cos[j] > cos[i] for j in same)),
                float(sv[i] @ sv[lead]),
                float(cos[i] - max(cos[j] for j in same)),
            ]
        )
    return np.asarray(rows, dtype=np.float32).reshape(len(cands), 6)


_WORD = re.compile(r"[A-Za-z][A-Za-z'-]+")
_STOP = wordset(
    """the a an of to in on for and or is are was were be been by with at from that this it
    its as has have had did does do what who when where which why how many much"""
)


def _words(text: str) -> list[str]:
    return [w for w in (m.lower() for m in _WORD.findall(text)) if w not in _STOP]


def word_columns(engine, train, dev) -> tuple[list, list]:
    """Soft word coverage per candidate (paraphrase: "hurt" and "injured"): every word
    embedded alone by MiniLM; for each question word, its best cosine to a word of the
    sentence; the mean over the question's words, and over those the sentence lacks."""
    vocab = sorted(
        {w for qs in (train, dev) for q in qs for w in _words(q.q)}
        | {
            w
            for qs in (train, dev)
            for q in qs
            for c in (q.scored.candidates if q.scored is not None else [])
            for w in _words(c.text)
        }
    )
    vec = engine.embedder.embed(vocab)
    at = {w: i for i, w in enumerate(vocab)}

    def columns(q: Question) -> np.ndarray:
        cands = q.scored.candidates if q.scored is not None else []
        asked = list(dict.fromkeys(_words(clean_question(q.q))))
        out = np.zeros((len(cands), 2), dtype=np.float32)
        if not asked:
            return out
        qv = vec[[at[w] for w in asked]]
        for i, c in enumerate(cands):
            said = set(_words(c.text))
            if not said:
                continue
            best = (qv @ vec[[at[w] for w in said]].T).max(1)
            lacking = np.asarray([w not in said for w in asked])
            out[i] = [best.mean(), (best * lacking).sum() / max(1, lacking.sum())]
        return out

    return [columns(q) for q in train], [columns(q) for q in dev]


def adapter_scores(train, dev, vec_train, vec_dev, *, rank: int, epochs: int, seed: int):
    import torch

    torch.set_num_threads(2)

    def fit(idx: list[int]):
        g = torch.Generator().manual_seed(seed)
        items = [
            (torch.tensor(vec_train[i][0]), torch.tensor(vec_train[i][1]), train[i].labels > 0)
            for i in idx
            if len(train[i].labels) and train[i].labels.any()
        ]
        dim = items[0][0].shape[0]
        a = (torch.randn(rank, dim, generator=g) * 0.01).requires_grad_()
        b = torch.zeros(dim, rank, requires_grad=True)
        u = torch.zeros(dim, requires_grad=True)
        log_t = torch.tensor(3.0, requires_grad=True)
        opt = torch.optim.Adam([a, b, u, log_t], lr=3e-3)
        for _ in range(epochs):
            perm = torch.randperm(len(items), generator=g).tolist()
            for start in range(0, len(items), 64):
                loss = torch.zeros(())
                for k in perm[start : start + 64]:
                    qv, sv, pos = items[k]
                    s = torch.exp(log_t) * (sv @ (qv + b @ (a @ qv))) + sv @ u
                    loss = loss + torch.logsumexp(s, 0) - torch.logsumexp(s[torch.tensor(pos)], 0)
                loss = loss / 64 + 1e-3 * ((a**2).sum() + (b**2).sum() + (u**2).sum())
                opt.zero_grad()
                loss.backward()
                opt.step()
        a_, b_, u_, t_ = (x.detach().numpy() for x in (a, b, u, torch.exp(log_t)))

        def score(i: int, is_dev: bool) -> np.ndarray:
            qv, sv = (vec_dev if is_dev else vec_train)[i]
            return t_ * (sv @ (qv + b_ @ (a_ @ qv))) + sv @ u_

        return score

    return out_of_fold(train, dev, fit)


def line(name: str, figures: list[tuple[float, float]]) -> None:
    f = np.asarray(figures)
    print(
        f"{name:34s} train-cv {f[:, 0].mean():.3f} ({', '.join(f'{x:.3f}' for x in f[:, 0])})"
        f"   dev {f[:, 1].mean():.3f} ({', '.join(f'{x:.3f}' for x in f[:, 1])})",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True, help="train_answerer.py --cache")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    train, dev = pickle.loads(args.cache.read_bytes())
    seeds = range(args.seeds)
    started = time.time()

    ceiling = [
        top(qs, [q.quote_ok.astype(float) if len(q.quote_ok) else np.zeros(0) for q in qs], 10**6)
        for qs in (train, dev)
    ]
    print(f"ceiling (a candidate holds the span): train {ceiling[0]:.3f}, dev {ceiling[1]:.3f}")

    base = training.SENTENCE_PARAMS
    objectives = {
        "binary (shipped)": base,
        "lambdarank": {**base, "objective": "lambdarank", "label_gain": [0, 1]},
        "xendcg": {**base, "objective": "rank_xendcg"},
    }
    shipped: list[tuple[Scores, Scores]] = []
    for name, params in objectives.items():
        runs = [tree_scores(train, dev, params, seed) for seed in seeds]
        if name.startswith("binary"):
            shipped = runs
            for k in (1, 2, 3):
                line(f"trees, top-{k}", [(top(train, o, k), top(dev, d, k)) for o, d in runs])
        else:
            line(f"trees {name}, top-1", [(top(train, o), top(dev, d)) for o, d in runs])

    def mean(parts: list[Scores]) -> Scores:
        return [sum(p[i] for p in parts) / len(parts) for i in range(len(parts[0]))]

    bagged_train = mean([o for o, _ in shipped])
    bagged_dev = mean([d for _, d in shipped])
    bagged = [(top(train, bagged_train), top(dev, bagged_dev))]
    line(f"trees, {len(shipped)} seeds bagged, top-1", bagged)

    engine = open_engine(Settings())
    vec_train, vec_dev = vectors(engine, train), vectors(engine, dev)
    cosine = [[v[1] @ v[0] for v in vecs] for vecs in (vec_train, vec_dev)]
    extra = tuple(
        [vector_columns(q, qv, sv) for q, (qv, sv) in zip(qs, vecs, strict=True)]
        for qs, vecs in ((train, vec_train), (dev, vec_dev))
    )
    runs = [tree_scores(train, dev, base, seed, extra) for seed in seeds]
    line("trees + 6 vector figures, top-1", [(top(train, o), top(dev, d)) for o, d in runs])
    words = word_columns(engine, train, dev)
    runs = [tree_scores(train, dev, base, seed, words) for seed in seeds]
    line("trees + soft word coverage, top-1", [(top(train, o), top(dev, d)) for o, d in runs])
    line("MiniLM cosine alone, top-1", [(top(train, cosine[0]), top(dev, cosine[1]))])
    runs = [
        adapter_scores(train, dev, vec_train, vec_dev, rank=32, epochs=20, seed=seed)
        for seed in seeds
    ]
    line("query adapter alone, top-1", [(top(train, o), top(dev, d)) for o, d in runs])
    print(f"({time.time() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
