"""The engine: a loaded index, an embedder, a retriever and an answer extractor in one object.

The CLI and the bot both talk to an ``Engine``; neither knows how answers are found.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from index.answer import AnswerExtractor, load_model
from index.embedders.base import Embedder
from index.errors import BadQuestionError
from index.retriever import Mode, Retriever
from index.store import LoadedIndex
from index.types import Answer, Hit

MAX_QUESTION_CHARS = 500


def clean_question(question: str, max_chars: int = MAX_QUESTION_CHARS) -> str:
    """Validate and tidy a question, or raise BadQuestionError with a message for the asker."""
    if not isinstance(question, str):
        raise BadQuestionError("The question must be text.")
    if any("\udc80" <= ch <= "\udcff" for ch in question):
        raise BadQuestionError(
            "The question holds bytes that are not UTF-8 text; please retype it."
        )
    text = "".join(
        ch if unicodedata.category(ch)[0] != "C" else " " for ch in question.replace("\ufffd", " ")
    )
    text = " ".join(text.split())
    if not text:
        raise BadQuestionError("Please type a question, for example: when does the base lease end?")
    if len(text) > max_chars:
        raise BadQuestionError(
            f"That question is {len(text):,} characters long; please keep it under "
            f"{max_chars} characters."
        )
    if not any(ch.isalnum() for ch in text):
        raise BadQuestionError("That question has no words in it. Please ask in words.")
    return text


@dataclass(slots=True)
class Engine:
    index: LoadedIndex
    embedder: Embedder
    extractor: AnswerExtractor
    max_question_chars: int = MAX_QUESTION_CHARS

    @classmethod
    def create(
        cls,
        index: LoadedIndex,
        embedder: Embedder,
        *,
        threshold: float | None = None,
        model_path: Path | None = None,
        max_question_chars: int = MAX_QUESTION_CHARS,
    ) -> Engine:
        """``threshold`` and ``model_path`` default to the shipped answer model's."""
        model = load_model(model_path) if model_path is not None else None
        extractor = AnswerExtractor(embedder, model=model, threshold=threshold)
        return cls(index, embedder, extractor, max_question_chars)

    @property
    def retriever(self) -> Retriever:
        """Hybrid retrieval, reordered by the answer model's passage reranker if it has one."""
        return Retriever(self.index, self.embedder, reranker=self.extractor.model.ranker())

    def search(self, question: str, k: int = 10, mode: Mode = "hybrid") -> list[Hit]:
        question = clean_question(question, self.max_question_chars)
        return self.retriever.search(question, k=k, mode=mode)

    def ask(
        self,
        question: str,
        k: int = 5,
        mode: Mode = "hybrid",
        *,
        prefer_doc_ids: Sequence[str] = (),
    ) -> Answer:
        """Answer with a verbatim quote and its source, or decline with related passages.

        With ``prefer_doc_ids`` (a reply to an alert about those articles), their own
        passages are read first; the whole archive answers when they hold nothing
        confident.
        """
        question = clean_question(question, self.max_question_chars)
        vector = self.embedder.embed([question])[0]
        retriever = self.retriever
        hits = retriever.search(question, k=max(k, 10), mode=mode, query_vector=vector)
        preferred = [d for d in prefer_doc_ids if d in self.index.articles]
        if preferred:
            own = sorted(
                (h for d in preferred for h in retriever.within(question, d, 5, vector)),
                key=lambda h: -h.score,
            )
            answer = self.answer_from(question, own, vector)
            if answer.answered:
                return self._shown(answer, own + hits, k)
        return self._shown(self.answer_from(question, hits, vector), hits, k)

    def answer_from(self, question: str, hits: list[Hit], query_vector: np.ndarray) -> Answer:
        """Run the answer extractor over ranked hits, with the stored sentence vectors."""
        return self.extractor.extract(
            question,
            hits,
            self.index.article_text,
            query_vector=query_vector,
            sentence_vectors=self.index.sentences,
            lexical=self.index.lexical,
        )

    @staticmethod
    def _shown(answer: Answer, hits: list[Hit], k: int) -> Answer:
        ranked: list[Hit] = []
        seen: set[int] = set()
        for hit in answer.hits or hits:
            if hit.passage.passage_id not in seen:
                seen.add(hit.passage.passage_id)
                ranked.append(hit)
        return replace(answer, hits=ranked[:k])
