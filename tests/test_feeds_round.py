"""Fetch rounds end to end against a local server: real pages, sample and generated feeds,
and the unfriendly cases, each with its reason in the summary; a second round against an
unchanged server makes only conditional requests and writes nothing."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from corpus.feeds import FeedSettings, RoundBusyError, SourceList, archive_dir
from corpus.feeds import run_round as _run_round
from corpus.feeds.round import fetch_round
from corpus.feeds.sources import state_dir
from corpus.feeds.store import file_lock
from corpus.loaders import load_corpus
from tests.test_feeds_server import (
    FAST,
    HTTP_DATE,
    RSS_TYPE,
    FeedServer,
    LocalOnly,
    Route,
    need_web,
    rss,
    serve,
)


@pytest.fixture
def server() -> Iterator[FeedServer]:
    yield from serve()


REAL = ["1a53eff0c06c.html", "909df6abab86.html", "4cf37a3d7824.html"]


def story(title: str, topic: str, *, canonical: str = "", charset: str | None = "utf-8") -> str:
    head = f'<meta charset="{charset}">' if charset else ""
    if canonical:
        head += f'<link rel="canonical" href="{canonical}">'
    paragraphs = "".join(
        f"<p>{topic.capitalize()} report, part {i}: officials said the {topic} programme would "
        f"expand next year, and local groups welcomed the plan after months of talks.</p>"
        for i in range(6)
    )
    return (
        f"<html><head><title>{title}</title>{head}</head><body><nav>Home | World</nav>"
        f"<article><h1>{title}</h1>{paragraphs}</article><footer>Contact us</footer></body></html>"
    )


def run_round(data_dir: Path, settings: FeedSettings):
    """The round as the CLI runs it, with a transport that refuses every non-local host."""
    return _run_round(data_dir, settings, transport=LocalOnly())


def lines_of(data_dir: Path, name: str) -> list[dict[str, str]]:
    path = archive_dir(data_dir) / f"{name}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def reasons(summary, name: str) -> dict[str, str]:
    report = next(r for r in summary.sources if r.name == name)
    return {skip.link.rsplit("/", 1)[-1] or skip.title: skip.reason for skip in report.skipped}


@pytest.fixture
def site(server: FeedServer) -> FeedServer:
    """A site with real pages, generated pages and every unfriendly case."""
    server.route(
        "/robots.txt", Route(b"User-agent: *\nDisallow: /private/\n", content_type="text/plain")
    )
    real = [server.mount_page(name) for name in REAL] if (need_web()) else []
    server.route("/story-a", Route(story("Water plan", "water").encode(), etag='"a"'))
    server.route("/copy-of-a", Route(story("Water plan", "water").encode(), etag='"c"'))
    server.route(
        "/cp1252",
        Route(
            story("Caf\u00e9 owners\u2019 plea", "caf\u00e9", charset=None).encode("cp1252"),
            content_type="text/html",
            etag='"w"',
        ),
    )
    server.route("/private/secret", Route(story("Secret", "secret").encode()))
    server.route("/error", Route(b"boom", status=500))
    server.route("/slow", Route(story("Slow", "slow").encode(), delay=1.2))
    server.route("/huge", Route(b"<html>" + b"x" * 4_000_000))
    server.route("/loop-a", Route(status=302, location="/loop-b"))
    server.route("/loop-b", Route(status=302, location="/loop-a"))
    server.route("/moved", Route(status=301, location="/story-moved"))
    server.route("/story-moved", Route(story("Moved story", "transport").encode(), etag='"m"'))
    long_text = "<p>" + " ".join(["The council met on Monday to discuss the budget."] * 12) + "</p>"
    items = [
        {
            "title": "Brothel busted",
            "link": real[0],
            "guid": "r0",
            "pubDate": "Wed, 08 Nov 2023 10:00:00 +0000",
        },
        {"title": "Green deal", "link": real[1], "guid": "r1"},  # no date
        {
            "title": "Body fat",
            "link": real[2],
            "guid": "r2",
            "pubDate": "Mon, 01 Jan 2024 0:00:00 GMT",
        },
        {"title": "Body fat again", "link": real[2], "guid": "r2"},  # duplicate item
        {"title": "Water plan", "link": server.url("/story-a"), "guid": "a"},
        {"title": "Water plan (copy)", "link": server.url("/copy-of-a"), "guid": "c"},
        {"title": "Cafe", "link": server.url("/cp1252"), "guid": "w"},
        {"title": "Council budget", "description": long_text},
        {"title": "Short note", "description": "Too short."},
        {"title": "Secret", "link": server.url("/private/secret"), "guid": "p"},
        {"title": "Missing", "link": server.url("/missing"), "guid": "404"},
        {"title": "Error", "link": server.url("/error"), "guid": "500"},
        {"title": "Slow", "link": server.url("/slow"), "guid": "slow"},
        {"title": "Huge", "link": server.url("/huge"), "guid": "huge"},
        {"title": "Loop", "link": server.url("/loop-a"), "guid": "loop"},
        {"title": "Moved", "link": server.url("/moved"), "guid": "moved"},
    ]
    server.route("/feed.xml", Route(rss(items), content_type=RSS_TYPE, etag='"f1"'))
    return server


SETTINGS = dataclasses.replace(FAST, max_page_bytes=1_000_000, retries=0)


def test_a_round_over_every_case(site: FeedServer, tmp_path: Path) -> None:
    sources = SourceList(tmp_path)
    sources.add(site.url("/feed.xml"), name="local")
    summary = run_round(tmp_path, SETTINGS)
    (report,) = summary.sources
    assert report.outcome == "ok" and report.items == 16
    why = reasons(summary, "local")
    assert why[REAL[2]] == "duplicate item in the feed"
    assert why["copy-of-a"].startswith("same text as ") and why["copy-of-a"].endswith(
        "/story-a, not stored twice"
    )
    assert why["Short note"] == "no link; feed text too short (10 < 400 characters)"
    assert why["secret"].startswith("page forbidden by robots.txt")
    assert why["missing"].startswith("page HTTP 404")
    assert why["error"].startswith("page HTTP 500")
    assert why["slow"].startswith("page timed out")
    assert "too large" in why["huge"]
    assert "redirect loop" in why["loop-a"]
    assert report.added == 7 and report.fallback == 1 and report.duplicates == 1
    assert site.hits_for("/private/secret") == []

    stored = {r["link"].rsplit("/", 1)[-1]: r for r in lines_of(tmp_path, "local")}
    by_title = {r["title"]: r for r in lines_of(tmp_path, "local")}
    assert stored["1a53eff0c06c.html"]["url"].startswith("https://www.bostonherald.com/2023/11/08/")
    assert stored["1a53eff0c06c.html"]["published"] == "2023-11-08T10:00:00Z"
    assert "sex ring catering to wealthy doctors" in stored["1a53eff0c06c.html"]["text"]
    assert stored["909df6abab86.html"]["published"]  # from the page, the item has no date
    assert "Caf\u00e9 report" in stored["cp1252"]["text"]
    assert stored["moved"]["url"] == site.url("/story-moved")
    assert by_title["Council budget"]["url"].startswith("urn:feed:local:")  # feed text, no link
    assert set(load_corpus([archive_dir(tmp_path)]).articles[0].__slots__)  # loads cleanly
    assert len(load_corpus([archive_dir(tmp_path)]).articles) == 7

    listed = sources.get("local")
    assert (listed.status, listed.articles, listed.kind) == ("ok", 7, "feed")
    text = "\n".join(summary.lines())
    assert "local: 16 items" in text and "7 added" in text
    assert "skipped " + site.url("/missing") + ": page HTTP 404" in text


def test_second_round_against_unchanged_server_is_conditional_and_writes_nothing(
    site: FeedServer, tmp_path: Path
) -> None:
    sources = SourceList(tmp_path)
    sources.add(site.url("/feed.xml"), name="local")
    site.route(
        "/feed.xml",
        Route(
            rss(
                [{"title": "Water", "link": site.url("/story-a"), "guid": "a"}]
                + [{"title": n, "link": site.url(f"/pages/{n}"), "guid": n} for n in REAL]
            ),
            content_type=RSS_TYPE,
            etag='"f2"',
            last_modified=HTTP_DATE,
        ),
    )
    first = run_round(tmp_path, SETTINGS)
    assert first.added == 4 and first.written
    before = (archive_dir(tmp_path) / "local.jsonl").read_bytes()
    hits = len(site.hits)
    second = run_round(tmp_path, SETTINGS)
    new_hits = site.hits[hits:]
    assert [h.path for h in new_hits] == ["/feed.xml"] and all(h.conditional for h in new_hits)
    assert second.requests == second.conditional == second.not_modified == 1
    assert second.written == [] and second.sources[0].outcome == "not modified"
    assert "Nothing changed: only conditional requests, nothing written." in second.lines()[1]
    assert (archive_dir(tmp_path) / "local.jsonl").read_bytes() == before


def test_a_changed_article_replaces_the_old_one(site: FeedServer, tmp_path: Path) -> None:
    SourceList(tmp_path).add(site.url("/feed.xml"), name="local")
    item = {
        "title": "Water plan",
        "link": site.url("/story-a"),
        "guid": "a",
        "pubDate": "Mon, 01 Jan 2024 10:00:00 GMT",
    }
    site.route("/feed.xml", Route(rss([item]), content_type=RSS_TYPE, etag='"1"'))
    assert run_round(tmp_path, SETTINGS).added == 1
    (old,) = lines_of(tmp_path, "local")
    site.route("/story-a", Route(story("Water plan", "irrigation").encode(), etag='"a2"'))
    item["description"] = "Updated with new figures."
    site.route("/feed.xml", Route(rss([item]), content_type=RSS_TYPE, etag='"2"'))
    summary = run_round(tmp_path, SETTINGS)
    assert (summary.added, summary.updated) == (0, 1)
    (new,) = lines_of(tmp_path, "local")
    assert new["id"] == old["id"] and "Irrigation report" in new["text"]


def test_bad_sources_fail_with_reasons_and_nothing_stored_is_lost(
    site: FeedServer, tmp_path: Path, caplog
) -> None:
    web = need_web()
    sources = SourceList(tmp_path)
    sources.add(site.url("/feed.xml"), name="local")
    run_round(tmp_path, SETTINGS)
    kept = (archive_dir(tmp_path) / "local.jsonl").read_bytes()

    site.route("/garbage.xml", Route(b"<<< not & xml >>>", content_type="application/xml"))
    site.route("/page-as-feed", Route((web / "pages" / REAL[2]).read_bytes()))  # no feed link
    site.route("/slow-feed", Route(rss([]), delay=1.2))
    site.route("/big-feed", Route(rss([{"title": "x" * 200, "guid": str(i)} for i in range(3000)])))
    site.route("/broken-feed", Route(b"", status=503))
    site.route("/feed-loop", Route(status=302, location="/feed-loop"))
    for name, path in [
        ("garbage", "/garbage.xml"),
        ("page", "/page-as-feed"),
        ("slow", "/slow-feed"),
        ("big", "/big-feed"),
        ("gone", "/gone.xml"),
        ("broken", "/broken-feed"),
        ("loop", "/feed-loop"),
    ]:
        sources.add(site.url(path), name=name)
    site.route("/feed.xml", Route(b"", status=500))  # the good source breaks too
    settings = dataclasses.replace(SETTINGS, max_feed_bytes=300_000, failing_after=2)
    with caplog.at_level(logging.INFO, logger="corpus.feeds"):
        summary = run_round(tmp_path, settings)
        summary = run_round(tmp_path, settings)
    why = {r.name: (r.outcome, r.reason) for r in summary.sources}
    assert why["garbage"] == ("failed", why["garbage"][1])
    assert why["garbage"][1].startswith("not a feed: unreadable XML")
    assert (
        why["page"][1] == 'an HTML page, not a feed, and it names no feed (<link rel="alternate">)'
    )
    assert why["slow"][1] == "timed out"
    assert "too large" in why["big"][1]
    assert why["gone"][1] == "HTTP 404"
    assert why["broken"][1] == "HTTP 503"
    assert "redirect loop" in why["loop"][1]
    assert why["local"][1] == "HTTP 500"
    assert all(r.failing for r in summary.sources)
    assert (archive_dir(tmp_path) / "local.jsonl").read_bytes() == kept
    listed = {s.name: s for s in sources.list()}
    assert listed["gone"].status == "failing" and listed["gone"].failures == 2
    assert listed["local"].articles == 7
    assert "gone: failed: HTTP 404 -- marked failing" in "\n".join(summary.lines())
    assert any("source gone is failing" in r.getMessage() for r in caplog.records)


def test_feed_recovers_after_failing(site: FeedServer, tmp_path: Path) -> None:
    sources = SourceList(tmp_path)
    sources.add(site.url("/later.xml"), name="later")
    settings = dataclasses.replace(SETTINGS, failing_after=1)
    run_round(tmp_path, settings)
    assert sources.get("later").failing
    site.route("/later.xml", Route(rss([]), content_type=RSS_TYPE))
    run_round(tmp_path, settings)
    assert (sources.get("later").status, sources.get("later").failures) == ("ok", 0)


def test_sample_feeds_autodiscovery_json_feed_and_news_sitemap(
    server: FeedServer, tmp_path: Path
) -> None:
    web = need_web()
    for name in ("feed2.rss", "feed1.atom", "feed.json", "sitemap.xml"):
        server.route(
            f"/samples/{name}",
            Route((web / "feeds" / name).read_bytes(), content_type="application/xml"),
        )
    pages = [server.mount_page(name) for name in REAL]
    server.route(
        "/atom.xml",
        Route(
            f"""<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>Blog</title>
