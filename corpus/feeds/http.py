"""HTTP for the fetcher: one polite httpx client per round.

:class:`Fetcher` sends every request with a User-Agent naming Newsdesk and

* at most ``per_host_concurrency`` requests to a host at a time, their starts at least
  ``per_host_delay`` apart (or the host's robots.txt ``Crawl-delay``, up to 30 s);
* conditional GET: pass the :class:`Validators` of the last fetch, a ``304`` comes back as a
  :class:`Response` with ``not_modified``;
* redirects followed by hand, at most ``max_redirects``, a loop reported as such, robots.txt
  checked at every hop;
* a cap on the body size (Content-Length checked first, then while streaming);
* robots.txt fetched once per host (kept a day in :class:`RobotsCache`, then re-checked
  with a conditional request), obeyed for our agent; a missing one (4xx) allows all, an
  unreachable one (5xx, network) disallows the host for now (RFC 9309);
* retries with doubling backoff on timeouts, connection errors and 5xx; a 429 (or 503) with
  ``Retry-After`` waits that long when it is at most ``max_retry_after``, and holds back every
  other request to that host meanwhile.

Failures raise :class:`~corpus.feeds.errors.FetchError` (or a subclass) with a short reason.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from urllib.parse import urljoin, urlsplit
from urllib.robotparser import RobotFileParser

import httpx

from corpus.feeds.errors import FetchError, RobotsDisallowedError, TooLargeError
from corpus.feeds.settings import FeedSettings

__all__ = [
    "FetchStats",
    "Fetcher",
    "Response",
    "RobotsCache",
    "RobotsEntry",
    "Validators",
    "host_of",
]

_RETRY_STATUSES = frozenset({500, 502, 503, 504})
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_ROBOTS_MAX_BYTES = 500_000
_ROBOTS_TTL = 24 * 3600.0
_MAX_CRAWL_DELAY = 30.0


def host_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL: the unit of politeness and of robots.txt."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


@dataclass(frozen=True, slots=True)
class Validators:
    """What a conditional GET sends back: the ETag and Last-Modified of the last 200."""

    etag: str = ""
    last_modified: str = ""

    def __bool__(self) -> bool:
        return bool(self.etag or self.last_modified)

    def headers(self) -> dict[str, str]:
        sent: dict[str, str] = {}
        if self.etag:
            sent["If-None-Match"] = self.etag
        if self.last_modified:
            sent["If-Modified-Since"] = self.last_modified
        return sent


@dataclass(frozen=True, slots=True)
class Response:
    """A fetched URL. ``url`` is where the redirects ended; ``content`` is empty on 304."""

    url: str
    status: int
    content: bytes = b""
    content_type: str = ""
    charset: str | None = None
    validators: Validators = Validators()
    redirected_from: str = ""

    @property
    def not_modified(self) -> bool:
        return self.status == 304


@dataclass(slots=True)
class RobotsEntry:
    """One host's robots.txt as last fetched (``body`` empty and ``allow_all`` for a 4xx)."""

    fetched_at: float
    body: str = ""
    allow_all: bool = False
    etag: str = ""
    last_modified: str = ""

    def to_json(self) -> dict[str, object]:
        return {
            "fetched_at": self.fetched_at,
            "body": self.body,
            "allow_all": self.allow_all,
            "etag": self.etag,
            "last_modified": self.last_modified,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> RobotsEntry:
        return cls(
            fetched_at=float(data.get("fetched_at", 0) or 0),  # type: ignore[arg-type]
            body=str(data.get("body", "")),
            allow_all=bool(data.get("allow_all", False)),
            etag=str(data.get("etag", "")),
            last_modified=str(data.get("last_modified", "")),
        )


@dataclass(slots=True)
class RobotsCache:
    """robots.txt by host, kept between rounds by the caller (see :mod:`corpus.feeds.round`)."""

    entries: dict[str, RobotsEntry] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {host: entry.to_json() for host, entry in sorted(self.entries.items())}

    @classmethod
    def from_json(cls, data: object) -> RobotsCache:
        if not isinstance(data, dict):
            return cls()
        return cls(
            {
                str(host): RobotsEntry.from_json(entry)
                for host, entry in data.items()
                if isinstance(entry, dict)
            }
        )


@dataclass(slots=True)
class FetchStats:
    """Requests sent in a round: all of them, the conditional ones, and what came back."""

    requests: int = 0
    conditional: int = 0
    not_modified: int = 0
    retries: int = 0


@dataclass(slots=True)
class _Host:
    slots: asyncio.Semaphore
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    next_start: float = 0.0
    delay: float = 0.0


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _charset(content_type: str) -> str | None:
    for part in content_type.split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            return value.strip().strip("\"'")
    return None


class Fetcher:
    """A polite HTTP client for one round; use as ``async with Fetcher(settings) as f``."""

    def __init__(
        self,
        settings: FeedSettings,
        *,
        robots: RobotsCache | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.robots = robots if robots is not None else RobotsCache()
        self.stats = FetchStats()
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._hosts: dict[str, _Host] = {}
        self._robots_locks: dict[str, asyncio.Lock] = {}
        self._parsers: dict[str, RobotFileParser | None] = {}
        self._robots_problems: dict[str, str] = {}

    async def __aenter__(self) -> Fetcher:
        s = self.settings
        self._client = httpx.AsyncClient(
            headers={"User-Agent": s.user_agent, "Accept-Encoding": "gzip, deflate"},
            timeout=httpx.Timeout(s.read_timeout, connect=s.connect_timeout),
            follow_redirects=False,
            transport=self._transport,
            trust_env=False,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # ------------------------------------------------------------------ politeness

    def _host(self, host: str) -> _Host:
        state = self._hosts.get(host)
        if state is None:
            concurrency = max(1, min(2, self.settings.per_host_concurrency))
            state = _Host(asyncio.Semaphore(concurrency), delay=self.settings.per_host_delay)
            self._hosts[host] = state
        return state

    @asynccontextmanager
    async def _slot(self, url: str) -> AsyncIterator[None]:
        state = self._host(host_of(url))
        async with state.slots:
            async with state.lock:
                wait = state.next_start - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                state.next_start = time.monotonic() + state.delay
            yield

    def _hold_host(self, url: str, seconds: float) -> None:
        state = self._host(host_of(url))
        state.next_start = max(state.next_start, time.monotonic() + seconds)

    # ------------------------------------------------------------------ robots.txt

    async def robots_verdict(self, url: str) -> str | None:
        """``None`` when ``url`` may be fetched, else why not (forbidden, or unreachable)."""
        if not self.settings.respect_robots:
            return None
        host = host_of(url)
        lock = self._robots_locks.setdefault(host, asyncio.Lock())
        async with lock:
            if host not in self._parsers:
                self._parsers[host] = await self._load_robots(host)
        parser = self._parsers[host]
        if parser is None:
            problem = self._robots_problems.get(host, "")
            return f"robots.txt unreachable ({problem}), host skipped for now"
        if not parser.can_fetch(self.settings.user_agent, url):
            return "forbidden by robots.txt"
        return None

    async def _load_robots(self, host: str) -> RobotFileParser | None:
        entry = self.robots.entries.get(host)
        now = time.time()
        if entry is None or now - entry.fetched_at > _ROBOTS_TTL:
            entry = await self._fetch_robots(host, entry)
            if entry is None:
                return None
            self.robots.entries[host] = entry
        parser = RobotFileParser()
        if entry.allow_all:
            parser.allow_all = True
        else:
            parser.parse(entry.body.splitlines())
        delay = parser.crawl_delay(self.settings.user_agent)
        if delay:
            state = self._host(host)
            state.delay = max(state.delay, min(float(delay), _MAX_CRAWL_DELAY))
        return parser

    async def _fetch_robots(self, host: str, old: RobotsEntry | None) -> RobotsEntry | None:
        url = f"{host}/robots.txt"
        validators = Validators(old.etag, old.last_modified) if old else Validators()
        try:
            response = await self._get_following(
                url, validators, _ROBOTS_MAX_BYTES, check_robots=False, accept="text/plain"
            )
        except FetchError as exc:
            if exc.status is not None and 400 <= exc.status < 500:
                return RobotsEntry(fetched_at=time.time(), allow_all=True)
            self._robots_problems[host] = exc.reason
            return None  # unreachable robots.txt: stay away from the host for now (RFC 9309)
        if response.not_modified and old is not None:
            old.fetched_at = time.time()
            return old
        body = response.content.decode("utf-8", errors="replace")
        return RobotsEntry(
            fetched_at=time.time(),
            body=body,
            etag=response.validators.etag,
            last_modified=response.validators.last_modified,
        )

    # ------------------------------------------------------------------ fetching

    async def get(
        self,
        url: str,
        *,
        validators: Validators | None = None,
        max_bytes: int | None = None,
        accept: str = "*/*",
    ) -> Response:
        """GET ``url`` politely; raises :class:`FetchError` with a reason when it fails."""
        limit = max_bytes if max_bytes is not None else self.settings.max_page_bytes
        return await self._get_following(
            url, validators or Validators(), limit, check_robots=True, accept=accept
        )

    async def _get_following(
        self, url: str, validators: Validators, max_bytes: int, *, check_robots: bool, accept: str
    ) -> Response:
        seen = [url]
        current = url
        for _ in range(self.settings.max_redirects + 1):
            if urlsplit(current).scheme not in ("http", "https"):
                raise FetchError(url, f"redirected to a non-HTTP URL {current}")
            verdict = await self.robots_verdict(current) if check_robots else None
            if verdict is not None:
                raise RobotsDisallowedError(current, verdict)
            # Validators only belong to the URL they were stored for.
            sent = validators if current == url else Validators()
            status, location, response = await self._attempts(current, sent, max_bytes, accept)
            if location is None:
                assert response is not None
                if current != url:
                    response = replace(response, redirected_from=url)
                return response
            target = urljoin(current, location)
            if target in seen:
                raise FetchError(url, f"redirect loop ({status} back to {target})", status=status)
            seen.append(target)
            current = target
        raise FetchError(
            url, f"too many redirects (more than {self.settings.max_redirects})", status=None
        )

    async def _attempts(
        self, url: str, validators: Validators, max_bytes: int, accept: str
    ) -> tuple[int, str | None, Response | None]:
        s = self.settings
        attempt = 0
        while True:
            try:
                return await self._once(url, validators, max_bytes, accept)
            except _Retryable as exc:
                if attempt >= s.retries:
                    raise FetchError(url, exc.reason, status=exc.status) from None
                wait = s.backoff * (2**attempt)
                if exc.retry_after is not None:
                    if exc.retry_after > s.max_retry_after:
                        raise FetchError(
                            url,
                            f"{exc.reason}; Retry-After {exc.retry_after:.0f} s is too long",
                            status=exc.status,
                        ) from None
                    wait = exc.retry_after
                    self._hold_host(url, wait)
                attempt += 1
                self.stats.retries += 1
                await asyncio.sleep(wait)

    async def _once(
        self, url: str, validators: Validators, max_bytes: int, accept: str
    ) -> tuple[int, str | None, Response | None]:
        assert self._client is not None, "use Fetcher as an async context manager"
        headers = {"Accept": accept, **validators.headers()}
        async with self._slot(url):
            self.stats.requests += 1
            if validators:
                self.stats.conditional += 1
            try:
                async with self._client.stream("GET", url, headers=headers) as r:
                    return await self._read(url, r, max_bytes)
            except httpx.TimeoutException:
                raise _Retryable("timed out") from None
            except httpx.TransportError as exc:
                raise _Retryable(f"connection failed ({type(exc).__name__})") from None

    async def _read(
        self, url: str, r: httpx.Response, max_bytes: int
    ) -> tuple[int, str | None, Response | None]:
        status = r.status_code
        if status in _REDIRECT_STATUSES:
            location = r.headers.get("location")
            if not location:
                raise FetchError(url, f"HTTP {status} without a Location", status=status)
            return status, location, None
        if status == 304:
            self.stats.not_modified += 1
            return status, None, Response(url=url, status=304, validators=_validators(r))
        if status == 429 or (status == 503 and "retry-after" in r.headers):
            raise _Retryable(
                f"HTTP {status} (rate limited)", status, _retry_after(r.headers.get("retry-after"))
            )
        if status in _RETRY_STATUSES:
            raise _Retryable(f"HTTP {status}", status)
        if status >= 400:
            raise FetchError(url, f"HTTP {status}", status=status)
        if status != 200:
            raise FetchError(url, f"unexpected HTTP {status}", status=status)
        declared = r.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise TooLargeError(url, f"body too large ({int(declared):,} > {max_bytes:,} bytes)")
        chunks: list[bytes] = []
        size = 0
        async for chunk in r.aiter_bytes():
            size += len(chunk)
            if size > max_bytes:
                raise TooLargeError(url, f"body too large (over {max_bytes:,} bytes)")
            chunks.append(chunk)
        content_type = r.headers.get("content-type", "")
        return (
            status,
            None,
            Response(
                url=url,
                status=status,
                content=b"".join(chunks),
                content_type=content_type.split(";")[0].strip().lower(),
                charset=_charset(content_type),
                validators=_validators(r),
            ),
        )


class _Retryable(Exception):
    def __init__(self, reason: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


def _validators(r: httpx.Response) -> Validators:
    return Validators(r.headers.get("etag", ""), r.headers.get("last-modified", ""))
