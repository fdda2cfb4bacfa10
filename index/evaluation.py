"""Retrieval and answer evaluation over a JSONL of questions with verbatim answer spans."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from index.engine import Engine, clean_question
from index.errors import NewsdeskError
from index.retriever import MODES, Mode

_FOLD = str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"'})


def fold(text: str) -> str:
    """Case-fold and straighten curly quotes, as the dev set's comparison asks."""
    return text.translate(_FOLD).lower()


@dataclass(frozen=True, slots=True)
class EvalQuestion:
    q: str
    answer: str | None
    doc: str | None = None


def read_questions(path: Path) -> list[EvalQuestion]:
    questions = []
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            questions.append(EvalQuestion(row["q"], row.get("answer"), row.get("doc")))
        except (ValueError, KeyError, TypeError) as exc:
            raise NewsdeskError(f"{path}:{lineno} is not a question line ({exc}).") from exc
    if not questions:
        raise NewsdeskError(f"{path} holds no questions.")
    return questions


@dataclass(slots=True)
class ModeScores:
    mode: str
    answerable: int = 0
    unanswerable: int = 0
    top1: int = 0
    top5: int = 0
    top10: int = 0
    quote_has_span: int = 0
    answered: int = 0
    declined: int = 0
    details: list[dict] = field(default_factory=list)

    def rate(self, name: str) -> float:
        total = self.unanswerable if name == "declined" else self.answerable
        return getattr(self, name) / total if total else 0.0


def evaluate(
    engine: Engine, questions: Iterable[EvalQuestion], modes: Iterable[Mode] = MODES
) -> list[ModeScores]:
    questions = list(questions)
    vectors = engine.embedder.embed([clean_question(q.q) for q in questions])
    results = []
    for mode in modes:
        scores = ModeScores(mode)
        for question, vector in zip(questions, vectors, strict=True):
            text = clean_question(question.q)
            hits = engine.retriever.search(text, k=10, mode=mode, query_vector=vector)
            answer = engine.answer_from(text, hits, vector)
            detail = {
                "q": question.q,
                "answer": question.answer,
                "answered": answer.answered,
                "confidence": round(answer.confidence, 4),
                "quote": answer.quote,
            }
            if question.answer is None:
                scores.unanswerable += 1
                scores.declined += not answer.answered
            else:
                span = fold(question.answer)
                found = [span in fold(h.passage.text) for h in hits]
                scores.answerable += 1
                scores.top1 += any(found[:1])
                scores.top5 += any(found[:5])
                scores.top10 += any(found[:10])
                scores.answered += answer.answered
                good = answer.answered and span in fold(answer.quote)
                scores.quote_has_span += good
                detail.update(top1=any(found[:1]), top5=any(found[:5]), quote_ok=good)
            scores.details.append(detail)
        results.append(scores)
    return results


ROWS = (
    ("top-1 span in passages", "top1"),
    ("top-5 span in passages", "top5"),
    ("top-10 span in passages", "top10"),
    ("quote contains span", "quote_has_span"),
    ("answerable answered", "answered"),
    ("unanswerable declined", "declined"),
)


def format_table(results: list[ModeScores]) -> str:
    head = f"{'metric':<26}" + "".join(f"{r.mode:>10}" for r in results)
    lines = [head, "-" * len(head)]
    for label, name in ROWS:
        lines.append(f"{label:<26}" + "".join(f"{r.rate(name):>10.3f}" for r in results))
    if results:
        r = results[0]
        lines.append(f"({r.answerable} answerable and {r.unanswerable} unanswerable questions)")
    return "\n".join(lines)
