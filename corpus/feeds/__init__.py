"""Follow news sources: fetch feeds and sitemaps, extract articles, store them as JSON Lines.

This package is part of the corpus layer: it imports nothing from ``index``, ``bot`` or
``newsdesk``. What the CLI and the bot need is re-exported here:

* :class:`FeedSettings` -- what a round may do (timeouts, caps, politeness, interval);
* :class:`SourceList` / :class:`Source` -- the followed sources under a data folder;
* :func:`fetch_round` (async) / :func:`run_round` (sync) -> :class:`RoundSummary`;
* :func:`archive_dir` -- the corpus folder to index (``<data_dir>/feeds``).

Layout under the data folder: ``sources.json`` (the list and each source's state),
``feeds/<name>.jsonl`` (articles, read by :mod:`corpus.loaders`), ``feeds-state/`` (seen
items, robots.txt cache, locks).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1"

from corpus.feeds.errors import (
    BadSourceError,
    DuplicateSourceError,
    FeedsError,
    RoundBusyError,
    SourceError,
    SourceNotFoundError,
)
from corpus.feeds.settings import FeedSettings
from corpus.feeds.sources import Source, SourceList, archive_dir

if TYPE_CHECKING:
    from corpus.feeds.round import ItemSkip, RoundSummary, SourceReport, fetch_round, run_round

#: Names of corpus.feeds.round, imported on first use: the round pulls in httpx, feedparser
#: and trafilatura (0.7 s), which settings and ``sources list`` do not need.
_ROUND = ("ItemSkip", "RoundSummary", "SourceReport", "fetch_round", "run_round")


def __getattr__(name: str) -> object:
    if name in _ROUND:
        from corpus.feeds import round as round_module

        return getattr(round_module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BadSourceError",
    "DuplicateSourceError",
    "FeedSettings",
    "FeedsError",
    "ItemSkip",
    "RoundBusyError",
    "RoundSummary",
    "Source",
    "SourceError",
    "SourceList",
    "SourceNotFoundError",
    "SourceReport",
    "archive_dir",
    "fetch_round",
    "run_round",
]
