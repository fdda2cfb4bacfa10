"""Following news sources, composed for both front ends: the source list, a fetch round
(``corpus.feeds``) and the incremental re-index that brings its articles into the index.

The CLI (``newsdesk sources``, ``newsdesk fetch``) and the bot's ``/sources`` and scheduled
rounds call these; neither words anything here. The re-index is the one every other path
uses (``newsdesk.services.run_reindex`` over ``settings.corpus_dirs``, which holds the
feeds archive once ``use_feeds_archive`` ran), so the index's change log and the alerts
that read it see fetched articles like any other.

A round that wrote articles leaves a mark (``feeds-state/reindex-pending``) until a
re-index has read them: a re-index that could not run (another one held the index lock)
is run by the next ``fetch`` or scheduled round even when that round changes nothing.

Where the list lives: by default ``<data_dir>/sources.json`` (``corpus.feeds.SourceList``)
and one round at a time per data folder (its round lock file). With a state database
configured (``NEWSDESK_DATABASE_URL``), the list is in that database
(``newsdesk.source_store``), shared by every instance and every ``newsdesk`` command, and
the round lock is the database's ``try_lock("feeds-round")``: a round running on any
machine makes another skip. Functions take the caller's open ``database`` (the bot's) or
open and close one themselves (the CLI).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from corpus.feeds import Source, SourceList
from corpus.feeds.sources import SourceStore, state_dir
from corpus.feeds.store import atomic_write
from newsdesk.settings import Settings

if TYPE_CHECKING:
    from corpus.feeds import RoundSummary
    from index.build import ReindexReport
    from index.database import Database
    from index.embedders import Embedder

__all__ = [
    "FetchResult",
    "add_source",
    "archive_file",
    "clear_pending",
    "fetch",
    "fetch_and_reindex",
    "list_sources",
    "pending_mark",
    "reindex_fetched",
    "reindex_pending",
    "remove_source",
    "shared_database",
    "source_list",
]

PENDING = "reindex-pending"
#: The state database's lock that one fetch round at a time holds, across machines.
ROUND_LOCK = "feeds-round"


def _pending_path(settings: Settings) -> Path:
    return state_dir(settings.data_dir) / PENDING


def reindex_pending(settings: Settings) -> bool:
    """Whether fetched articles wait for a re-index."""
    return _pending_path(settings).exists()


def pending_mark(settings: Settings) -> str | None:
    """The current mark (each round that wrote articles leaves a new one), or None."""
    try:
        return _pending_path(settings).read_text("utf-8")
    except FileNotFoundError:
        return None


def clear_pending(settings: Settings, seen: str | None) -> None:
    """Clear the mark ``seen`` before a re-index, unless a round left a new one meanwhile
    (on another instance, or `newsdesk fetch`): its articles may have been written after
    the re-index read the corpus, so they still wait."""
    if seen is not None and pending_mark(settings) == seen:
        _pending_path(settings).unlink(missing_ok=True)


def _mark_pending(settings: Settings) -> None:
    path = _pending_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, uuid.uuid4().hex)


# ---- the source list ---------------------------------------------------------------------


@contextmanager
def shared_database(settings: Settings, database: Database | None = None) -> Iterator[Database]:
    """The state database the sources live in (``database_url`` set): ``database`` when
    the caller has it open (the bot), else one opened for the block. Raises
    ``StateDatabaseError`` when it cannot be reached."""
    if database is not None:
        yield database
        return
    from newsdesk.services import open_state_database

    opened = open_state_database(settings)
    try:
        yield opened
    finally:
        opened.close()


@contextmanager
def source_list(settings: Settings, database: Database | None = None) -> Iterator[SourceStore]:
    """The followed sources: in the state database when ``database_url`` is set (shared
    by every instance), else ``<data_dir>/sources.json`` (``database`` is then unused:
    the bot's SQLite state file does not hold them)."""
    if settings.database_url is None:
        yield SourceList(settings.data_dir)
        return
    from newsdesk.source_store import DatabaseSourceList

    with shared_database(settings, database) as db:
        yield DatabaseSourceList(db, settings.data_dir)


def list_sources(settings: Settings, database: Database | None = None) -> list[Source]:
    with source_list(settings, database) as sources:
        return sources.list()


def add_source(
    settings: Settings, url: str, name: str | None = None, database: Database | None = None
) -> Source:
    """Follow ``url`` (its articles go to the feeds archive, which re-indexes now read).

    Raises ``BadSourceError`` (bad URL or name) or ``DuplicateSourceError``."""
    with source_list(settings, database) as sources:
        source = sources.add(url, name or None)
    settings.use_feeds_archive()
    return source


def remove_source(settings: Settings, name_or_url: str, database: Database | None = None) -> Source:
    """Stop following a source; its articles stay in the archive (and the index).

    Raises ``SourceNotFoundError``."""
    with source_list(settings, database) as sources:
        return sources.remove(name_or_url)


def archive_file(settings: Settings, source: Source) -> Path:
    """Where ``source``'s articles are kept."""
    return settings.use_feeds_archive() / f"{source.name}.jsonl"


# ---- a round, then the re-index ----------------------------------------------------------


def fetch(
    settings: Settings, *, transport: Any = None, database: Database | None = None
) -> RoundSummary:
    """One round over every source (blocking: run it in a thread from async code).

    Raises ``RoundBusyError`` when another round holds the round lock: the data folder's,
    or with a state database configured the database's (a round on any instance)."""
    from corpus.feeds import run_round

    settings.use_feeds_archive()
    kwargs: dict[str, Any] = {"transport": transport} if transport is not None else {}
    if settings.database_url is None:
        summary = run_round(settings.data_dir, settings.feed_settings(), **kwargs)
    else:
        from newsdesk.source_store import DatabaseSourceList

        with shared_database(settings, database) as db:
            kwargs["sources"] = DatabaseSourceList(db, settings.data_dir)
            kwargs["round_lock"] = lambda: db.try_lock(ROUND_LOCK)
            summary = run_round(settings.data_dir, settings.feed_settings(), **kwargs)
    if summary.changed:
        _mark_pending(settings)
    return summary


def reindex_fetched(
    settings: Settings,
    embedder: Embedder,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> ReindexReport:
    """The incremental re-index of every corpus folder, the feeds archive with them."""
    from newsdesk.services import run_reindex

    settings.use_feeds_archive()
    seen = pending_mark(settings)
    report = run_reindex(settings, embedder, progress=progress)
    clear_pending(settings, seen)
    return report


@dataclass(frozen=True, slots=True)
class FetchResult:
    summary: RoundSummary
    #: The re-index that followed, or None when the round changed nothing.
    report: ReindexReport | None


def fetch_and_reindex(
    settings: Settings,
    embedder: Embedder | None = None,
    *,
    transport: Any = None,
    progress: Callable[[int, int], None] | None = None,
    database: Database | None = None,
) -> FetchResult:
    """``newsdesk fetch``: a round, then an incremental re-index when it wrote articles
    (or an earlier round's articles still wait for one). The embedder is built (lazily)
    only when there is something to re-index."""
    summary = fetch(settings, transport=transport, database=database)
    if not reindex_pending(settings):
        return FetchResult(summary, None)
    if embedder is None:
        from newsdesk.services import make_embedder

        embedder = make_embedder(settings, purpose="bulk")
    return FetchResult(summary, reindex_fetched(settings, embedder, progress=progress))
