"""Small data classes passed between the engine's parts."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Passage:
    """A retrievable piece of an article: one paragraph, or a few merged, or part of a long one.

    ``text`` is exactly ``article.text[start:start + len(text)]``, so any substring of
    it is a verbatim quote of the article. ``title`` is used as embedding context
    only; it is never quoted as an answer.
    """

    passage_id: int
    doc_id: str
    title: str
    text: str
    start: int
    position: int
    source: str = ""
    url: str = ""
    date: str = ""
    content_hash: str = ""

    def embedding_text(self) -> str:
        """What the embedder and the lexical index see: title for context, then the text."""
        return f"{self.title}\n{self.text}" if self.title else self.text


@dataclass(frozen=True, slots=True)
class Hit:
    """A passage retrieved for a query, with the scores that ranked it."""

    passage: Passage
    score: float
    rank: int
    dense_score: float | None = None
    lexical_score: float | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """The engine's reply to a question.

    When ``answered`` is true, ``quote`` is a verbatim substring of the article
    ``passage.doc_id`` (checked in code), and ``answer_span`` (when set) gives the
    offsets in ``quote`` of the short answer itself (the year, the amount, the name),
    which ``highlight`` holds as text; ``short_answer`` repeats it when the extractor is
    confident enough to put it on a line of its own ("2042"). ``confidence`` is the
    calibrated probability that the quote answers the question. When false, ``hits``
    still lists the closest passages, to offer as related reading.
    """

    question: str
    answered: bool
    quote: str = ""
    highlight: str = ""
    answer_span: tuple[int, int] | None = None
    short_answer: str = ""
    passage: Passage | None = None
    confidence: float = 0.0
    hits: list[Hit] = field(default_factory=list)
