"""Settings of the feed fetcher: one frozen dataclass, filled from the app's settings."""

from __future__ import annotations

from dataclasses import dataclass

from corpus.feeds import __version__

DEFAULT_USER_AGENT = f"Newsdesk/{__version__} (news archive bot; feed reader)"


@dataclass(frozen=True, slots=True)
class FeedSettings:
    """What a fetch round may do. Times in seconds unless named otherwise."""

    #: Minutes between scheduled rounds (the bot's JobQueue interval).
    interval_minutes: float = 15.0
    user_agent: str = DEFAULT_USER_AGENT
    connect_timeout: float = 10.0
    #: Read timeout: the longest wait for the next bytes of a response.
    read_timeout: float = 20.0
    #: Most redirects followed for one request.
    max_redirects: int = 5
    #: Caps on response bodies (bytes); a larger body is cut off and reported.
    max_feed_bytes: int = 5_000_000
    max_page_bytes: int = 3_000_000
    #: At most this many requests to one host at a time (1 or 2) ...
    per_host_concurrency: int = 1
    #: ... and at least this long between the starts of two requests to one host.
    per_host_delay: float = 1.0
    #: Sources fetched in parallel (each still bound by the per-host limits).
    parallel_sources: int = 4
    #: Retries after a timeout, a connection error or a 5xx (so attempts = retries + 1).
    retries: int = 2
    #: First backoff; doubled after each retry.
    backoff: float = 1.0
    #: A 429/503 Retry-After longer than this is not waited for: the fetch fails instead.
    max_retry_after: float = 120.0
    #: robots.txt is fetched once per host and round, and obeyed.
    respect_robots: bool = True
    #: New items fetched per source and round (the newest first); the rest wait.
    max_items_per_source: int = 50
    #: Child sitemaps followed from a sitemap index.
    max_child_sitemaps: int = 5
    #: A source is marked failing after this many failed rounds in a row.
    failing_after: int = 3
    #: Extracted text shorter than this (characters) is not an article.
    min_article_chars: int = 200
    #: The feed item's own content is used when the page fails and it is at least this long.
    min_fallback_chars: int = 400
