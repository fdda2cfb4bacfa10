"""Pick the sentence that answers a question from retrieved passages, or decline.

Every sentence of the top passages is a candidate (``index.answer.candidates``); the
fitted sentence model scores each from its features (``index.answer.features``), the
answerability model turns the best one's figures into a calibrated probability that
quoting it answers the question, and below ``threshold`` the extractor declines. The
quote is cut from the article by character offsets (checked verbatim in code); within it,
``answer_span`` marks the short answer (the year, the amount, the name) when the sentence
holds one of the kind the question asks for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from index.answer.candidates import Candidate
from index.answer.features import Scored, candidate_features, decision_features
from index.answer.model import AnswerModel, load_model
from index.answer.types import PRONOUN_LEAD, TypeMatch, anchor_positions
from index.embedders.base import Embedder
from index.lexical import LexicalIndex
from index.sentence_vectors import SentenceVectors
from index.types import Answer, Hit

log = logging.getLogger(__name__)

# Passages read when the model file does not say (its manifest's ``passages_read``: the
# number it was trained on, and so the one it is right for).
MAX_PASSAGES = 5
# The short answer is shown on its own (and bolded) only when the sentence holds an
# answer of the asked kind at full strength.
SPAN_MIN_STRENGTH = 0.7
# ... and put on a line of its own only at this confidence or above.
SHORT_ANSWER_CONFIDENCE = 0.6


@dataclass(frozen=True, slots=True)
class Reading:
    """What the extractor made of one question, before the threshold: for evaluation."""

    scored: Scored
    probs: np.ndarray
    best: int
    confidence: float


class AnswerExtractor:
    """Chooses the answering sentence among the top passages of a search, or declines.

    ``threshold`` applies to the calibrated confidence (default: the one the model file
    was tuned with); raise it to decline more. ``max_passages`` hits are read (default:
    as many as the model was trained on).
    """

    def __init__(
        self,
        embedder: Embedder | None = None,
        *,
        model: AnswerModel | None = None,
        threshold: float | None = None,
        max_passages: int | None = None,
    ) -> None:
        self.embedder = embedder
        self._model = model
        self._threshold = threshold
        self._max_passages = max_passages

    @property
    def model(self) -> AnswerModel:
        """The fitted model (the shipped file unless one was given), read on first use."""
        if self._model is None:
            self._model = load_model()
        return self._model

    @property
    def max_passages(self) -> int:
        """How many hits are read: as given, else as many as the model was trained on."""
        if self._max_passages is not None:
            return self._max_passages
        return int(self.model.manifest.get("passages_read", MAX_PASSAGES))

    @property
    def threshold(self) -> float:
        return self.model.threshold if self._threshold is None else self._threshold

    def read(
        self,
        question: str,
        hits: Sequence[Hit],
        article_text: Callable[[str], str],
        *,
        query_vector: np.ndarray | None = None,
        sentence_vectors: SentenceVectors | None = None,
        lexical: LexicalIndex | None = None,
    ) -> Reading | None:
        """Score every candidate; None when there is none."""
        embed = None if self.embedder is None else self.embedder.embed
        scored = candidate_features(
            question,
            hits,
            article_text,
            query_vector=query_vector,
            sentence_vectors=sentence_vectors,
            lexical=lexical,
            embed=embed,
            max_passages=self.max_passages,
            word_idf=self.model.word_idf,
        )
        if not scored.candidates:
            return None
        probs = self.model.sentence_scores(scored.matrix)
        for cand, p in zip(scored.candidates, probs, strict=True):
            cand.score = float(p)
        best, decision = decision_features(scored, probs)
        return Reading(scored, probs, best, self.model.confidence(decision))

    def extract(
        self,
        question: str,
        hits: Sequence[Hit],
        article_text: Callable[[str], str],
        *,
        query_vector: np.ndarray | None = None,
        sentence_vectors: SentenceVectors | None = None,
        lexical: LexicalIndex | None = None,
    ) -> Answer:
        """Pick the answering sentence, or decline. ``query_vector`` (the question's
        embedding) and ``sentence_vectors`` (stored at index time) spare the embedder.
        The answer's ``hits`` are the read passages reordered by their best sentence,
        then the rest in retrieval order."""
        hits = list(hits)
        reading = self.read(
            question,
            hits,
            article_text,
            query_vector=query_vector,
            sentence_vectors=sentence_vectors,
            lexical=lexical,
        )
        if reading is None:
            return Answer(question, answered=False, hits=hits, confidence=0.0)
        ranked = rerank(hits, reading)
        confidence = reading.confidence
        if confidence < self.threshold:
            return Answer(question, answered=False, hits=ranked, confidence=confidence)
        return self.quote(question, reading, article_text, ranked, confidence)

    def quote(
        self,
        question: str,
        reading: Reading,
        article_text: Callable[[str], str],
        hits: list[Hit],
        confidence: float,
    ) -> Answer:
        candidates = reading.scored.candidates
        best = candidates[reading.best]
        start, end = quote_bounds(best, candidates)
        doc_id = best.passage.doc_id
        try:
            article = article_text(doc_id)
        except Exception:  # any lookup failure means we cannot quote
            log.warning("answer: article %r could not be read; declining", doc_id)
            return Answer(question, answered=False, hits=hits, confidence=confidence)
        quote = article[start:end]
        if not quote.strip() or best.text not in quote:
            log.warning("answer: quote not found verbatim in article %r; declining", doc_id)
            return Answer(question, answered=False, hits=hits, confidence=confidence)
        # best.text is article[best.start:best.end] (read_candidates checked the passage
        # against the article), so a span inside it is verbatim in the quote too.
        span = answer_span(best, start, reading.scored.q_terms)
        return Answer(
            question,
            answered=True,
            quote=quote,
            highlight=quote[span[0] : span[1]] if span else "",
            answer_span=span,
            short_answer=(
                quote[span[0] : span[1]] if span and confidence >= SHORT_ANSWER_CONFIDENCE else ""
            ),
            passage=best.passage,
            confidence=confidence,
            hits=hits,
        )


def rerank(hits: list[Hit], reading: Reading) -> list[Hit]:
    """The read passages by their best sentence's probability, then the unread ones."""
    best: dict[int, float] = {}
    for cand in reading.scored.candidates:
        pid = cand.passage.passage_id
        best[pid] = max(best.get(pid, 0.0), cand.score)
    read = [h for h in hits if h.passage.passage_id in best]
    rest = [h for h in hits if h.passage.passage_id not in best]
    read.sort(key=lambda h: (-best[h.passage.passage_id], h.rank))
    return read + rest


