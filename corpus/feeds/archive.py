"""Fetched articles on disk: ``<data_dir>/feeds/<source>.jsonl``, one JSON object a line.

Each line has the fields :mod:`corpus.loaders` reads -- ``title``, ``text`` (paragraphs
separated by newlines), ``id``, ``url``, ``published``, ``source``, ``author`` -- plus
``link`` (the URL the feed gave, before redirects and canonicalisation), ``feed`` (the
source name) and ``fetched`` (UTC time), which loaders ignore.

Rules, over the whole archive (all sources):

* one article per canonical URL: ``id`` is derived from that URL, so an article keeps its
  id when it changes and the index sees it as *changed*, never as new;
* the same text under another URL is not stored again (a syndicated copy, a URL with
  tracking parameters): :meth:`Archive.put` answers ``duplicate``;
* new text under a known URL replaces the old record in place.

Files are rewritten whole through a temporary file and ``os.replace``: a crash leaves the
old file or the new one, never half a line.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

from corpus.feeds.sources import archive_dir
from corpus.feeds.store import atomic_write
from corpus.loaders import json_lines

__all__ = ["Archive", "FeedArticle", "PutResult", "article_id", "text_key"]


def article_id(url: str) -> str:
    """The stable id of the article at a canonical URL."""
    return "feeds/" + hashlib.sha256(url.encode()).hexdigest()[:16]


def text_key(text: str) -> str:
    """What makes two texts the same story: the words, case and whitespace folded."""
    return hashlib.sha256(" ".join(text.split()).casefold().encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class FeedArticle:
    """An article ready to store; ``text`` holds one paragraph per line."""

    url: str
    title: str
    text: str
    published: str = ""
    source: str = ""
    author: str = ""
    link: str = ""

    def record(self, feed: str, fetched: str) -> dict[str, str]:
        return {
            "id": article_id(self.url),
            "url": self.url,
            "title": self.title,
            "text": self.text,
            "published": self.published,
            "source": self.source,
            "author": self.author,
            "link": self.link or self.url,
            "feed": feed,
            "fetched": fetched,
        }


@dataclass(frozen=True, slots=True)
class PutResult:
    """``action``: added, updated, unchanged or duplicate (``of`` names the stored URL)."""

    action: str
    of: str = ""


class Archive:
    """All fetched articles, loaded once per round; changed files are saved by :meth:`save`."""

    def __init__(self, data_dir: Path) -> None:
        self.folder = archive_dir(data_dir)
        self._files: dict[str, list[dict[str, str]]] = {}
        self._by_url: dict[str, tuple[str, int]] = {}
        self._by_link: dict[str, str] = {}
        self._by_text: dict[str, str] = {}
        self._dirty: set[str] = set()
        self.unreadable: list[str] = []
        self._load()

    def _load(self) -> None:
        if not self.folder.is_dir():
            return
        for path in sorted(self.folder.glob("*.jsonl")):
            if path.name.startswith("."):
                continue
            records: list[dict[str, str]] = []
            content = path.read_text(encoding="utf-8")
            for lineno, line, record in json_lines(content, path.name):
                if not isinstance(record, dict) or not record.get("url"):
                    # Keep lines we cannot read exactly as they are: nothing stored is lost.
                    self.unreadable.append(f"{path.name}:{lineno}")
                    records.append({"__raw__": line})
                    continue
                records.append(record)
            feed = path.stem
            self._files[feed] = records
            for i, record in enumerate(records):
                self._index(feed, i, record)

    def _index(self, feed: str, i: int, record: dict[str, str]) -> None:
        url = record.get("url")
        if not url:
            return
        self._by_url[url] = (feed, i)
        if record.get("link"):
            self._by_link[record["link"]] = url
        self._by_text.setdefault(text_key(record.get("text", "")), url)

    # ------------------------------------------------------------------ queries

    def known_link(self, link: str) -> str | None:
        """The canonical URL stored for a feed link (or URL), if any."""
        if link in self._by_url:
            return link
        return self._by_link.get(link)

    def count(self, feed: str) -> int:
        return sum(1 for r in self._files.get(feed, []) if "__raw__" not in r)

    def records(self, feed: str) -> list[dict[str, str]]:
        return [dict(r) for r in self._files.get(feed, []) if "__raw__" not in r]

    # ------------------------------------------------------------------ changes

    def put(self, feed: str, article: FeedArticle) -> PutResult:
        """Store ``article`` for source ``feed`` unless it is already there (see module doc)."""
        key = text_key(article.text)
        fetched = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        where = self._by_url.get(article.url)
        if where is not None:
            owner, i = where
            old = self._files[owner][i]
            if text_key(old.get("text", "")) == key and old.get("title") == article.title:
                return PutResult("unchanged")
            record = article.record(owner, fetched)
            record["published"] = article.published or old.get("published", "")
            self._files[owner][i] = record
            self._index(owner, i, record)
            self._by_text[key] = article.url
            self._dirty.add(owner)
            return PutResult("updated")
        same_text = self._by_text.get(key)
        if same_text is not None and same_text != article.url:
            return PutResult("duplicate", same_text)
        records = self._files.setdefault(feed, [])
        records.append(article.record(feed, fetched))
        self._index(feed, len(records) - 1, records[-1])
        self._dirty.add(feed)
        return PutResult("added")

    def save(self, feeds: set[str] | None = None) -> list[Path]:
        """Write the changed files (of ``feeds``, default all) atomically; their paths."""
        written = []
        for feed in sorted(self._dirty if feeds is None else self._dirty & feeds):
            lines = []
            for record in self._files[feed]:
                raw = record.get("__raw__")
                lines.append(raw if raw is not None else json.dumps(record, ensure_ascii=False))
            path = self.folder / f"{feed}.jsonl"
            atomic_write(path, "".join(line + "\n" for line in lines))
            written.append(path)
            self._dirty.discard(feed)
        return written
