"""The list of sources a Newsdesk follows, kept in ``<data_dir>/sources.json``.

A :class:`Source` is a URL (feed, sitemap, or an HTML page whose feed is found by
autodiscovery) under a short unique ``name``; fetched articles go to
``<data_dir>/feeds/<name>.jsonl``. Next to what the admin chose, the list keeps each
source's fetch state: last fetch time, status, last error, article count, consecutive
failures (a source failing ``failing_after`` rounds in a row is marked *failing*) and the
HTTP validators for conditional GETs.

Every change re-reads the file under a lock and writes it atomically, so ``sources add``
from the CLI while the bot's round runs loses neither.

:class:`SourceStore` is what a round and the front ends need of a source list;
:class:`SourceList` (the file) is the default. With a shared state database, the newsdesk
layer gives them one kept there instead (``newsdesk.source_store``), with the same
semantics: :func:`new_source` and :func:`find_source` hold the rules both follow.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from corpus.feeds.errors import (
    BadSourceError,
    DuplicateSourceError,
    SourceError,
    SourceNotFoundError,
)
from corpus.feeds.store import file_lock, read_json, write_json

__all__ = [
    "Source",
    "SourceList",
    "SourceStore",
    "archive_dir",
    "check_new",
    "find_source",
    "forget_files",
    "new_source",
    "state_dir",
]

SOURCES_FILE = "sources.json"
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_MAX_URL = 2000

#: Status values: never fetched, last round fine, last round failed, failing for a while.
STATUSES = ("new", "ok", "error", "failing")


def archive_dir(data_dir: Path) -> Path:
    """The corpus folder of fetched articles: index it like any other corpus folder."""
    return Path(data_dir) / "feeds"


def state_dir(data_dir: Path) -> Path:
    """Fetch state that is not articles: seen items, robots.txt cache, locks."""
    return Path(data_dir) / "feeds-state"


@dataclass(frozen=True, slots=True)
class Source:
    """One followed source and how its last fetches went (times are Unix seconds)."""

    name: str
    url: str
    #: The feed actually fetched when ``url`` is an HTML page (autodiscovery), else "".
    feed_url: str = ""
    #: feed, sitemap or "" until first fetched.
    kind: str = ""
    title: str = ""
    added_at: float = 0.0
    last_fetch: float = 0.0
    last_success: float = 0.0
    status: str = "new"
    last_error: str = ""
    failures: int = 0
    articles: int = 0
    etag: str = ""
    last_modified: str = ""

    @property
    def fetch_url(self) -> str:
        return self.feed_url or self.url

    @property
    def failing(self) -> bool:
        return self.status == "failing"

    def describe(self, now: float | None = None) -> str:
        """One line for ``sources list`` and ``/sources``."""
        when = _ago(self.last_fetch, now) if self.last_fetch else "never fetched"
        state = self.status
        if self.status in ("error", "failing") and self.last_error:
            state += f" ({self.last_error})"
        if self.failing:
            state += f", {self.failures} failed rounds in a row"
        label = f" [{self.kind}]" if self.kind else ""
        return (
            f"{self.name}{label}  {self.url}  {state}; last fetch {when}; {self.articles} articles"
        )

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Source:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})  # type: ignore[arg-type]


def _ago(then: float, now: float | None) -> str:
    seconds = max(0, int((now if now is not None else time.time()) - then))
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(then))
    if seconds < 90:
        return f"{stamp} ({seconds} s ago)"
    if seconds < 5400:
        return f"{stamp} ({seconds // 60} min ago)"
    if seconds < 2 * 86400:
        return f"{stamp} ({seconds // 3600} h ago)"
    return f"{stamp} ({seconds // 86400} days ago)"


def check_url(url: str) -> str:
    """``url`` stripped, if it is an absolute http(s) URL; raises :class:`BadSourceError`."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(url) > _MAX_URL:
        raise BadSourceError(f"Not an http(s) URL: {url[:200]!r}")
    return url


def name_for(url: str) -> str:
    """A source name from a URL's host: ``https://www.example.com/rss`` -> ``example.com``."""
    host = urlsplit(url).netloc.lower().rsplit("@", 1)[-1]
    host = host.removeprefix("www.")
    name = re.sub(r"[^a-z0-9._-]+", "-", host).strip("-._")[:60]
    return name or "source"


