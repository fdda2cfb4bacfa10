"""One fetch round over all sources: feeds -> new items -> pages -> articles on disk.

:func:`fetch_round` (async, for the bot's JobQueue) and :func:`run_round` (sync, for the CLI)
return a :class:`RoundSummary`. For each source:

1. GET its feed with the validators of the last fetch; a ``304`` ends it there
   ("not modified"). An HTML page is searched for ``<link rel="alternate">`` feeds and the
   first one is fetched (and remembered); a sitemap index has its child sitemaps fetched.
2. Items already seen with the same fingerprint are left alone (no request at all); the
   same item twice in one feed counts once; new and changed items are taken newest first,
   at most ``max_items_per_source`` (the rest wait for the next round).
3. Each item's page is fetched and extracted (:mod:`corpus.feeds.extract`); when that fails
   the feed's own content is used if it has ``min_fallback_chars``, else the item is skipped
   with the reason. Items that failed for a passing reason (timeout, 5xx, 429) are not
   marked seen, so they are tried again.
4. Articles are stored through :class:`~corpus.feeds.archive.Archive`, then the seen items,
   then the source's status. A source whose feed cannot be fetched or read is reported, its
   failures counted (``failing_after`` in a row: marked failing, logged), and the round
   goes on.

The source list and the round lock are the data folder's by default (``sources.json``,
an ``flock`` on ``feeds-state/round.lock``); a caller whose instances share a state
database hands in its own (``sources=``, ``round_lock=``), so that every machine sees
one list and runs one round at a time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from corpus.feeds.archive import Archive, FeedArticle
from corpus.feeds.errors import (
    ExtractionError,
    FeedParseError,
    FeedsError,
    FetchError,
    RoundBusyError,
    TooLargeError,
)
from corpus.feeds.extract import Extracted, extract_article
from corpus.feeds.http import Fetcher, RobotsCache, Validators
from corpus.feeds.parse import FeedItem, ParsedSource, parse_source
from corpus.feeds.settings import FeedSettings
from corpus.feeds.sources import Source, SourceList, SourceStore, state_dir
from corpus.feeds.store import file_lock, read_json, write_json

__all__ = [
    "ItemSkip",
    "RoundLock",
    "RoundSummary",
    "SourceReport",
    "fetch_round",
    "file_round_lock",
    "run_round",
]

log = logging.getLogger("corpus.feeds")

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/rdf+xml,"
    " application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)
PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"
#: Seen items kept per source (the newest); older ones are forgotten.
MAX_SEEN = 5000
#: Items extracted at once within a source (the per-host limits still apply).
ITEM_CONCURRENCY = 4

#: A round lock: entered, it yields True when this round may run, False (at once, without
#: waiting) when another round holds it.
RoundLock = Callable[[], AbstractContextManager[bool]]


def file_round_lock(data_dir: Path) -> RoundLock:
    """The default round lock: an ``flock`` on ``feeds-state/round.lock`` (one machine)."""
    return lambda: file_lock(state_dir(Path(data_dir)) / "round.lock", blocking=False)


# --------------------------------------------------------------------------- summary


@dataclass(frozen=True, slots=True)
class ItemSkip:
    """An item that was not stored, and why."""

    link: str
    title: str
    reason: str


@dataclass(slots=True)
class SourceReport:
    """What one source gave in a round. ``outcome``: ok, not modified or failed."""

    name: str
    url: str
    outcome: str = "ok"
    reason: str = ""
    notes: list[str] = field(default_factory=list)
    items: int = 0
    new: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0
    fallback: int = 0
    deferred: int = 0
    pages: int = 0
    skipped: list[ItemSkip] = field(default_factory=list)
    failing: bool = False

    def line(self) -> str:
        if self.outcome == "failed":
            tail = " -- marked failing" if self.failing else ""
            return f"{self.name}: failed: {self.reason}{tail}"
        if self.outcome == "not modified":
            return f"{self.name}: not modified (304)"
        parts = [f"{self.items} items"]
        for label, n in (
            ("new or changed", self.new),
            ("added", self.added),
            ("updated", self.updated),
            ("unchanged", self.unchanged),
            ("duplicates", self.duplicates),
            ("skipped", len(self.skipped)),
            ("from feed text", self.fallback),
            ("left for next round", self.deferred),
        ):
            if n:
                parts.append(f"{n} {label}")
        return f"{self.name}: " + ", ".join(parts)


@dataclass(slots=True)
class RoundSummary:
    """The result of one round, for the CLI, the bot and the logs."""

    started: float
    finished: float = 0.0
    sources: list[SourceReport] = field(default_factory=list)
    requests: int = 0
    conditional: int = 0
    not_modified: int = 0
    written: list[str] = field(default_factory=list)

    def _total(self, attr: str) -> int:
        return sum(getattr(s, attr) for s in self.sources)

    @property
    def added(self) -> int:
        return self._total("added")

    @property
    def updated(self) -> int:
        return self._total("updated")

    @property
    def skipped(self) -> list[ItemSkip]:
        return [skip for s in self.sources for skip in s.skipped]

    @property
    def failed(self) -> list[SourceReport]:
        return [s for s in self.sources if s.outcome == "failed"]

    @property
    def changed(self) -> bool:
        """Whether anything was written (so a re-index is worth running)."""
        return bool(self.written)

    @property
    def only_conditional(self) -> bool:
        return self.requests > 0 and self.conditional == self.requests

    def lines(self) -> list[str]:
        """Human-readable summary: totals, one line per source, one per skipped item."""
        took = max(0.0, self.finished - self.started)
        head = (
            f"Fetched {len(self.sources)} sources in {took:.1f} s: {self.added} added, "
            f"{self.updated} updated, {len(self.skipped)} skipped, {len(self.failed)} failed."
        )
        requests = (
            f"{self.requests} requests ({self.conditional} conditional, "
            f"{self.not_modified} answered 304 Not Modified)."
        )
        if not self.written:
            if self.only_conditional:
                requests += " Nothing changed: only conditional requests, nothing written."
            else:
                requests += " Nothing written."
        lines = [head, requests]
        for report in self.sources:
            lines.append("  " + report.line())
            lines.extend(f"    note: {note}" for note in report.notes)
            for skip in report.skipped:
                label = skip.link or skip.title or "(item without link or title)"
                lines.append(f"    skipped {label}: {skip.reason}")
        return lines


# --------------------------------------------------------------------------- state


@dataclass(slots=True)
class _State:
    """Per-source memory between rounds: seen items and child sitemap validators."""

    items: dict[str, dict[str, object]] = field(default_factory=dict)
    sitemaps: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> _State:
        data = read_json(path, {})
        if not isinstance(data, dict):
            return cls()
        items = data.get("items") if isinstance(data.get("items"), dict) else {}
        maps = data.get("sitemaps") if isinstance(data.get("sitemaps"), dict) else {}
        return cls(dict(items), dict(maps))  # type: ignore[arg-type]

    def save(self, path: Path) -> None:
        items = self.items
        if len(items) > MAX_SEEN:
            keep = sorted(items, key=lambda k: float(items[k].get("at", 0)), reverse=True)  # type: ignore[arg-type]
            items = {k: items[k] for k in keep[:MAX_SEEN]}
        write_json(path, {"items": items, "sitemaps": self.sitemaps})


@dataclass(slots=True)
class _Candidate:
    item: FeedItem
    article: FeedArticle | None = None
    reason: str = ""
    transient: bool = False
    fallback: bool = False
    fetched_page: bool = False


# --------------------------------------------------------------------------- round


class _Round:
    def __init__(
        self, data_dir: Path, settings: FeedSettings, fetcher: Fetcher, sources: SourceStore
    ) -> None:
        self.data_dir = data_dir
        self.settings = settings
        self.fetcher = fetcher
        self.sources = sources
        self.archive = Archive(data_dir)
        self.written: set[str] = set()

    async def source(self, source: Source) -> SourceReport:
        report = SourceReport(name=source.name, url=source.url)
        state_path = state_dir(self.data_dir) / f"{source.name}.json"
        state = _State.load(state_path)
        changes: dict[str, object] = {"last_fetch": time.time()}
        try:
            parsed, changes_feed = await self._feed(source, state, report)
            changes.update(changes_feed)
            if parsed is not None:
                await self._items(source, parsed, state, report)
                self.written.update(str(p) for p in self.archive.save())
                state.save(state_path)
        except (FetchError, FeedParseError) as exc:
            report.outcome, report.reason = "failed", getattr(exc, "reason", None) or str(exc)
        except FeedsError as exc:
            report.outcome, report.reason = "failed", str(exc)
        except Exception as exc:  # a bug must not end the round for every source
            log.exception("feeds: source %s: unexpected error", source.name)
            report.outcome, report.reason = "failed", f"internal error ({type(exc).__name__})"
        self._finish(source, report, changes)
        return report

    def _finish(self, source: Source, report: SourceReport, changes: dict[str, object]) -> None:
        count = self.archive.count(source.name)

        def change(stored: Source) -> Source:
            updated = replace(stored, articles=count, **changes)  # type: ignore[arg-type]
            if report.outcome == "failed":
                failures = stored.failures + 1
                failing = failures >= self.settings.failing_after
                return replace(
                    updated,
                    failures=failures,
                    last_error=report.reason,
                    status="failing" if failing else "error",
                )
            return replace(
                updated, failures=0, last_error="", status="ok", last_success=time.time()
            )

        stored = self.sources.update(source.name, change)
        if stored is not None and stored.failing:
            report.failing = True
            log.warning(
                "feeds: source %s is failing (%d rounds in a row): %s",
                stored.name,
                stored.failures,
                stored.last_error,
            )
        elif report.outcome == "failed":
            log.info("feeds: source %s failed: %s", source.name, report.reason)

    # ------------------------------------------------------------------ the feed

    async def _feed(
        self, source: Source, state: _State, report: SourceReport
    ) -> tuple[ParsedSource | None, dict[str, object]]:
        s = self.settings
        url = source.fetch_url
        validators = Validators(source.etag, source.last_modified)
        response = await self.fetcher.get(
            url, validators=validators, max_bytes=s.max_feed_bytes, accept=FEED_ACCEPT
        )
        if response.not_modified:
            report.outcome = "not modified"
            return None, {}
        changes: dict[str, object] = {
            "etag": response.validators.etag,
            "last_modified": response.validators.last_modified,
        }
        if response.redirected_from:
            report.notes.append(f"feed redirected to {response.url}")
        parsed = parse_source(response.content, response.url, response.content_type)
        if parsed.kind == "html":
            if not parsed.links:
                raise FeedParseError(
                    'an HTML page, not a feed, and it names no feed (<link rel="alternate">)'
                )
            feed_url = parsed.links[0]
            report.notes.append(f"feed found on the page: {feed_url}")
            response = await self.fetcher.get(
                feed_url, max_bytes=s.max_feed_bytes, accept=FEED_ACCEPT
            )
            parsed = parse_source(response.content, response.url, response.content_type)
            if parsed.kind not in ("feed", "sitemap", "sitemapindex"):
                raise FeedParseError(f"the feed named by the page is not a feed: {feed_url}")
            changes.update(
                feed_url=feed_url,
                etag=response.validators.etag,
                last_modified=response.validators.last_modified,
            )
        if parsed.kind == "sitemapindex":
            parsed = await self._children(parsed, state, report)
        if parsed.warning:
            report.notes.append(f"feed is not well-formed, read anyway ({parsed.warning})")
        changes["kind"] = "sitemap" if parsed.kind.startswith("sitemap") else "feed"
        if parsed.title and not source.title:
            changes["title"] = parsed.title
        return parsed, changes

    async def _children(
        self, index: ParsedSource, state: _State, report: SourceReport
    ) -> ParsedSource:
        merged = ParsedSource(kind="sitemap", format="sitemap")
        for child in index.links[: self.settings.max_child_sitemaps]:
            old = state.sitemaps.get(child, {})
            try:
                response = await self.fetcher.get(
                    child,
                    validators=Validators(old.get("etag", ""), old.get("last_modified", "")),
                    max_bytes=self.settings.max_feed_bytes,
                    accept=FEED_ACCEPT,
                )
            except FetchError as exc:
                report.notes.append(f"child sitemap {child}: {exc.reason}")
                continue
            if response.not_modified:
                continue
            try:
                parsed = parse_source(response.content, response.url, response.content_type)
            except FeedParseError as exc:
                report.notes.append(f"child sitemap {child}: {exc}")
                continue
            merged.items.extend(parsed.items)
            state.sitemaps[child] = {
                "etag": response.validators.etag,
                "last_modified": response.validators.last_modified,
            }
        skipped = len(index.links) - self.settings.max_child_sitemaps
        if skipped > 0:
            report.notes.append(f"{skipped} child sitemaps not followed")
        return merged

    # ------------------------------------------------------------------ the items

    async def _items(
        self, source: Source, parsed: ParsedSource, state: _State, report: SourceReport
    ) -> None:
        report.items = len(parsed.items)
        items = parsed.items
        if parsed.kind == "sitemap":  # newest first; sitemaps come in any order
            items = sorted(items, key=lambda i: i.published or i.updated, reverse=True)
        todo: list[FeedItem] = []
        keys: set[str] = set()
        links: set[str] = set()
        for item in items:
            if item.key in keys or (item.link and item.link in links):
                report.skipped.append(ItemSkip(item.link, item.title, "duplicate item in the feed"))
                continue
            keys.add(item.key)
            if item.link:
                links.add(item.link)
            seen = state.items.get(item.key)
            if seen is not None and seen.get("fp") == item.fingerprint:
                report.unchanged += 1
                continue
            if seen is None and item.link and self.archive.known_link(item.link):
                # Stored before (state lost or another source): no need to fetch it again.
                report.unchanged += 1
                state.items[item.key] = {"fp": item.fingerprint, "at": time.time()}
                continue
            todo.append(item)
        cap = self.settings.max_items_per_source
        report.new = len(todo)
        report.deferred = max(0, len(todo) - cap)
        todo = todo[:cap]

        limit = asyncio.Semaphore(ITEM_CONCURRENCY)

        async def one(item: FeedItem) -> _Candidate:
            async with limit:
                return await self._candidate(source, item)

        candidates = await asyncio.gather(*(one(item) for item in todo))
        for candidate in candidates:  # stored in feed order: the first copy of a text wins
            item = candidate.item
            report.pages += candidate.fetched_page
            if candidate.article is None:
                report.skipped.append(ItemSkip(item.link, item.title, candidate.reason))
                if not candidate.transient:
                    state.items[item.key] = {
                        "fp": item.fingerprint,
                        "at": time.time(),
                        "result": "skipped",
                    }
                continue
            result = self.archive.put(source.name, candidate.article)
            if result.action == "duplicate":
                report.duplicates += 1
                report.skipped.append(
                    ItemSkip(item.link, item.title, f"same text as {result.of}, not stored twice")
                )
            else:
                setattr(report, result.action, getattr(report, result.action) + 1)
                report.fallback += candidate.fallback and result.action != "unchanged"
            state.items[item.key] = {
                "fp": item.fingerprint,
                "at": time.time(),
                "url": candidate.article.url,
                "result": result.action,
            }

    async def _candidate(self, source: Source, item: FeedItem) -> _Candidate:
        s = self.settings
        candidate = _Candidate(item)
        page_reason = ""
        extracted: Extracted | None = None
        final_url = item.link
        if not item.link:
            page_reason = "no link"
        elif urlsplit(item.link).scheme not in ("http", "https"):
            page_reason = f"link is not http(s): {item.link[:80]}"
        else:
            try:
                response = await self.fetcher.get(item.link, accept=PAGE_ACCEPT)
                candidate.fetched_page = True
                final_url = response.url
                extracted = await asyncio.to_thread(
                    extract_article,
                    response.content,
                    response.url,
                    charset=response.charset,
                    min_chars=s.min_article_chars,
                )
            except FetchError as exc:
                page_reason = f"page {exc.reason}"
                candidate.transient = exc.status is None or exc.status >= 500 or exc.status == 429
                if isinstance(exc, TooLargeError) or "forbidden by robots.txt" in exc.reason:
                    candidate.transient = False
            except ExtractionError as exc:
                page_reason = f"page: {exc.reason}"
        if extracted is not None:
            url = extracted.canonical_url
            if urlsplit(url).scheme not in ("http", "https"):
                url = final_url
            candidate.article = FeedArticle(
                url=url,
                title=item.title or extracted.title or url,
                text=extracted.text,
                published=item.published or extracted.date or item.updated,
                source=source.title or source.name,
                author=extracted.author or item.author,
                link=item.link,
            )
            return candidate
        content = item.content.strip()
        if len(content) >= s.min_fallback_chars and (item.title or content):
            candidate.article = FeedArticle(
                url=final_url or f"urn:feed:{source.name}:{item.key}",
                title=item.title or content.split("\n", 1)[0][:120],
                text=content,
                published=item.published or item.updated,
                source=source.title or source.name,
                author=item.author,
                link=item.link,
            )
            candidate.fallback = True
            candidate.transient = False
            return candidate
        if content:
            fallback = f"feed text too short ({len(content)} < {s.min_fallback_chars} characters)"
        else:
            fallback = "no feed text to fall back on"
        candidate.reason = f"{page_reason}; {fallback}"
        return candidate


async def fetch_round(
    data_dir: Path,
    settings: FeedSettings | None = None,
    *,
    names: list[str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    sources: SourceStore | None = None,
    round_lock: RoundLock | None = None,
) -> RoundSummary:
    """Fetch every source under ``data_dir`` once (or only ``names``); never raises for a
    bad source. Raises :class:`RoundBusyError` when another round holds the lock.

    ``sources``: the source list (default: ``SourceList(data_dir)``); ``round_lock``: the
    lock one round at a time holds (default: :func:`file_round_lock`). Articles and fetch
    state go to ``data_dir`` either way.
    """
    settings = settings or FeedSettings()
    data_dir = Path(data_dir)
    store = sources if sources is not None else SourceList(data_dir)
    lock = round_lock if round_lock is not None else file_round_lock(data_dir)
    summary = RoundSummary(started=time.time())
    with lock() as locked:
        if not locked:
            raise RoundBusyError("Another fetch round is running; try again when it ends")
        robots_path = state_dir(data_dir) / "robots.json"
        robots = RobotsCache.from_json(read_json(robots_path, {}))
        wanted_sources = store.list()
        if names is not None:
            wanted = {n.lower() for n in names}
            wanted_sources = [s for s in wanted_sources if s.name in wanted]
        async with Fetcher(settings, robots=robots, transport=transport) as fetcher:
            run = _Round(data_dir, settings, fetcher, store)
            for where in run.archive.unreadable:
                log.warning("feeds: unreadable archive line kept as is: %s", where)
            parallel = asyncio.Semaphore(max(1, settings.parallel_sources))

            async def guarded(source: Source) -> SourceReport:
                async with parallel:
                    return await run.source(source)

            summary.sources = list(await asyncio.gather(*(guarded(s) for s in wanted_sources)))
            stats = fetcher.stats
        write_json(robots_path, robots.to_json())
    summary.requests = stats.requests
    summary.conditional = stats.conditional
    summary.not_modified = stats.not_modified
    summary.written = sorted(run.written)
    summary.finished = time.time()
    log.info("feeds: %s", " ".join(summary.lines()[:2]))
    return summary


def run_round(
    data_dir: Path, settings: FeedSettings | None = None, **kwargs: object
) -> RoundSummary:
    """:func:`fetch_round` for synchronous callers (the CLI)."""
    return asyncio.run(fetch_round(data_dir, settings, **kwargs))  # type: ignore[arg-type]
