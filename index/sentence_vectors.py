"""Sentence vectors computed at index time, so answering a question embeds only the question.

The answer extractor scores every candidate sentence of the top passages by its cosine
to the question. Embedding those sentences per question cost ~0.5 s of CPU; storing
their vectors beside the passages makes it a lookup. Rows are keyed by (passage id,
start, end), offsets relative to the passage, so an unchanged passage keeps its rows
across re-indexes wherever it moves in its article.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index.files import load_npy, save_npy
from index.sentences import sentence_spans
from index.types import Passage

SPANS = "sentence_spans.npy"
VECTORS = "sentence_vectors.npy"


@dataclass(slots=True)
class SentenceVectors:
    """Vectors of passages' sentences: ``spans`` rows are (passage id, start, end)."""

    spans: np.ndarray
    vectors: np.ndarray

    def _rows(self, passage_id: int) -> range:
        """The rows of passage ``passage_id`` (rows are sorted by passage id)."""
        column = self.spans[:, 0]
        lo = int(np.searchsorted(column, passage_id, "left"))
        return range(lo, int(np.searchsorted(column, passage_id, "right")))

    def get(self, passage_id: int, start: int, end: int) -> np.ndarray | None:
        """The stored vector of passage ``passage_id``'s sentence [start, end), or None."""
        for row in self._rows(passage_id):
            if self.spans[row, 1] == start and self.spans[row, 2] == end:
                return np.asarray(self.vectors[row], dtype=np.float32)
        return None

    def of_passage(self, passage_id: int) -> list[tuple[int, int, np.ndarray]]:
        """(start, end, vector) of each sentence of passage ``passage_id``, in order."""
        return [
            (int(self.spans[r, 1]), int(self.spans[r, 2]), np.asarray(self.vectors[r]))
            for r in self._rows(passage_id)
        ]

    def save(self, directory: Path) -> None:
        save_npy(directory / SPANS, self.spans)
        save_npy(directory / VECTORS, self.vectors)

    @classmethod
    def load(cls, directory: Path) -> SentenceVectors | None:
        """The stored rows, read into memory (mapped only when large: ``index.files``)."""
        if not (directory / SPANS).is_file():
            return None
        return cls(np.load(directory / SPANS), load_npy(directory / VECTORS))


@dataclass(slots=True)
class SentencePlan:
    """Which sentences of a new index version reuse old vectors and which need embedding."""

    spans: list[tuple[int, int, int]]
    reused: list[np.ndarray | None]
    todo: list[tuple[int, str]]

    def finish(self, fresh: np.ndarray, dimension: int) -> SentenceVectors:
        """Assemble the vectors, ``fresh`` holding the embeddings of ``todo`` in order."""
        matrix = np.zeros((len(self.spans), dimension), dtype=np.float16)
        for i, vector in enumerate(self.reused):
            if vector is not None:
                matrix[i] = vector
        for (i, _), vector in zip(self.todo, fresh, strict=True):
            matrix[i] = vector
        return SentenceVectors(np.asarray(self.spans, dtype=np.int64).reshape(-1, 3), matrix)


def plan_sentences(
    passages: Sequence[Passage],
    reusable: Callable[[Passage], Iterable[tuple[int, int, np.ndarray]] | None],
) -> SentencePlan:
    """Every sentence of every passage; a passage whose content is unchanged brings the
    rows ``reusable(passage)`` returns, the others' sentences are listed to embed."""
    plan = SentencePlan([], [], [])
    for passage in passages:
        old = reusable(passage)
        if old is not None:
            for start, end, vector in old:
                plan.spans.append((passage.passage_id, start, end))
                plan.reused.append(vector)
            continue
        for start, end in sentence_spans(passage.text):
            plan.spans.append((passage.passage_id, start, end))
            plan.reused.append(None)
            plan.todo.append((len(plan.spans) - 1, passage.text[start:end]))
    return plan
