"""Calibrate the answer extractor's threshold on the dev questions with the real model.

Usage::

    .venv/bin/python scripts/calibrate_answers.py [--shared ../shared] \
        [--model /tmp/minilm/all-MiniLM-L6-v2] [--details]

It loads the shared corpus with the project's loader, cuts passages with the
project's passage builder, ranks them with BM25 + dense cosine fused by reciprocal
rank (as the engine's hybrid retriever does; passage vectors are cached under
/tmp/newsdesk-calibration), and runs ``AnswerExtractor`` in two settings:

``gold``  the gold article's passages plus the 4 best passages of other articles,
          ordered by the fused rank (extraction in isolation from retrieval misses);
``full``  the top 10 fused hits of the whole corpus (what the engine sees); the only
          setting for unanswerable questions.

For a sweep of thresholds it prints: answerable questions answered, answered with a
quote holding the gold span (case-insensitive, curly quotes folded), and unanswerable
questions declined. Needs ../shared (research data; never copied into the project).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from corpus.loaders import load_corpus
from index.answer import AnswerExtractor
from index.embedders.base import Embedder, normalise
from index.lexical import LexicalIndex
from index.passages import passage_spans
from index.types import Hit, Passage

CACHE = Path("/tmp/newsdesk-calibration")
THRESHOLDS = (0.0, 0.45, 0.50, 0.52, 0.54, 0.56, 0.58, 0.60, 0.62, 0.65, 0.70)
_FOLD = str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"'})


def fold(text: str) -> str:
    return text.translate(_FOLD).lower()


class LocalMiniLM(Embedder):
    """The real model, loaded from a local folder (never downloaded)."""

    def __init__(self, path: str) -> None:
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(path, device="cpu", local_files_only=True)
        self.name = Path(path).name
        self.dimension = 384
        self.fingerprint = f"local-{self.name}"

    def embed(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self._model.encode(
            list(texts), batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False
        )
        return normalise(vectors)


@dataclass
class Result:
    q: str
    answer: str | None
    setting: str
    confidence: float
    quote: str
    highlight: str
    span_in_hits: bool


def build(shared: Path, embedder: LocalMiniLM):
    loaded = load_corpus([shared / "corpus"])
    articles = {a.doc_id: a for a in loaded.articles}
    passages: list[Passage] = []
    for article in loaded.articles:
        for span in passage_spans(article):
            passages.append(
                Passage(
                    passage_id=len(passages),
                    doc_id=article.doc_id,
                    title=article.title,
                    text=article.text[span.start : span.end],
                    start=span.start,
                    position=len(passages),
                )
            )
    texts = [p.embedding_text() for p in passages]
    digest = hashlib.sha256("\0".join(texts).encode()).hexdigest()[:16]
    cache = CACHE / f"{embedder.fingerprint}-{digest}.npy"
    if cache.exists():
        vectors = np.load(cache)
    else:
        print(f"embedding {len(texts)} passages (cached in {cache}) ...", file=sys.stderr)
        vectors = embedder.embed(texts, batch_size=64)
        CACHE.mkdir(parents=True, exist_ok=True)
        np.save(cache, vectors)
    return articles, passages, vectors, LexicalIndex.build(texts)


def fused_ranking(
    question: str, qvec: np.ndarray, vectors: np.ndarray, lexical: LexicalIndex, depth: int = 50
) -> list[tuple[int, float]]:
    cos = vectors @ qvec
    dense = np.argsort(-cos)[:depth]
    fused: dict[int, float] = {}
    for rank, i in enumerate(dense, 1):
        fused[int(i)] = fused.get(int(i), 0.0) + 1.0 / (60 + rank)
    for rank, (i, _) in enumerate(lexical.search(question, depth), 1):
        fused[i] = fused.get(i, 0.0) + 1.0 / (60 + rank)
    return sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared"
    )
    parser.add_argument("--model", default="/tmp/minilm/all-MiniLM-L6-v2")
    parser.add_argument("--details", action="store_true", help="print every question's result")
    parser.add_argument("--dump", type=Path, help="write every candidate's features (JSON Lines)")
    args = parser.parse_args(argv)

    embedder = LocalMiniLM(args.model)
    articles, passages, vectors, lexical = build(args.shared, embedder)
    rows = [json.loads(line) for line in (args.shared / "eval/dev.jsonl").open() if line.strip()]
    qvecs = embedder.embed([r["q"] for r in rows])
    extractor = AnswerExtractor(embedder, threshold=0.0)

    def article_text(doc_id: str) -> str:
        return articles[doc_id].text

    results: list[Result] = []
    dump = args.dump.open("w") if args.dump else None
    for row, qvec in zip(rows, qvecs, strict=True):
        q, span = row["q"], row["answer"]
        ranking = fused_ranking(q, qvec, vectors, lexical, depth=len(passages))
        settings = {"full": [i for i, _ in ranking[:10]]}
        if span is not None:
            gold = [i for i, _ in ranking if passages[i].doc_id == row["doc"]]
            others = [i for i, _ in ranking if passages[i].doc_id != row["doc"]][:4]
            chosen = set(gold) | set(others)
            settings["gold"] = [i for i, _ in ranking if i in chosen]
        for setting, ids in settings.items():
            hits = [Hit(passages[i], 0.0, r) for r, i in enumerate(ids, 1)]
            answer = extractor.extract(q, hits, article_text)
            if dump is not None:
                for cand in extractor.score_sentences(q, hits, article_text):
                    has = span is not None and fold(span) in fold(cand.text)
                    record = {
                        "q": q,
                        "setting": setting,
                        "answerable": span is not None,
                        "has_span": has,
                        "text": cand.text,
                        "eligible": cand.eligible,
                        "hit": cand.hit_index,
                        "score": cand.score,
                        **cand.features,
                    }
                    dump.write(json.dumps(record) + "\n")
            read = hits[: extractor.max_passages]
            in_hits = span is not None and any(fold(span) in fold(h.passage.text) for h in read)
            results.append(
                Result(q, span, setting, answer.confidence, answer.quote, answer.highlight, in_hits)
            )
            if args.details:
                ok = span is not None and fold(span) in fold(answer.quote)
                mark = "ok " if ok else ("-- " if span is None else "XX ")
                print(f"{mark}{setting:4} {answer.confidence:.3f} {q!r} -> {span!r}")
                print(f"        hl={answer.highlight!r} quote={answer.quote[:160]!r}")

    for setting in ("gold", "full"):
        ans = [r for r in results if r.setting == setting and r.answer is not None]
        una = [r for r in results if r.setting == setting and r.answer is None]
        reach = sum(r.span_in_hits for r in ans)
        print(f"\nsetting={setting}: {len(ans)} answerable ({reach} with the span in the passages")
        print(f"read), {len(una)} unanswerable")
        print("threshold  answered  quote-has-span  precision  unanswerable-declined")
        for t in THRESHOLDS:
            answered = [r for r in ans if r.confidence >= t]
            good = [r for r in answered if fold(r.answer or "") in fold(r.quote)]
            declined = [r for r in una if r.confidence < t]
            prec = len(good) / len(answered) if answered else 0.0
            dec = f"{len(declined) / len(una):6.1%}" if una else "   n/a"
            print(
                f"{t:9.2f}  {len(answered) / len(ans):8.1%}  {len(good) / len(ans):14.1%}"
                f"  {prec:9.1%}  {dec}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
