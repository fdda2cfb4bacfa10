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

__version__ = "0.1"

from corpus.feeds.errors import (
    DuplicateSourceError,
    FeedsError,
    RoundBusyError,
    SourceError,
    SourceNotFoundError,
)
from corpus.feeds.round import ItemSkip, RoundSummary, SourceReport, fetch_round, run_round
from corpus.feeds.settings import FeedSettings
from corpus.feeds.sources import Source, SourceList, archive_dir

__all__ = [
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
