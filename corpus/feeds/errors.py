"""Errors of the feed fetcher.

The project's base error (``NewsdeskError``) lives in ``index/errors.py``, above the corpus
layer, so it cannot be imported here (corpus <- index <- bot, cli). :class:`FeedsError` is
the corpus-level base for this package; every message is fit to show a person.
"""

from __future__ import annotations


class FeedsError(Exception):
    """Base class of every error raised by :mod:`corpus.feeds`."""


class SourceError(FeedsError):
    """A source cannot be added, found or saved (bad URL, bad name, unknown name)."""


class DuplicateSourceError(SourceError):
    """A source with that name or URL is already in the list."""


class SourceNotFoundError(SourceError):
    """No source with that name or URL."""


class FetchError(FeedsError):
    """An HTTP fetch failed for good (after retries); ``reason`` is a short phrase."""

    def __init__(self, url: str, reason: str, *, status: int | None = None) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason
        self.status = status


class RobotsDisallowedError(FetchError):
    """robots.txt forbids fetching the URL for our user agent."""


class TooLargeError(FetchError):
    """The response body is larger than the configured cap."""


class FeedParseError(FeedsError):
    """A body is neither a feed, a sitemap nor an HTML page pointing at a feed."""


class RoundBusyError(FeedsError):
    """Another fetch round holds the lock on the data folder."""


class ExtractionError(FeedsError):
    """A page holds no extractable article; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