class SourceList:
    """Add, list, remove and update the sources kept under ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / SOURCES_FILE
        self._lock = state_dir(self.data_dir) / "sources.lock"

    # ------------------------------------------------------------------ reading

    def _read(self) -> list[Source]:
        data = read_json(self.path, {"sources": []})
        if not isinstance(data, dict) or not isinstance(data.get("sources"), list):
            raise SourceError(f"{self.path} is not a source list; fix or remove it")
        return [Source.from_json(item) for item in data["sources"] if isinstance(item, dict)]

    def _write(self, sources: list[Source]) -> None:
        write_json(self.path, {"version": 1, "sources": [s.to_json() for s in sources]})

    def list(self) -> list[Source]:
        """All sources, in the order they were added."""
        return self._read()

    def get(self, name_or_url: str) -> Source:
        """The source with that name or URL; raises :class:`SourceNotFoundError`."""
        return find_source(self._read(), name_or_url)

    # ------------------------------------------------------------------ changing

    def add(self, url: str, name: str | None = None, **fields_: object) -> Source:
        """Add a source. ``name`` defaults to the URL's host (made unique with -2, -3...).

        Raises :class:`BadSourceError` for a bad URL or name, :class:`DuplicateSourceError`
        when the name or URL is taken.
        """
        url, name = check_new(url, name)
        with file_lock(self._lock):
            sources = self._read()
            source = new_source(sources, url, name, **fields_)
            sources.append(source)
            self._write(sources)
        return source

    def remove(self, name_or_url: str, *, delete_articles: bool = False) -> Source:
        """Stop following a source; its fetched articles stay unless ``delete_articles``.

        Raises :class:`SourceNotFoundError`.
        """
        with file_lock(self._lock):
            sources = self._read()
            source = find_source(sources, name_or_url)
            self._write([s for s in sources if s.name != source.name])
        forget_files(self.data_dir, source, delete_articles=delete_articles)
        return source

    def update(self, name: str, change: Callable[[Source], Source]) -> Source | None:
        """Apply ``change`` to the stored source ``name`` (re-read under the lock).

        Returns the new source, or ``None`` when it was removed meanwhile.
        """
        with file_lock(self._lock):
            sources = self._read()
            for i, source in enumerate(sources):
                if source.name == name:
                    sources[i] = change(source)
                    self._write(sources)
                    return sources[i]
        return None

    def set(self, name: str, **changes: object) -> Source | None:
        """Set fields of the stored source ``name``; ``None`` when it was removed."""
        return self.update(name, lambda s: replace(s, **changes))  # type: ignore[arg-type]


class SourceStore(Protocol):
    """What a fetch round and the front ends use of a source list (:class:`SourceList`, or
    one kept in a shared database): the same methods, errors and order on every store."""

    def list(self) -> list[Source]:
        """All sources, in the order they were added."""
        ...

    def get(self, name_or_url: str) -> Source:
        """The source with that name or URL; raises :class:`SourceNotFoundError`."""
        ...

    def add(self, url: str, name: str | None = None, **fields_: object) -> Source:
        """Add a source; raises :class:`BadSourceError` or :class:`DuplicateSourceError`."""
        ...

    def remove(self, name_or_url: str, *, delete_articles: bool = False) -> Source:
        """Stop following a source; raises :class:`SourceNotFoundError`."""
        ...

    def update(self, name: str, change: Callable[[Source], Source]) -> Source | None:
        """Apply ``change`` to the stored source atomically; ``None`` when it is gone."""
        ...

    def set(self, name: str, **changes: object) -> Source | None:
        """Set fields of the stored source; ``None`` when it is gone."""
        ...


def check_new(url: str, name: str | None) -> tuple[str, str | None]:
    """The URL and name of a source to add, checked and tidied (before any lock is taken);
    raises :class:`BadSourceError`."""
    url = check_url(url)
    if name is not None:
        name = name.strip().lower()
        if not _NAME.match(name):
            raise BadSourceError(
                f"Bad source name {name!r}: use 1-64 of a-z, 0-9, '.', '_', '-' "
                "(starting with a letter or digit)"
            )
    return url, name


def new_source(sources: Sequence[Source], url: str, name: str | None, **fields_: object) -> Source:
    """The source to add beside ``sources`` (read under the store's lock): ``url`` and
    ``name`` as :func:`check_new` returned them; a missing name is the URL's host, made
    unique with -2, -3... Raises :class:`DuplicateSourceError` when the URL is followed
    already or the name is taken."""
    for source in sources:
        if url in (source.url, source.feed_url):
            raise DuplicateSourceError(f"Already followed as {source.name!r}: {url}")
    taken = {s.name for s in sources}
    if name is None:
        base = name_for(url)
        name, n = base, 2
        while name in taken:
            name, n = f"{base}-{n}", n + 1
    elif name in taken:
        raise DuplicateSourceError(f"A source named {name!r} already exists")
    return Source(name=name, url=url, added_at=time.time(), **fields_)  # type: ignore[arg-type]


def forget_files(data_dir: Path, source: Source, *, delete_articles: bool = False) -> None:
    """After a source is removed from a list: drop its fetch state in the data folder, and
    its archived articles if ``delete_articles``."""
    (state_dir(data_dir) / f"{source.name}.json").unlink(missing_ok=True)
    if delete_articles:
        (archive_dir(data_dir) / f"{source.name}.jsonl").unlink(missing_ok=True)


def find_source(sources: Sequence[Source], name_or_url: str) -> Source:
    """The source of ``sources`` with that name (any case) or URL (its own or its feed's);
    raises :class:`SourceNotFoundError`."""
    key = name_or_url.strip()
    for source in sources:
        if key.lower() == source.name or key in (source.url, source.feed_url):
            return source
    raise SourceNotFoundError(f"No source named {key!r}")
