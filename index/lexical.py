"""BM25 lexical index, with our own tokenizer so queries and passages agree.

bm25s builds the index (its eager BM25: each passage's score for each term, stored as a
sparse term x passage matrix). Searching needs only that matrix, so it is read and
scored with numpy alone: the query path does not import bm25s and, through it, scipy
(~100 ms of a cold ``newsdesk ask``). The scores are bm25s's own, summed in the same
order (a test compares them).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from index.files import save_npy

_WORD = re.compile(r"\w+", re.UNICODE)
# Question words carry no topic: "when does the base lease end" is about base, lease, end.
_QUESTION_WORDS = {
    "what",
    "whats",
    "which",
    "who",
    "whos",
    "whom",
    "whose",
    "when",
    "where",
    "why",
    "how",
    "does",
    "do",
    "did",
    "doe",
    "many",
    "much",
    "wont",
    "dont",
    "didnt",
    "doesnt",
    "s",
}
# bm25s's English stopwords (bm25s.stopwords.STOPWORDS_EN; a test keeps them equal).
STOPWORDS_EN = frozenset(
    """a an and are as at be but by for if in into is it no not of on or such that the
    their then there these they this to was will with""".split()  # noqa: SIM905
)
_STOPWORDS = STOPWORDS_EN | _QUESTION_WORDS


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens, English stopwords removed, Snowball-stemmed."""
    words = [w for w in _WORD.findall(text.lower().replace("’", "'")) if w not in _STOPWORDS]
    return _stemmer().stemWords(words)


class LexicalIndex:
    """Okapi BM25 over passages; row i of the index is passage id i.

    ``data``, ``indices`` and ``indptr`` are the term x passage score matrix in CSC form
    (column t: the passages holding term t and their BM25 scores for it).
    """

    DIRNAME = "bm25"
    FILES = ("data", "indices", "indptr")

    def __init__(
        self,
        data: np.ndarray,
        indices: np.ndarray,
        indptr: np.ndarray,
        num_docs: int,
        vocab: dict[str, int],
    ) -> None:
        self.data = data
        self.indices = indices
        self.indptr = indptr
        self.num_docs = num_docs
        self._vocab = vocab

    @classmethod
    def build(cls, texts: Sequence[str]) -> LexicalIndex:
        vocab: dict[str, int] = {"": 0}
        ids: list[list[int]] = []
        for text in texts:
            row = []
            for token in tokenize(text):
                row.append(vocab.setdefault(token, len(vocab)))
            ids.append(row or [0])
        if not texts:
            empty = np.zeros(0, dtype=np.float32)
            return cls(empty, empty.astype(np.int32), np.zeros(2, np.int32), 0, vocab)
        import bm25s  # indexing only
        from bm25s.tokenization import Tokenized

        logging.getLogger("bm25s").setLevel(logging.WARNING)
        model = bm25s.BM25()
        model.index(Tokenized(ids=ids, vocab=vocab), show_progress=False)
        scores = model.scores
        return cls(
            np.asarray(scores["data"]),
            np.asarray(scores["indices"]),
            np.asarray(scores["indptr"]),
            int(scores["num_docs"]),
            vocab,
        )

    def scores(self, token_ids: Sequence[int]) -> np.ndarray:
        """Every passage's BM25 score for the query terms (repeats count again)."""
        scores = np.zeros(self.num_docs, dtype=self.data.dtype)
        for token in token_ids:
            start, end = int(self.indptr[token]), int(self.indptr[token + 1])
            scores[self.indices[start:end]] += self.data[start:end]
        return scores

    def document_frequency(self, term: str) -> int | None:
        """In how many passages ``term`` (a ``tokenize`` output) occurs; None if never seen."""
        tid = self._vocab.get(term)
        if tid is None or tid == 0:
            return None
        return int(self.indptr[tid + 1]) - int(self.indptr[tid])

    def postings(self, term: str) -> np.ndarray:
        """The ids of the passages holding ``term`` (a ``tokenize`` output), ascending
        (bm25s writes each column's rows sorted; an index that did not is sorted here)."""
        tid = self._vocab.get(term)
        if tid is None or tid == 0:
            return np.zeros(0, dtype=np.int64)
        rows = np.asarray(self.indices[int(self.indptr[tid]) : int(self.indptr[tid + 1])])
        return rows if len(rows) < 2 or bool((rows[1:] > rows[:-1]).all()) else np.sort(rows)

    def holds(self, term: str, passage_ids: np.ndarray) -> np.ndarray:
        """Which of ``passage_ids`` hold ``term``: one binary search each in its postings."""
        rows = self.postings(term)
        ids = np.asarray(passage_ids, dtype=np.int64)
        if not len(rows) or not len(ids):
            return np.zeros(len(ids), dtype=bool)
        at = np.minimum(np.searchsorted(rows, ids), len(rows) - 1)
        return rows[at] == ids

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """Return up to k (passage id, score) pairs with a positive score, best first."""
        token_ids = [self._vocab[t] for t in tokenize(query) if t in self._vocab]
        if not token_ids or not self._vocab or len(self._vocab) <= 1 or not self.num_docs:
            return []
        scores = self.scores(token_ids)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(i), float(scores[i])) for i in top if scores[i] > 0]

    def save(self, directory: Path) -> None:
        """bm25s's file layout (what earlier versions of the index wrote)."""
        target = directory / self.DIRNAME
        target.mkdir(parents=True, exist_ok=True)
        for name in self.FILES:
            save_npy(target / f"{name}.csc.index.npy", getattr(self, name))
        params = {"dtype": str(self.data.dtype), "num_docs": self.num_docs, "method": "lucene"}
        (target / "params.index.json").write_text(json.dumps(params, indent=4))
        (target / "newsdesk_vocab.json").write_text(json.dumps(self._vocab))

    @classmethod
    def load(cls, directory: Path, *, mmap: bool = False) -> LexicalIndex:
        target = directory / cls.DIRNAME
        vocab = json.loads((target / "newsdesk_vocab.json").read_text())
        params = json.loads((target / "params.index.json").read_text())
        mode = "r" if mmap else None
        data, indices, indptr = (
            np.load(target / f"{name}.csc.index.npy", mmap_mode=mode) for name in cls.FILES
        )
        if params.get("method", "lucene") != "lucene" or len(indptr) != len(vocab) + 1:
            raise ValueError(f"{target} is not a BM25 index this version can read")
        return cls(data, indices, indptr, int(params["num_docs"]), vocab)
