"""A local HTTP server on 127.0.0.1 for the feed tests (shared by tests/test_feeds_*.py).

Routes map a path to a :class:`Route`: a body with status and headers, optional ETag /
Last-Modified (answered with 304 to a matching conditional request), a delay, a redirect.
Every request is recorded with its headers. The real pages of ../shared/web can be mounted.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from corpus.feeds.settings import FeedSettings

WEB = Path(__file__).resolve().parents[2] / "shared" / "web"

#: Short timeouts and no politeness delay, so the unfriendly cases stay fast.
FAST = FeedSettings(
    connect_timeout=0.5,
    read_timeout=0.5,
    per_host_delay=0.0,
    retries=1,
    backoff=0.05,
    max_retry_after=2.0,
)


class LocalOnly(httpx.AsyncBaseTransport):
    """An httpx transport that refuses every host but 127.0.0.1: tests never go online."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.refused: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host != "127.0.0.1":
            self.refused.append(str(request.url))
            raise httpx.ConnectError("no network in tests", request=request)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def need_web() -> Path:
    if not (WEB / "expected.jsonl").is_file():
        pytest.skip("../shared/web (real pages and sample feeds) is not beside the repo")
    return WEB


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    etag: str = ""
    last_modified: str = ""
    delay: float = 0.0
    location: str = ""


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    at: float

    @property
    def conditional(self) -> bool:
        return "if-none-match" in self.headers or "if-modified-since" in self.headers


class FeedServer:
    """``with FeedServer() as server: server.route("/feed.xml", Route(...))``."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: list[Hit] = []
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                with server._lock:
                    server.hits.append(
                        Hit(self.path, {k.lower(): v for k, v in self.headers.items()}, time.time())
                    )
                    server.active += 1
                    server.max_active = max(server.max_active, server.active)
                try:
                    self._answer()
                finally:
                    with server._lock:
                        server.active -= 1

            def _answer(self) -> None:
                route = server.routes.get(self.path)
                if route is None:
                    route = Route(b"not found", status=404, content_type="text/plain")
                if route.delay:
                    time.sleep(route.delay)
                if route.location:
                    self.send_response(route.status or 302)
                    self.send_header("Location", route.location)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                inm = self.headers.get("If-None-Match")
                ims = self.headers.get("If-Modified-Since")
                if route.status == 200 and (
                    (route.etag and inm == route.etag)
                    or (not inm and route.last_modified and ims == route.last_modified)
                ):
                    self.send_response(304)
                    if route.etag:
                        self.send_header("ETag", route.etag)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(route.status)
                if route.content_type:
                    self.send_header("Content-Type", route.content_type)
                if route.etag:
                    self.send_header("ETag", route.etag)
                if route.last_modified:
                    self.send_header("Last-Modified", route.last_modified)
                for key, value in route.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(route.body)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(route.body)

        class Quiet(ThreadingHTTPServer):
            def handle_error(self, request: object, client_address: object) -> None:
                pass  # clients that hang up early (timeouts, size caps) are expected

        self._httpd = Quiet(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> FeedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def url(self, path: str) -> str:
        return self.base + path

    def route(self, path: str, route: Route) -> str:
        self.routes[path] = route
        return self.url(path)

    def hits_for(self, path: str) -> list[Hit]:
        return [h for h in self.hits if h.path == path]

    def mount_page(self, name: str, *, cached: bool = True) -> str:
        """Serve ../shared/web/pages/<name> at /pages/<name> (with an ETag when cached)."""
        body = (need_web() / "pages" / name).read_bytes()
        etag = f'"{name}"' if cached else ""
        return self.route(f"/pages/{name}", Route(body, etag=etag, last_modified=HTTP_DATE))


HTTP_DATE = formatdate(1_700_000_000, usegmt=True)


def rss(items: list[dict[str, str]], *, title: str = "Local feed") -> bytes:
    """An RSS 2.0 feed; each item may have title, link, guid, pubDate, description."""
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel>',
        f"<title>{title}</title><link>http://127.0.0.1/</link><description>d</description>",
    ]
    for item in items:
        parts.append("<item>")
        for key, value in item.items():
            if key == "description":
                parts.append(f"<description><![CDATA[{value}]]></description>")
            else:
                parts.append(f"<{key}>{value}</{key}>")
        parts.append("</item>")
    parts.append("</channel></rss>")
    return "".join(parts).encode()


RSS_TYPE = "application/rss+xml; charset=utf-8"


def serve() -> Iterator[FeedServer]:
    """Body of the ``server`` fixture each feed test module defines (``yield from serve()``)."""
    with FeedServer() as running:
        running.route("/robots.txt", Route(b"User-agent: *\nAllow: /\n", content_type="text/plain"))
        yield running


@pytest.fixture
def server() -> Iterator[FeedServer]:
    yield from serve()


def test_server_answers_conditional_requests(server: FeedServer) -> None:
    url = server.route("/x", Route(b"hello", etag='"1"'))
    first = httpx.get(url)
    second = httpx.get(url, headers={"If-None-Match": '"1"'})
    assert (first.status_code, first.text, second.status_code) == (200, "hello", 304)
