"""The followed news sources in the state database, for instances that share one.

``corpus.feeds.SourceList`` keeps the list in ``<data_dir>/sources.json``, which is each
machine's own. With ``NEWSDESK_DATABASE_URL`` set, every bot instance and every
``newsdesk sources``/``fetch`` uses :class:`DatabaseSourceList` instead: the same
interface (``corpus.feeds.sources.SourceStore``), the same rules (``new_source`` and
``find_source`` are shared, so names, duplicates and errors are the same), the same
order (the order of adding), kept in the table ``feed_sources`` of that database.

Concurrency (PostgreSQL): ``add`` takes the advisory lock ``feed-sources`` (adds one at
a time, also into an empty table) and locks every row ``FOR UPDATE`` while it checks the
names and URLs, so no round's ``update`` changes a feed URL under it; ``update`` reads
its row ``FOR UPDATE`` and writes it in the same transaction, so a round and an edit
on two machines lose neither. On SQLite (the tests run the behaviour on both) a write
transaction is ``BEGIN IMMEDIATE``, one writer at a time.

What stays in the data folder: the archive of fetched articles and the per-source fetch
state (``feeds/``, ``feeds-state/``), which ``remove`` tidies as ``SourceList`` does.
With several machines that folder must be on the shared storage (docs/feeds.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from corpus.feeds.errors import SourceNotFoundError
from corpus.feeds.sources import Source, check_new, find_source, forget_files, new_source
from index.database import POSTGRES, Connection, Database

__all__ = ["COLUMNS", "STORE", "DatabaseSourceList"]

STORE = "feed_sources"
#: The table's columns after ``id`` (the order of adding): one per ``Source`` field.
COLUMNS = (
    "name",
    "url",
    "feed_url",
    "kind",
    "title",
    "added_at",
    "last_fetch",
    "last_success",
    "status",
    "last_error",
    "failures",
    "articles",
    "etag",
    "last_modified",
)
_FIELDS = """
    name TEXT NOT NULL UNIQUE,
    url TEXT NOT NULL,
    feed_url TEXT NOT NULL DEFAULT '',
    kind TEXT NOT NULL DEFAULT '',
    title TEXT NOT NULL DEFAULT '',
    added_at {real} NOT NULL DEFAULT 0,
    last_fetch {real} NOT NULL DEFAULT 0,
    last_success {real} NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'new',
    last_error TEXT NOT NULL DEFAULT '',
    failures INTEGER NOT NULL DEFAULT 0,
    articles INTEGER NOT NULL DEFAULT 0,
    etag TEXT NOT NULL DEFAULT '',
    last_modified TEXT NOT NULL DEFAULT ''
"""
_MIGRATIONS = (
    # 1: the sources, in the order they were added (id)
    {
        "sqlite": "CREATE TABLE feed_sources (id INTEGER PRIMARY KEY AUTOINCREMENT, "
        + _FIELDS.format(real="REAL")
        + ")",
        "postgres": "CREATE TABLE feed_sources (id BIGINT GENERATED ALWAYS AS IDENTITY "
        "PRIMARY KEY, " + _FIELDS.format(real="DOUBLE PRECISION") + ")",
    },
)
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM feed_sources"
_LOCK = "feed-sources"


def _source(row: Sequence[Any]) -> Source:
    data = dict(zip(COLUMNS, row, strict=True))
    for key in ("added_at", "last_fetch", "last_success"):
        data[key] = float(data[key])
    for key in ("failures", "articles"):
        data[key] = int(data[key])
    return Source(**data)


def _values(source: Source) -> tuple[object, ...]:
    return tuple(getattr(source, column) for column in COLUMNS)


class DatabaseSourceList:
    """``SourceList``'s interface over the state ``database`` (shared by every instance
    when it is PostgreSQL); ``data_dir`` holds the archive and fetch state ``remove``
    tidies. Safe to share between threads: every call takes its own connection."""

    def __init__(self, database: Database, data_dir: Path) -> None:
        self.database = database
        self.data_dir = Path(data_dir)
        # one write transaction (and on PostgreSQL the schema lock) the first time only:
        # the Database remembers, and a list is made for every command and round
        database.migrate(STORE, _MIGRATIONS)

    def __repr__(self) -> str:
        return f"DatabaseSourceList({self.database.label!r})"

    # ------------------------------------------------------------------ reading

    def _all(self, conn: Connection, *, for_update: bool = False) -> list[Source]:
        tail = " FOR UPDATE" if for_update and conn.dialect == POSTGRES else ""
        return [_source(row) for row in conn.execute(f"{_SELECT} ORDER BY id{tail}").fetchall()]

    def list(self) -> list[Source]:
        """All sources, in the order they were added."""
        with self.database.read() as conn:
            return self._all(conn)

    def get(self, name_or_url: str) -> Source:
        """The source with that name or URL; raises ``SourceNotFoundError``."""
        return find_source(self.list(), name_or_url)

    # ------------------------------------------------------------------ changing

    def add(self, url: str, name: str | None = None, **fields_: object) -> Source:
        """Add a source (as ``SourceList.add``: same names, same errors)."""
        url, name = check_new(url, name)
        with self.database.write() as conn:
            conn.lock(_LOCK)
            source = new_source(self._all(conn, for_update=True), url, name, **fields_)
            conn.execute(
                f"INSERT INTO feed_sources ({', '.join(COLUMNS)}) "
                f"VALUES ({', '.join('?' for _ in COLUMNS)})",
                _values(source),
            )
        return source

    def remove(self, name_or_url: str, *, delete_articles: bool = False) -> Source:
        """Stop following a source; its articles stay unless ``delete_articles``.

        Raises ``SourceNotFoundError``."""
        with self.database.write() as conn:
            conn.lock(_LOCK)
            source = find_source(self._all(conn), name_or_url)
            deleted = conn.execute("DELETE FROM feed_sources WHERE name = ?", (source.name,))
            if deleted.rowcount != 1:  # pragma: no cover (the lock keeps it)
                raise SourceNotFoundError(f"No source named {source.name!r}")
        forget_files(self.data_dir, source, delete_articles=delete_articles)
        return source

    def update(self, name: str, change: Callable[[Source], Source]) -> Source | None:
        """Apply ``change`` to the stored source ``name``: read (its row locked) and
        written in one transaction. ``None`` when it was removed meanwhile."""
        with self.database.write() as conn:
            tail = " FOR UPDATE" if conn.dialect == POSTGRES else ""
            row = conn.execute(f"{_SELECT} WHERE name = ?{tail}", (name,)).fetchone()
            if row is None:
                return None
            stored = change(_source(row))
            conn.execute(
                f"UPDATE feed_sources SET {', '.join(f'{c} = ?' for c in COLUMNS)} WHERE name = ?",
                (*_values(stored), name),
            )
        return stored

    def set(self, name: str, **changes: object) -> Source | None:
        """Set fields of the stored source ``name``; ``None`` when it was removed."""
        return self.update(name, lambda s: replace(s, **changes))  # type: ignore[arg-type]
