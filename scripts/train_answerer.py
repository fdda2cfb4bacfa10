"""Fit the answer model from ../shared/eval/train.jsonl; choose its threshold on dev.

Usage (after indexing the shared corpus, see the README's "Quality" section)::

    export NEWSDESK_INDEX_DIR=var/shared-index
    .venv/bin/python scripts/train_answerer.py [--shared ../shared] [--seed 0] [--folds 5]
    .venv/bin/python scripts/train_answerer.py --passages 5 --threshold 0.40  # the shipped

It drives the real ``Engine`` (the configured index, embedder and hybrid retriever).
With ``--rerank`` it first fits the passage reranker on the fused top 50 of every
training question, one per fold and one on all of train, prints its top-1 / top-5
against the fused order, and reads each training question in its fold's reranked order
and each dev question in the final reranker's (the shipped model has no reranker: see
the README's "Quality" section). Then it collects every candidate sentence of every
question, fits the sentence and answerability models with LightGBM (seeded,
single-threaded: the same data gives the same file),
prints cross-validated figures on train (folds grouped by article) and figures on dev
over a sweep of thresholds, picks the threshold on dev, and writes
``index/answer/reader.json`` with its manifest (training data SHA-256, feature lists,
parameters, seed, the train-CV and dev figures at the chosen threshold).

Without ``--threshold``, the threshold is the lowest at which at most ``--max-wrong`` of
the answers given on dev are wrong (a quote that does not hold the answer, or an answer
where the archive has none): a wrong quote with a source does more harm than "not in the
archive".
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from index.answer import training
from index.answer.model import DEFAULT_MODEL, AnswerModel, save_model
from index.embedders.models import default_model_dir
from index.files import sha256_file
from newsdesk.services import open_engine
from newsdesk.settings import Settings

THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.0, 0.96, 0.05))
BINS = (0.0, 0.2, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
COLUMNS = (
    "top5",
    "quote_has_span",
    "answered",
    "declined",
    "swap_declined",
    "precision",
    "span_marked",
    "span_right",
)


def table(name: str, outcomes: Sequence[training.Outcome], thresholds: Sequence[float]) -> str:
    lines = [f"{name}: threshold " + " ".join(f"{c:>14}" for c in COLUMNS)]
    for t in thresholds:
        r = training.rates(outcomes, t)
        lines.append(f"{'':{len(name)}}  {t:9.2f} " + " ".join(f"{r[c]:14.3f}" for c in COLUMNS))
    return "\n".join(lines)


def by_group(outcomes: Sequence[training.Outcome], threshold: float, attr: str) -> str:
    values = sorted({getattr(o, attr) for o in outcomes if getattr(o, attr)})
    lines = []
    for v in values:
        part = [o for o in outcomes if getattr(o, attr) == v]
        r = training.rates(part, threshold)
        n_ans = sum(o.answerable for o in part)
        if n_ans:
            lines.append(
                f"  {attr}={v:<24} n={n_ans:4} quote={r['quote_has_span']:.3f} "
                f"answered={r['answered']:.3f} top5={r['top5']:.3f}"
            )
        else:
            lines.append(f"  {attr}={v:<24} n={len(part):4} declined={r['declined']:.3f}")
    return "\n".join(lines)


def choose_threshold(outcomes: Sequence[training.Outcome], max_wrong: float) -> float:
    for t in np.arange(0.0, 1.0, 0.01):
        r = training.rates(outcomes, float(t))
        if 1.0 - r["precision"] <= max_wrong:
            return round(float(t), 2)
    return 0.99


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = Path(__file__).resolve().parents[1]
    parser.add_argument("--shared", type=Path, default=root.parent / "shared")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--passages", type=int, default=8, help="passages read per question")
    parser.add_argument("--max-wrong", type=float, default=0.15)
    parser.add_argument("--threshold", type=float, help="use this threshold instead")
    parser.add_argument("--out", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--cache", type=Path, help="pickle of collected candidates (reused)")
    parser.add_argument(
        "--rerank", action="store_true", help="fit the passage reranker too (opt-in: README)"
    )
    args = parser.parse_args(argv)

    train_path = args.shared / "eval" / "train.jsonl"
    dev_path = args.shared / "eval" / "dev.jsonl"
    settings = Settings()
    engine = open_engine(settings)
    started = time.perf_counter()
    vocabulary = default_model_dir(settings.data_dir) / "tokenizer.json"
    word_idf = training.vocabulary_prior(vocabulary)
    train_rows, dev_rows = training.read_rows(train_path), training.read_rows(dev_path)
    ranker = None
    rankers: tuple[list | None, list | None] = (None, None)  # None: the fused order
    passage_figures: dict[str, dict[str, float]] = {}
    if args.rerank:
        ranked_train, ranked_dev = (
            training.collect_passages(engine, rows, word_idf=word_idf)
            for rows in (train_rows, dev_rows)
        )
        folds = training.fold_rankers(ranked_train, folds=args.folds, seed=args.seed)
        ranker = training.fit_passages(ranked_train, args.seed)
        dev_rankers = [ranker] * len(dev_rows)
        rankers = (list(folds), dev_rankers)
        passage_figures = {
            "train_cv": training.rank_figures(ranked_train, folds),
            "dev": training.rank_figures(ranked_dev, dev_rankers),
        }
        for name, figures in passage_figures.items():
            print(
                f"passage reranker, {name}: top-1 {figures['fused_top1']:.3f} -> "
                f"{figures['top1']:.3f}, top-5 {figures['fused_top5']:.3f} -> "
                f"{figures['top5']:.3f} (fused -> reranked)"
            )
    if args.cache and args.cache.exists():
        train, dev = pickle.loads(args.cache.read_bytes())
    else:
        train, dev = (
            training.collect(
                engine, rows, max_passages=args.passages, word_idf=word_idf, rankers=order
            )
            for rows, order in zip((train_rows, dev_rows), rankers, strict=True)
        )
        if args.cache:
            args.cache.write_bytes(pickle.dumps((train, dev)))
    rows = sum(len(q.matrix) for q in train)
    print(
        f"collected {len(train)} train and {len(dev)} dev questions, {rows} train candidates "
        f"({time.perf_counter() - started:.0f} s)",
        file=sys.stderr,
    )

    manifest = {
        "train_sha256": sha256_file(train_path),
        "dev_sha256": sha256_file(dev_path),
        "passages_read": args.passages,
        "index_version": engine.index.version,
        "embedding_model": engine.embedder.name,
        "word_idf_source": f"{engine.embedder.name} tokenizer.json vocabulary (frequency order)",
        **({"passage_figures": passage_figures} if passage_figures else {}),
    }
    model, cv = training.fit(
        train,
        folds=args.folds,
        seed=args.seed,
        manifest=manifest,
        word_idf=word_idf,
        passages=ranker,
    )
    dev_out = training.apply(model, dev)
    print(table("train-cv", cv, THRESHOLDS))
    print(table("dev", dev_out, THRESHOLDS))
    threshold = (
        args.threshold if args.threshold is not None else choose_threshold(dev_out, args.max_wrong)
    )
    print(f"\nthreshold {threshold} (at most {args.max_wrong:.0%} wrong answers on dev)")
    for name, out in (("train-cv", cv), ("dev", dev_out)):
        print(f"\n{name} at {threshold}:")
        print(by_group(out, threshold, "kind"))
        print(by_group(out, threshold, "type"))
        print(by_group(out, threshold, "style"))
        print("  calibration (confidence bin, answers given, share right):")
        given = [o for o in out if o.confidence >= 0.0]
        for label, n, share in training.reliability(given, BINS):
            print(f"    {label}  {n:4}  {share:.3f}")

    figures = {
        name: {k: (None if v != v else round(v, 4)) for k, v in rates.items()}  # NaN: none
        for name, rates in (
            ("train_cv", training.rates(cv, threshold)),
            ("dev", training.rates(dev_out, threshold)),
        )
    }
    final = AnswerModel(
        model.sentence,
        model.answerable,
        model.calibration,
        threshold,
        {**model.manifest, "threshold": threshold, "figures": figures},
        model.word_idf,
        model.passages,
    )
    save_model(final, args.out)
    print(f"\nwrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