def quote_bounds(best: Candidate, candidates: list[Candidate]) -> tuple[int, int]:
    """The best sentence, or it and the sentence before when it leans on a pronoun
    ("He said ...") whose referent the previous sentence names."""
    if not PRONOUN_LEAD.match(best.text) or best.features.get("lex", 1.0) >= 0.5:
        return best.start, best.end
    before = [
        c
        for c in candidates
        if c.passage.passage_id == best.passage.passage_id and c.end <= best.start
    ]
    if not before:
        return best.start, best.end
    prev = max(before, key=lambda c: c.end)
    if prev.text != best.previous or prev.features.get("lex", 0.0) <= best.features["lex"]:
        return best.start, best.end
    base = best.passage.start
    if "\n" in best.passage.text[prev.end - base : best.start - base]:
        return best.start, best.end  # never quote across a paragraph break
    return prev.start, best.end


def answer_span(best: Candidate, quote_start: int, q_terms: set[str]) -> tuple[int, int] | None:
    """Offsets in the quote of the short answer: the strongest span of the asked kind in
    the best sentence, nearest the question's words; None when there is none strong
    enough to call the answer."""
    if not best.type_spans:
        return None
    strongest = max(m.strength for m in best.type_spans)
    if strongest < SPAN_MIN_STRENGTH:
        return None
    anchors = anchor_positions(best.text, q_terms)
    pool = [m for m in best.type_spans if m.strength == strongest]

    def distance(m: TypeMatch) -> tuple[float, int]:
        if not anchors:
            return (0.0, len(m.text))
        return (min(abs(m.start - a) for a in anchors), len(m.text))

    chosen = min(pool, key=distance)
    start = best.start - quote_start + chosen.start
    return start, start + len(chosen.text)