<id>urn:x</id><updated>2024-01-01T00:00:00Z</updated>
<entry><id>urn:1</id><title>One</title><link href="{pages[0]}"/>
<updated>2024-01-01T00:00:00Z</updated></entry>
</feed>""".encode(),
            content_type="application/atom+xml",
            etag='"atom"',
        ),
    )
    server.route(
        "/blog/",
        Route(
            b'<!DOCTYPE html><html><head><link rel="alternate" type="application/atom+xml" '
            b'href="/atom.xml"></head><body>Blog</body></html>'
        ),
    )
    server.route(
        "/feed.json",
        Route(
            json.dumps(
                {
                    "version": "https://jsonfeed.org/version/1.1",
                    "title": "JSON news",
                    "items": [{"id": "j1", "url": pages[1], "title": "Green deal"}],
                }
            ).encode(),
            content_type="application/feed+json",
        ),
    )
    server.route(
        "/news-sitemap.xml",
        Route(
            f"""<?xml version="1.0"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"
 xmlns:news="http://www.google.com/schemas/sitemap-news/0.9"><url><loc>{pages[2]}</loc>
<news:news><news:publication_date>2024-02-02T00:00:00Z</news:publication_date>
<news:title>Body fat</news:title></news:news></url></urlset>""".encode(),
            content_type="application/xml",
        ),
    )
    sources = SourceList(tmp_path)
    sources.add(server.url("/blog/"), name="blog")
    sources.add(server.url("/feed.json"), name="json")
    sources.add(server.url("/news-sitemap.xml"), name="news")
    for name in ("feed2.rss", "feed1.atom", "feed.json", "sitemap.xml"):
        sources.add(server.url(f"/samples/{name}"), name=name.replace(".", "-"))
    summary = run_round(tmp_path, dataclasses.replace(SETTINGS, max_items_per_source=3))
    by = {r.name: r for r in summary.sources}
    assert by["blog"].added == 1 and sources.get("blog").feed_url == server.url("/atom.xml")
    assert any("feed found on the page" in n for n in by["blog"].notes)
    assert by["json"].added == 1 and by["news"].added == 1
    assert lines_of(tmp_path, "news")[0]["published"] == "2024-02-02T00:00:00Z"
    assert sources.get("news").kind == "sitemap"
    # The sample feeds point at example.org / npr.org: their items have too little text of
    # their own, and the pages are not fetched (no network in tests), each with a reason.
    assert by["feed2-rss"].outcome == "ok" and by["feed2-rss"].items == 1
    assert by["sitemap-xml"].items == 84 and by["sitemap-xml"].deferred == 81
    assert by["feed-json"].items == 25
    assert all(s.reason for r in summary.sources for s in r.skipped)


def test_only_one_round_at_a_time(tmp_path: Path) -> None:
    with file_lock(state_dir(tmp_path) / "round.lock"), pytest.raises(RoundBusyError):
        _run_round(tmp_path, FAST)


def test_the_source_list_and_the_round_lock_can_be_handed_in(
    site: FeedServer, tmp_path: Path
) -> None:
    """Instances sharing a database hand in their list and lock: the round reads and
    updates that list, holds that lock (not the data folder's), and stores articles and
    fetch state in the data folder as always."""
    elsewhere = SourceList(tmp_path / "elsewhere")  # stands in for a shared list
    elsewhere.add(site.url("/feed.xml"), name="local")
    taken: list[bool] = []

    @contextlib.contextmanager
    def lock() -> Iterator[bool]:
        taken.append(True)
        yield len(taken) == 1  # free the first time, held by "another instance" after

    data = tmp_path / "data"
    with file_lock(state_dir(data) / "round.lock"):  # the file lock is not consulted
        summary = _run_round(
            data, SETTINGS, transport=LocalOnly(), sources=elsewhere, round_lock=lock
        )
    assert summary.added > 0 and lines_of(data, "local")
    assert elsewhere.get("local").status == "ok" and elsewhere.get("local").articles > 0
    assert not (data / "sources.json").exists() and (state_dir(data) / "local.json").exists()
    with pytest.raises(RoundBusyError):
        _run_round(data, SETTINGS, transport=LocalOnly(), sources=elsewhere, round_lock=lock)


async def test_fetch_round_is_awaitable_for_the_bot(site: FeedServer, tmp_path: Path) -> None:
    SourceList(tmp_path).add(site.url("/story-a"), name="html-without-feed")
    summary = await fetch_round(
        tmp_path, FeedSettings(per_host_delay=0, read_timeout=1), transport=LocalOnly()
    )
    assert summary.sources[0].outcome == "failed"
