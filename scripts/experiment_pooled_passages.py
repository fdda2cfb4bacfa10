"""Experiment (issue #13): passage vectors pooled from the stored sentence vectors, so that
a build would embed each sentence once and no passage at all. Not part of the product; it
prints figures, asserts nothing.

    NEWSDESK_INDEX_DIR=var/shared-index .venv/bin/python scripts/experiment_pooled_passages.py

It loads the index (the shared corpus, built with the default ``separate`` sentence
vectors), replaces each passage's vector in memory by the L2-normalised mean of its
sentences' vectors (``mean``), the same weighted by sentence length (``wmean``), or either
plus ``a`` times the title's vector (``+t<a>``; titles embedded here), and runs the real
evaluation (``index.evaluation.evaluate``: dense and hybrid, the shipped reader) on
train and dev. ``base`` is the index as built.

Measured 2026-12-02, Intel Xeon (AMX), 2 cores (hybrid top-5, dev / train): base 0.915 /
0.962; mean 0.887 / 0.931; wmean 0.873 / 0.936; mean+t0.5 0.887 / 0.944; wmean+t0.5
0.873 / 0.952; wmean+t0.3 0.873 / 0.948. Every variant ranks worse: not adopted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from index.ann.faiss_store import FaissStore  # noqa: E402
from index.evaluation import evaluate, read_questions  # noqa: E402
from newsdesk.services import open_engine  # noqa: E402
from newsdesk.settings import Settings  # noqa: E402


def normalised(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-9)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    parser.add_argument(
        "variants",
        nargs="*",
        default=["base", "mean", "wmean", "mean+t0.5", "wmean+t0.5", "wmean+t0.3"],
    )
    args = parser.parse_args()
    engine = open_engine(Settings())
    index = engine.index
    if index.sentences is None:
        print("this index has no sentence vectors", file=sys.stderr)
        return 2
    base = np.asarray(index.vector_matrix(), dtype=np.float32).copy()
    spans = index.sentences.spans
    vectors = np.asarray(index.sentences.vectors, dtype=np.float32)
    lengths = (spans[:, 2] - spans[:, 1]).astype(np.float32)
    pooled = {"mean": np.zeros_like(base), "wmean": np.zeros_like(base)}
    np.add.at(pooled["mean"], spans[:, 0], vectors)
    np.add.at(pooled["wmean"], spans[:, 0], vectors * lengths[:, None])
    titles = sorted({p.title for p in index.passages})
    title_vector = dict(zip(titles, engine.embedder.embed(titles), strict=True))
    by_title = np.stack([title_vector[p.title] for p in index.passages]).astype(np.float32)

    def variant(name: str) -> np.ndarray:
        if name == "base":
            return base
        kind, _, weight = name.partition("+t")
        matrix = normalised(pooled[kind])
        return normalised(matrix + float(weight) * by_title) if weight else matrix

    questions = {s: read_questions(args.shared / "eval" / f"{s}.jsonl") for s in ("dev", "train")}
    for name in args.variants:
        matrix = variant(name)
        store = FaissStore.flat(matrix.shape[1])
        store.add(np.arange(len(matrix), dtype=np.int64), matrix)
        index.vectors = store
        index._matrix = matrix
        cosine = (matrix * base).sum(axis=1)
        print(f"{name}: cosine to the built vectors {cosine.mean():.3f} (min {cosine.min():.3f})")
        for split, rows in questions.items():
            figures = {}
            for scores in evaluate(engine, rows, modes=("dense", "hybrid")):
                for key in ("top1", "top5", "top10", "quote_has_span", "declined"):
                    figures[f"{scores.mode}.{key}"] = round(scores.rate(key), 3)
            print(f"  {split}: {json.dumps(figures)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
