"""Candidate answers: the sentences of the top passages, quotable by their offsets."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from index.answer.text import TermsMemo
from index.answer.types import TypeMatch
from index.sentence_vectors import SentenceVectors
from index.sentences import sentence_spans
from index.types import Hit, Passage

log = logging.getLogger(__name__)

MIN_SENTENCE_WORDS = 3


@dataclass(slots=True)
class Candidate:
    """One sentence of a retrieved passage: where it is, and what the model sees of it."""

    hit_index: int
    passage: Passage
    start: int  # offset in the article
    end: int
    text: str
    sent_index: int = 0
    previous: str = ""
    following: str = ""
    vector: np.ndarray | None = None  # stored at index time, if any
    type_spans: list[TypeMatch] = field(default_factory=list)
    features: dict[str, float] = field(default_factory=dict)
    score: float = 0.0  # the model's probability that this sentence holds the answer


def read_candidates(
    hits: Sequence[Hit],
    article_text: Callable[[str], str],
    stored: SentenceVectors | None,
    max_passages: int,
    memo: TermsMemo,
) -> list[Candidate]:
    """The sentences of the top passages: the spans and vectors stored at index time
    when there are any, else ``sentence_spans`` of the passage (no vectors)."""
    out: list[Candidate] = []
    for index, hit in enumerate(hits[:max_passages]):
        passage = hit.passage
        try:
            article = article_text(passage.doc_id)
        except Exception:  # a missing article drops the passage
            log.warning("answer: article %r not available; passage skipped", passage.doc_id)
            continue
        end = passage.start + len(passage.text)
        if passage.start < 0 or article[passage.start : end] != passage.text:
            log.warning(
                "answer: passage %s does not match article %r at offset %d; skipped",
                passage.passage_id,
                passage.doc_id,
                passage.start,
            )
            continue
        rows: list[tuple[int, int, np.ndarray | None]] = []
        if stored is not None:
            rows.extend(stored.of_passage(passage.passage_id))
        if not rows:
            rows = [(s, e, None) for s, e in sentence_spans(passage.text)]
        texts = [passage.text[s:e] for s, e, _ in rows]
        for n, (s, e, vector) in enumerate(rows):
            if memo.count(texts[n]) < MIN_SENTENCE_WORDS:
                continue
            out.append(
                Candidate(
                    hit_index=index,
                    passage=passage,
                    start=passage.start + s,
                    end=passage.start + e,
                    text=texts[n],
                    sent_index=n,
                    previous=texts[n - 1] if n else "",
                    following=texts[n + 1] if n + 1 < len(texts) else "",
                    vector=vector,
                )
            )
    return out
