"""Errors of the feed fetcher.

:class:`FeedsError` subclasses the project's base error (``corpus.errors.NewsdeskError``, at
the bottom layer), so the CLI and the bot word these like every other error; every message
is fit to show a person.
"""

from __future__ import annotations

from corpus.errors import NewsdeskError


class FeedsError(NewsdeskError):
    """Base class of every error raised by :mod:`corpus.feeds`."""


class SourceError(FeedsError):
    """A source cannot be added, found or saved (bad URL, bad name, unknown name)."""


class BadSourceError(SourceError):
    """The URL or the name given for a source is not acceptable (a usage error)."""


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
