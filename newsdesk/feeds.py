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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from corpus.feeds import Source, SourceList
from corpus.feeds.sources import state_dir
from newsdesk.settings import Settings

if TYPE_CHECKING:
    from corpus.feeds import RoundSummary
    from index.build import ReindexReport
    from index.embedders import Embedder

__all__ = [
    "FetchResult",
    "add_source",
    "archive_file",
    "clear_pending",
    "fetch",
    "fetch_and_reindex",
    "list_sources",
    "reindex_fetched",
    "reindex_pending",
    "remove_source",
]

PENDING = "reindex-pending"


def _pending_path(settings: Settings) -> Path:
    return state_dir(settings.data_dir) / PENDING


def reindex_pending(settings: Settings) -> bool:
    """Whether fetched articles wait for a re-index."""
    return _pending_path(settings).exists()


def clear_pending(settings: Settings) -> None:
    _pending_path(settings).unlink(missing_ok=True)


def _mark_pending(settings: Settings) -> None:
    path = _pending_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


# ---- the source list ---------------------------------------------------------------------


def list_sources(settings: Settings) -> list[Source]:
    return SourceList(settings.data_dir).list()


def add_source(settings: Settings, url: str, name: str | None = None) -> Source:
    """Follow ``url`` (its articles go to the feeds archive, which re-indexes now read).

    Raises ``BadSourceError`` (bad URL or name) or ``DuplicateSourceError``."""
    source = SourceList(settings.data_dir).add(url, name or None)
    settings.use_feeds_archive()
    return source


def remove_source(settings: Settings, name_or_url: str) -> Source:
    """Stop following a source; its articles stay in the archive (and the index).

    Raises ``SourceNotFoundError``."""
    return SourceList(settings.data_dir).remove(name_or_url)


def archive_file(settings: Settings, source: Source) -> Path:
    """Where ``source``'s articles are kept."""
    return settings.use_feeds_archive() / f"{source.name}.jsonl"


# ---- a round, then the re-index ----------------------------------------------------------


def fetch(settings: Settings, *, transport: Any = None) -> RoundSummary:
    """One round over every source (blocking: run it in a thread from async code).

    Raises ``RoundBusyError`` when another round holds the data folder's round lock."""
    from corpus.feeds import run_round

    settings.use_feeds_archive()
    kwargs = {"transport": transport} if transport is not None else {}
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
    report = run_reindex(settings, embedder, progress=progress)
    clear_pending(settings)
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
) -> FetchResult:
    """``newsdesk fetch``: a round, then an incremental re-index when it wrote articles
    (or an earlier round's articles still wait for one). The embedder is built (lazily)
    only when there is something to re-index."""
    summary = fetch(settings, transport=transport)
    if not reindex_pending(settings):
        return FetchResult(summary, None)
    if embedder is None:
        from newsdesk.services import make_embedder

        embedder = make_embedder(settings, purpose="bulk")
    return FetchResult(summary, reindex_fetched(settings, embedder, progress=progress))
