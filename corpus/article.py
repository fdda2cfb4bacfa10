"""The article: the unit a corpus is made of."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Article:
    """One news article as loaded from a corpus folder.

    ``text`` is the article body exactly as stored (after boilerplate is cut);
    every quote the engine gives is a substring of it. ``paragraphs`` are the
    body's paragraphs, each an exact substring of ``text``, in order.
    """

    doc_id: str
    title: str
    text: str
    source: str = ""
    url: str = ""
    date: str = ""
    author: str = ""
    path: str = ""
    paragraphs: tuple[str, ...] = field(default=())

    @property
    def content_hash(self) -> str:
        """Hash of what makes two articles the same story (title and body)."""
        h = hashlib.sha256()
        h.update(self.title.strip().lower().encode())
        h.update(b"\0")
        h.update(" ".join(self.text.split()).lower().encode())
        return h.hexdigest()


@dataclass(frozen=True, slots=True)
class Skipped:
    """A file (or line of a file) that could not be loaded, and why."""

    path: str
    reason: str


@dataclass(slots=True)
class LoadResult:
    """What loading a set of corpus folders produced."""

    articles: list[Article] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    duplicates: list[Skipped] = field(default_factory=list)
