"""BM25 lexical index (bm25s), with our own tokenizer so queries and passages agree."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import bm25s
import numpy as np
from bm25s.tokenization import Tokenized

logging.getLogger("bm25s").setLevel(logging.WARNING)

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
_STOPWORDS = frozenset(bm25s.stopwords.STOPWORDS_EN) | _QUESTION_WORDS


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens, English stopwords removed, Snowball-stemmed."""
    words = [w for w in _WORD.findall(text.lower().replace("’", "'")) if w not in _STOPWORDS]
    return _stemmer().stemWords(words)


class LexicalIndex:
    """Okapi BM25 over passages; row i of the index is passage id i."""

    DIRNAME = "bm25"

    def __init__(self, model: bm25s.BM25, vocab: dict[str, int]) -> None:
        self._model = model
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
        model = bm25s.BM25()
        if texts:
            model.index(Tokenized(ids=ids, vocab=vocab), show_progress=False)
        return cls(model, vocab)

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """Return up to k (passage id, score) pairs with a positive score, best first."""
        token_ids = [self._vocab[t] for t in tokenize(query) if t in self._vocab]
        if not token_ids or not self._vocab or len(self._vocab) <= 1:
            return []
        scores = self._model.get_scores(token_ids)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(i), float(scores[i])) for i in top if scores[i] > 0]

    def save(self, directory: Path) -> None:
        target = directory / self.DIRNAME
        target.mkdir(parents=True, exist_ok=True)
        self._model.save(str(target), show_progress=False)
        (target / "newsdesk_vocab.json").write_text(json.dumps(self._vocab))

    @classmethod
    def load(cls, directory: Path, *, mmap: bool = False) -> LexicalIndex:
        target = directory / cls.DIRNAME
        vocab = json.loads((target / "newsdesk_vocab.json").read_text())
        model = bm25s.BM25.load(str(target), mmap=mmap, show_progress=False)
        return cls(model, vocab)
