"""The polite HTTP client: conditional GET, redirects, caps, robots.txt, retries, limits."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
from collections.abc import Iterator

import pytest

from corpus.feeds.errors import FetchError, RobotsDisallowedError, TooLargeError
from corpus.feeds.http import Fetcher, RobotsCache, Validators
from tests.test_feeds_server import FAST, HTTP_DATE, FeedServer, Route, serve


@pytest.fixture
def server() -> Iterator[FeedServer]:
    yield from serve()


async def _get(settings, url, **kwargs):
    async with Fetcher(settings) as fetcher:
        return await fetcher.get(url, **kwargs), fetcher.stats


async def test_user_agent_names_newsdesk(server: FeedServer) -> None:
    url = server.route("/a", Route(b"x"))
    response, _ = await _get(FAST, url)
    assert response.status == 200 and response.content == b"x"
    assert server.hits_for("/a")[0].headers["user-agent"].startswith("Newsdesk/")


async def test_conditional_get_answers_304_without_body(server: FeedServer) -> None:
    url = server.route("/feed", Route(b"body", etag='"v1"', last_modified=HTTP_DATE))
    first, _ = await _get(FAST, url)
    assert first.validators == Validators('"v1"', HTTP_DATE)
    second, stats = await _get(FAST, url, validators=first.validators)
    assert second.not_modified and second.content == b""
    assert stats.conditional == 1 and stats.not_modified == 1
    assert server.hits_for("/feed")[1].headers["if-none-match"] == '"v1"'


async def test_redirects_are_followed_and_capped(server: FeedServer) -> None:
    server.route("/old", Route(status=301, location="/new"))
    server.route("/new", Route(b"moved here"))
    response, _ = await _get(FAST, server.url("/old"))
    assert response.url == server.url("/new") and response.redirected_from == server.url("/old")
    for i in range(8):
        server.route(f"/hop{i}", Route(status=302, location=f"/hop{i + 1}"))
    with pytest.raises(FetchError, match="too many redirects"):
        await _get(FAST, server.url("/hop0"))


async def test_redirect_loop_is_reported(server: FeedServer) -> None:
    server.route("/ping", Route(status=302, location="/pong"))
    server.route("/pong", Route(status=302, location="/ping"))
    with pytest.raises(FetchError, match="redirect loop"):
        await _get(FAST, server.url("/ping"))


async def test_404_fails_at_once_500_after_retries(server: FeedServer) -> None:
    with pytest.raises(FetchError, match="HTTP 404") as missing:
        await _get(FAST, server.url("/nothing"))
    assert missing.value.status == 404 and len(server.hits_for("/nothing")) == 1
    server.route("/broken", Route(b"oops", status=500))
    with pytest.raises(FetchError, match="HTTP 500"):
        await _get(FAST, server.url("/broken"))
    assert len(server.hits_for("/broken")) == FAST.retries + 1


async def test_slow_server_times_out(server: FeedServer) -> None:
    url = server.route("/slow", Route(b"late", delay=1.5))
    started = time.monotonic()
    with pytest.raises(FetchError, match="timed out"):
        await _get(dataclasses.replace(FAST, retries=0), url)
    assert time.monotonic() - started < 1.4


async def test_huge_body_is_refused(server: FeedServer) -> None:
    url = server.route("/huge", Route(b"x" * 200_000))
    with pytest.raises(TooLargeError, match="too large"):
        await _get(FAST, url, max_bytes=100_000)


async def test_robots_txt_forbidding_a_path_is_obeyed(server: FeedServer) -> None:
    server.route(
        "/robots.txt",
        Route(b"User-agent: *\nDisallow: /private/\n", content_type="text/plain"),
    )
    server.route("/private/page", Route(b"secret"))
    with pytest.raises(RobotsDisallowedError, match=r"robots\.txt"):
        await _get(FAST, server.url("/private/page"))
    assert server.hits_for("/private/page") == []
    ok, _ = await _get(FAST, server.route("/public", Route(b"fine")))
    assert ok.content == b"fine"


async def test_robots_txt_is_cached_between_rounds(server: FeedServer) -> None:
    cache = RobotsCache()
    url = server.route("/p", Route(b"x"))
    for _ in range(2):
        async with Fetcher(FAST, robots=cache) as fetcher:
            await fetcher.get(url)
    assert len(server.hits_for("/robots.txt")) == 1


async def test_429_waits_for_retry_after(server: FeedServer) -> None:
    url = server.route("/busy", Route(b"", status=429, headers={"Retry-After": "1"}))

    async def recover() -> None:
        await asyncio.sleep(0.5)
        server.routes["/busy"] = Route(b"ready")

    started = time.monotonic()
    (response, stats), _ = await asyncio.gather(_get(FAST, url), recover())
    assert response.content == b"ready" and stats.retries == 1
    assert time.monotonic() - started >= 0.95


async def test_429_with_too_long_retry_after_fails(server: FeedServer) -> None:
    url = server.route("/later", Route(b"", status=429, headers={"Retry-After": "3600"}))
    with pytest.raises(FetchError, match="Retry-After 3600 s is too long"):
        await _get(FAST, url)


async def test_one_request_per_host_at_a_time_with_a_delay(server: FeedServer) -> None:
    settings = dataclasses.replace(FAST, per_host_delay=0.2, read_timeout=2.0)
    urls = [server.route(f"/n{i}", Route(b"x", delay=0.05)) for i in range(4)]
    async with Fetcher(settings) as fetcher:
        await asyncio.gather(*(fetcher.get(u) for u in urls))
    starts = sorted(h.at for h in server.hits if h.path.startswith("/n"))
    assert server.max_active == 1
    assert all(b - a >= 0.18 for a, b in itertools.pairwise(starts))
