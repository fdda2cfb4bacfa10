"""Retrieval and answer evaluation over a JSONL of questions with verbatim answer spans."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from index.answer import AnswerExtractor
from index.answer.text import fold
from index.engine import Engine, clean_question
from index.errors import NewsdeskError
from index.retriever import MODES, Mode


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
    """One retrieval mode's figures. Passages are counted in the order the answer reader
    leaves them (the read passages reranked by their best sentence). ``outcomes`` keeps,
    per question, (answerable, confidence, quote holds the span) for the threshold curve."""

    mode: str
    threshold: float = 0.0
    answerable: int = 0
    unanswerable: int = 0
    top1: int = 0
    top5: int = 0
    top10: int = 0
    quote_has_span: int = 0
    answered: int = 0
    declined: int = 0
    details: list[dict] = field(default_factory=list)
    outcomes: list[tuple[bool, float, bool]] = field(default_factory=list)

    def rate(self, name: str) -> float:
        total = self.unanswerable if name == "declined" else self.answerable
        return getattr(self, name) / total if total else 0.0

    def at(self, threshold: float) -> tuple[float, float, float, float]:
        """(answerable answered, quote holds the span, unanswerable declined, share of
        the answers given that are right) if the extractor declined below ``threshold``."""
        ans = [(c, ok) for a, c, ok in self.outcomes if a]
        una = [c for a, c, _ in self.outcomes if not a]
        answered = [ok for c, ok in ans if c >= threshold]
        wrong_una = sum(c >= threshold for c in una)
        given = len(answered) + wrong_una
        return (
            len(answered) / len(ans) if ans else 0.0,
            sum(answered) / len(ans) if ans else 0.0,
            (len(una) - wrong_una) / len(una) if una else 0.0,
            sum(answered) / given if given else 1.0,
        )


def evaluate(
    engine: Engine, questions: Iterable[EvalQuestion], modes: Iterable[Mode] = MODES
) -> list[ModeScores]:
    """Every mode's figures at the engine's threshold, with the outcomes for other ones."""
    questions = list(questions)
    vectors = engine.embedder.embed([clean_question(q.q) for q in questions])
    threshold = engine.extractor.threshold
    # Read at threshold 0 (the quote each question would get) and apply the threshold
    # here, so one pass gives the whole curve.
    reader = AnswerExtractor(
        engine.embedder,
        model=engine.extractor.model,
        threshold=0.0,
        max_passages=engine.extractor.max_passages,
    )
    results = []
    for mode in modes:
        scores = ModeScores(mode, threshold)
        for question, vector in zip(questions, vectors, strict=True):
            text = clean_question(question.q)
            hits = engine.retriever.search(text, k=10, mode=mode, query_vector=vector)
            answer = reader.extract(
                text,
                hits,
                engine.index.article_text,
                query_vector=vector,
                sentence_vectors=engine.index.sentences,
                lexical=engine.index.lexical,
            )
            given = answer.answered and answer.confidence >= threshold
            detail = {
                "q": question.q,
                "answer": question.answer,
                "answered": given,
                "confidence": round(answer.confidence, 4),
                "quote": answer.quote,
                "highlight": answer.highlight,
            }
            if question.answer is None:
                scores.unanswerable += 1
                scores.declined += not given
                scores.outcomes.append((False, answer.confidence, False))
            else:
                span = fold(question.answer)
                ranked = answer.hits or hits
                found = [span in fold(h.passage.text) for h in ranked]
                good = answer.answered and span in fold(answer.quote)
                scores.answerable += 1
                scores.top1 += any(found[:1])
                scores.top5 += any(found[:5])
                scores.top10 += any(found[:10])
                scores.answered += given
                scores.quote_has_span += given and good
                scores.outcomes.append((True, answer.confidence, good))
                detail.update(top1=any(found[:1]), top5=any(found[:5]), quote_ok=given and good)
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
CURVE = (0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def format_table(results: list[ModeScores]) -> str:
    head = f"{'metric':<26}" + "".join(f"{r.mode:>10}" for r in results)
    lines = [head, "-" * len(head)]
    for label, name in ROWS:
        lines.append(f"{label:<26}" + "".join(f"{r.rate(name):>10.3f}" for r in results))
    if results:
        r = results[0]
        lines.append(f"({r.answerable} answerable and {r.unanswerable} unanswerable questions)")
        hybrid = next((x for x in results if x.mode == "hybrid"), results[-1])
        lines += ["", format_curve(hybrid)]
    return "\n".join(lines)


def format_curve(scores: ModeScores, thresholds: Iterable[float] = CURVE) -> str:
    """Answered / right / declined at each threshold (the engine's own marked with *)."""
    marks = sorted({*thresholds, scores.threshold})
    lines = [
        f"{scores.mode}: threshold   answered   quote holds span   declined   right of given",
    ]
    for t in marks:
        answered, right, declined, precision = scores.at(t)
        star = "*" if t == scores.threshold else " "
        lines.append(
            f"{'':{len(scores.mode)}}  {t:8.2f}{star}  {answered:8.3f}   {right:16.3f}"
            f"   {declined:8.3f}   {precision:14.3f}"
        )
    return "\n".join(lines)
