"""Following a site from Telegram, end to end: the real bot Application with the alerts and
feeds plugins, driven through the local Bot API server, fetching from a local feed server.

A chat subscribes to a topic; an admin follows a feed with /sources add; the scheduled
round (its JobQueue job, run directly) fetches the feed and its pages, re-indexes through
the bot's own re-index, and the swap that follows sends the alert: once. The next round
finds the feed unchanged (304), fetches no page and sends nothing. Everything stays on
127.0.0.1; the hashing embedder and the fake answer model keep it fast.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot.feeds import JOB, FeedService, feeds_plugin
from corpus.feeds import RoundSummary, SourceList
from index.store import current_version_path
from tests.botapi.server import BotApiServer
from tests.conftest import wait_until
from tests.test_alerts_e2e import DRILLS, DRILLS_TITLE, PASTA, PASTA_TITLE, TOPIC, AlertHarness
from tests.test_bot_e2e import ADMIN, TOKEN, USER, make_settings
from tests.test_feeds_server import RSS_TYPE, FeedServer, Route, rss, serve


@pytest.fixture
def site() -> Iterator[FeedServer]:
    yield from serve()


def page(title: str, *paragraphs: str) -> bytes:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (
        f'<html><head><meta charset="utf-8"><title>{title}</title></head><body>'
        f"<nav>Home | World | Sport</nav><article><h1>{title}</h1>{body}</article>"
        "<footer>Contact us</footer></body></html>"
    ).encode()


MORE_DRILLS = (
    "Officials in Dushanbe said the exercises would test how quickly troops can reach the "
    "border and how well the allied armies share radio channels and supply lines."
)
MORE_PASTA = (
    "The authors spent two years in family kitchens, writing down recipes that had never "
    "been printed, from slow-cooked ragù to a lemon sauce made on the island of Procida."
)


class FeedHarness(AlertHarness):
    """The alert harness plus the feeds plugin and a way to run its scheduled job."""

    @property
    def feeds(self) -> FeedService:
        service = self.app.bot_data.get(FeedService)
        assert service is not None
        return service

    async def scheduled_round(self, timeout: float = 30.0) -> RoundSummary:
        """Run the scheduled job now; wait for its round (and the re-index) to end."""
        before = self.feeds.rounds
        (job,) = self.app.job_queue.get_jobs_by_name(JOB)
        await job.run(self.app)
        await wait_until(lambda: self.feeds.rounds > before and not self.feeds.busy, timeout)
        assert self.feeds.last is not None
        return self.feeds.last

    def version(self) -> str:
        current = current_version_path(self.settings.index_path)
        assert current is not None
        return current.name


@pytest.fixture
async def harness(small_corpus: Path, tmp_path: Path) -> AsyncIterator[FeedHarness]:
    async with BotApiServer(TOKEN) as server:
        settings = make_settings(
            tmp_path / "data",
            small_corpus,
            server.base_url,
            bot_rate_limit=100,
            feeds_interval_minutes=60,  # the test runs the job itself
            feeds_per_host_delay=0,
            feeds_connect_timeout=2,
            feeds_read_timeout=2,
            feeds_retries=0,
        )
        yield FeedHarness(server, settings, small_corpus)


async def test_scheduled_round_sends_one_alert_for_a_new_item_then_a_304_sends_nothing(
    harness: FeedHarness, site: FeedServer
) -> None:
    pasta_url = site.route("/news/pasta.html", Route(page(PASTA_TITLE, *PASTA, MORE_PASTA)))
    pasta = {"title": PASTA_TITLE, "link": pasta_url, "guid": "pasta"}
    feed = site.route(
        "/feed.xml", Route(rss([pasta], title="Asia Wire"), content_type=RSS_TYPE, etag='"1"')
    )

    async with harness.bot([feeds_plugin()]):
        await harness.started()
        await harness.say(f"/subscribe {TOPIC}")
        refused = await harness.say(f"/sources add {feed}")
        assert "only the bot's admins" in refused.text
        added = await harness.say(f"/sources add {feed} asia", chat_id=ADMIN)
        assert added.text.startswith("Following asia: " + feed)
        menu = harness.server.calls("setMyCommands")[-1]
        assert "sources" in str(menu)

        # the first round stores what the feed holds (nothing on the topic): no alert
        first = await harness.scheduled_round()
        assert (first.added, first.changed) == (1, True), first.lines()
        await harness.settled(harness.version())
        assert harness.services.engine.index.manifest.articles == 4
        assert harness.alerts_to(USER) == []

        # a new item on the topic appears in the feed, pointing at a page on the site
        drills_url = site.route(
            "/news/drills.html", Route(page(DRILLS_TITLE, *DRILLS, MORE_DRILLS))
        )
        drills = {"title": DRILLS_TITLE, "link": drills_url, "guid": "drills"}
        site.route(
            "/feed.xml",
            Route(rss([drills, pasta], title="Asia Wire"), content_type=RSS_TYPE, etag='"2"'),
        )
        second = await harness.scheduled_round()
        assert (second.added, second.updated) == (1, 0), second.lines()
        alert = await harness.server.wait_for_message(USER, lambda m: m.event == "sent", timeout=15)
        await harness.settled(harness.version())
        assert alert.text.startswith(f"New article on “{TOPIC}”")
        assert f"{DRILLS_TITLE} · Asia Wire" in alert.text
        assert [e["url"] for e in alert.entities if e["type"] == "text_link"] == [drills_url]
        quote = next(e for e in alert.entities if e["type"] == "blockquote")
        quoted = alert.text[quote["offset"] : quote["offset"] + quote["length"]]
        assert quoted in " ".join((*DRILLS, MORE_DRILLS)) and "troops" in quoted  # verbatim
        assert len(harness.alerts_to(USER)) == 1

        # the next round: the feed answers 304, no page is fetched, nothing is sent
        hits = len(site.hits)
        version = harness.version()
        third = await harness.scheduled_round()
        assert (third.changed, third.not_modified, third.only_conditional) == (False, 1, True)
        assert [h.path for h in site.hits[hits:]] == ["/feed.xml"]
        assert harness.version() == version
        await asyncio.sleep(1.0)  # time for a stray alert round to show itself
        assert len(harness.alerts_to(USER)) == 1
        assert harness.alerts.store.sent_count(USER) == 1

        # /sources lists it with its status and article count
        listing = await harness.say("/sources", chat_id=ADMIN)
        assert "asia [feed]" in listing.text and "ok; last fetch" in listing.text
        assert "2 articles" in listing.text

    assert [s.name for s in SourceList(harness.settings.data_dir).list()] == ["asia"]


async def test_admin_manages_sources_and_fetches_now(
    harness: FeedHarness, site: FeedServer
) -> None:
    url = site.route("/news/pasta.html", Route(page(PASTA_TITLE, *PASTA, MORE_PASTA)))
    item = {"title": PASTA_TITLE, "link": url, "guid": "pasta"}
    feed = site.route(
        "/food.xml", Route(rss([item], title="Food Wire"), content_type=RSS_TYPE, etag='"1"')
    )
    async with harness.bot([feeds_plugin()]):
        await harness.started()
        empty = await harness.say("/sources", chat_id=ADMIN)
        assert empty.text.startswith("No sources yet")
        bad = await harness.say("/sources add ftp://example.org/feed", chat_id=ADMIN)
        assert "Not an http(s) URL" in bad.text
        added = await harness.say(f"/sources add {feed}", chat_id=ADMIN)
        name = f"127.0.0.1-{feed.split(':')[2].split('/')[0]}"  # from the host and port
        assert added.text.startswith(f"Following {name}: {feed}")
        again = await harness.say(f"/sources add {feed} other", chat_id=ADMIN)
        assert again.text.startswith(f"Already followed as '{name}'")
        usage = await harness.say("/sources frobnicate", chat_id=ADMIN)
        assert usage.text.startswith("/sources lists")

        await harness.say("/sources fetch", chat_id=ADMIN)  # "Fetching every source..."
        done = await harness.server.wait_for_message(
            ADMIN, lambda m: m.text.startswith("Fetch round finished"), timeout=30
        )
        assert "1 added" in done.text
        await wait_until(lambda: harness.services.engine.index.manifest.articles == 4, 15)
        answer = await harness.say("what is the secret of good pasta?")
        assert "salted water" in answer.text

        gone = await harness.say(f"/sources remove {name}", chat_id=ADMIN)
        assert gone.text.startswith(f"Stopped following {name}")
        assert "1 article(s) stay in the archive" in gone.text
        missing = await harness.say(f"/sources remove {name}", chat_id=ADMIN)
        assert missing.text == f"No source named '{name}'"
