"""Followed sources shared by several instances (#12): the source list in the state
database behaves as the file list does, on SQLite and on a real PostgreSQL; two
"instances" (two database objects on one database) see each other's sources and never
lose an edit; a round on one makes a concurrent round on the other skip (the database's
``feeds-round`` lock); ``newsdesk sources add`` with ``NEWSDESK_DATABASE_URL`` lands in the
list the bot reads."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields, replace
from pathlib import Path

import pytest

from bot.feeds import FeedService
from corpus.feeds import RoundBusyError, Source, SourceList
from corpus.feeds.errors import DuplicateSourceError, SourceError, SourceNotFoundError
from corpus.feeds.sources import SourceStore, archive_dir, state_dir
from index.database import Database, open_database
from newsdesk import feeds
from newsdesk.services import open_state_database
from newsdesk.settings import BotSettings, Settings
from newsdesk.source_store import COLUMNS, DatabaseSourceList
from tests.conftest import run_cli
from tests.servers.postgres import DatabaseMaker, count_writes
from tests.test_feeds_server import RSS_TYPE, FeedServer, LocalOnly, Route, rss, serve


@pytest.fixture
def site() -> Iterator[FeedServer]:
    yield from serve()


def settings_for(data_dir: Path, url: str | None) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=data_dir,
        database_url=url,
        feeds_per_host_delay=0,
        feeds_retries=0,
        feeds_read_timeout=5,
    )


def shape(sources: list[Source]) -> list[Source]:
    """What two lists must agree on (the time of adding differs)."""
    return [replace(s, added_at=0.0) for s in sources]


def outcome(call: object) -> object:
    """What a call gave: its result, or its error's type and message."""
    try:
        return call()  # type: ignore[operator]
    except SourceError as exc:
        return (type(exc).__name__, str(exc))


# ---- the same behaviour as the file list, on both backends ---------------------------------


def test_the_table_has_a_column_per_source_field() -> None:
    assert tuple(f.name for f in fields(Source)) == COLUMNS


def test_the_database_list_behaves_as_the_file_list(
    make_database: DatabaseMaker, tmp_path: Path
) -> None:
    stores: list[SourceStore] = [
        SourceList(tmp_path / "file"),
        DatabaseSourceList(make_database("state"), tmp_path / "db"),
    ]
    steps = [
        lambda s: s.list(),
        lambda s: s.add("https://www.example.com/rss.xml"),
        lambda s: s.add("https://example.com/atom.xml"),
        lambda s: s.add("http://127.0.0.1:8080/feed", name="Local"),
        lambda s: s.add("https://example.com/rss2", feed_url="https://example.com/found.xml"),
        lambda s: s.add("https://example.com/found.xml"),  # already followed as a feed URL
        lambda s: s.add("https://example.com/other", name="local"),
        lambda s: s.add("ftp://example.com/rss"),
        lambda s: s.add("https://example.com/x", name="../etc"),
        lambda s: s.get("LOCAL"),
        lambda s: s.get("https://example.com/atom.xml"),
        lambda s: s.get("https://example.com/found.xml"),
        lambda s: s.get("nope"),
        lambda s: s.set("local", status="failing", failures=3, last_error="HTTP 500"),
        lambda s: s.update("example.com-2", lambda x: replace(x, articles=x.articles + 7)),
        lambda s: s.set("gone", status="ok"),
        lambda s: s.update("gone", lambda x: x),
        lambda s: s.remove("example.com"),
        lambda s: s.remove("example.com"),
        lambda s: s.add("https://www.example.com/rss.xml"),  # back, at the end of the list
        lambda s: s.list(),
    ]
    for step in steps:
        got = [outcome(lambda: step(store)) for store in stores]  # noqa: B023

        def tidy(value: object) -> object:
            if isinstance(value, Source):
                return replace(value, added_at=0.0)
            if isinstance(value, list):
                return shape(value)
            return value

        assert tidy(got[0]) == tidy(got[1])
    names = [s.name for s in stores[1].list()]
    assert names == ["example.com-2", "local", "example.com-3", "example.com"]
    assert stores[1].get("local").describe().startswith("local  http://127.0.0.1:8080/feed")
    assert isinstance(outcome(lambda: stores[1].get("nope")), tuple)


def test_lists_on_one_database_migrate_once(
    make_database: DatabaseMaker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A list is made for every command and round: only the first migrates (a write
    transaction, on PostgreSQL under the schema's advisory lock)."""
    database = make_database("state")
    DatabaseSourceList(database, tmp_path).add("https://example.com/rss", name="ex")
    writes = count_writes(database, monkeypatch)
    for _ in range(3):
        assert [s.name for s in DatabaseSourceList(database, tmp_path).list()] == ["ex"]
    assert writes() == 0
    # another Database object (another process) migrates once too, and sees the same list
    other = make_database("state")
    assert [s.name for s in DatabaseSourceList(other, tmp_path).list()] == ["ex"]


def test_errors_are_the_file_lists_errors(make_database: DatabaseMaker, tmp_path: Path) -> None:
    sources = DatabaseSourceList(make_database("state"), tmp_path)
    sources.add("https://example.com/rss", name="ex")
    with pytest.raises(DuplicateSourceError, match="Already followed as 'ex'"):
        sources.add("https://example.com/rss")
    with pytest.raises(DuplicateSourceError, match="already exists"):
        sources.add("https://example.com/other", name="ex")
    with pytest.raises(SourceNotFoundError, match="No source named 'nope'"):
        sources.remove("nope")


def test_remove_tidies_the_data_folder_as_the_file_list_does(
    make_database: DatabaseMaker, tmp_path: Path
) -> None:
    sources = DatabaseSourceList(make_database("state"), tmp_path)
    for name in ("a", "b"):
        sources.add(f"https://{name}.example/rss", name=name)
        path = archive_dir(tmp_path) / f"{name}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}\n")
        state_dir(tmp_path).mkdir(parents=True, exist_ok=True)
        (state_dir(tmp_path) / f"{name}.json").write_text("{}")
    sources.remove("a")
    sources.remove("b", delete_articles=True)
    assert (archive_dir(tmp_path) / "a.jsonl").exists()
    assert not (archive_dir(tmp_path) / "b.jsonl").exists()
    assert not (state_dir(tmp_path) / "a.json").exists()
    assert sources.list() == [] and not (tmp_path / "sources.json").exists()


def test_two_instances_lose_no_edit(make_database: DatabaseMaker, tmp_path: Path) -> None:
    """Two clients of one database (on SQLite: of one file) add and update at once: every
    add gets its own name, every update counts."""
    one = DatabaseSourceList(make_database("state"), tmp_path)
    two = DatabaseSourceList(make_database("state"), tmp_path)
    one.add("https://counter.example/rss", name="counter")
    lists = [one, two]

    def bump(i: int) -> None:
        lists[i % 2].update("counter", lambda s: replace(s, articles=s.articles + 1))

    def add(i: int) -> str:
        return lists[i % 2].add(f"https://news.example/feed-{i}").name

    with ThreadPoolExecutor(max_workers=6) as pool:
        bumps = [pool.submit(bump, i) for i in range(30)]
        adds = [pool.submit(add, i) for i in range(8)]
        names = [f.result() for f in adds]
        for f in bumps:
            f.result()
    assert two.get("counter").articles == 30
    assert sorted(names) == sorted(["news.example", *(f"news.example-{n}" for n in range(2, 9))])
    assert [s.name for s in one.list()] == [s.name for s in two.list()]


# ---- several instances on one PostgreSQL --------------------------------------------------


@pytest.fixture
def instances(pg_database_url: str, tmp_path: Path) -> Iterator[tuple[Database, Database]]:
    """Two instances' state databases: two pools on one PostgreSQL database."""
    one = open_database(pg_database_url, tmp_path / "unused-1")
    two = open_database(pg_database_url, tmp_path / "unused-2")
    try:
        yield one, two
    finally:
        one.close()
        two.close()


def test_instances_see_each_others_sources(
    instances: tuple[Database, Database], pg_database_url: str, tmp_path: Path
) -> None:
    one, two = instances
    settings = settings_for(tmp_path / "data", pg_database_url)
    feeds.add_source(settings, "https://a.example/rss", "a", database=one)
    feeds.add_source(settings, "https://b.example/rss", None, database=two)
    assert [s.name for s in feeds.list_sources(settings, two)] == ["a", "b.example"]
    feeds.remove_source(settings, "a", database=two)
    assert [s.name for s in feeds.list_sources(settings, one)] == ["b.example"]
    # nothing went to the data folder's file, and the file list is not the shared one
    assert not (tmp_path / "data" / "sources.json").exists()
    assert SourceList(tmp_path / "data").list() == []


def test_a_round_on_one_instance_makes_the_others_skip(
    instances: tuple[Database, Database], pg_database_url: str, tmp_path: Path, site: FeedServer
) -> None:
    one, two = instances
    settings = settings_for(tmp_path / "data", pg_database_url)
    feed = site.route("/slow.xml", Route(rss([]), content_type=RSS_TYPE, delay=1.5, etag='"s"'))
    feeds.add_source(settings, feed, "slow", database=one)

    results: list[object] = []

    def first_round() -> None:
        results.append(feeds.fetch(settings, transport=LocalOnly(), database=one))

    runner = threading.Thread(target=first_round)
    runner.start()
    deadline = time.monotonic() + 10
    while not site.hits_for("/slow.xml") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert site.hits_for("/slow.xml"), "the first round never asked for the feed"
    with pytest.raises(RoundBusyError, match="Another fetch round is running"):
        feeds.fetch(settings, transport=LocalOnly(), database=two)
    runner.join(timeout=30)
    assert len(results) == 1 and not runner.is_alive()
    assert len(site.hits_for("/slow.xml")) == 1  # the skipped round fetched nothing
    # the first round recorded the feed's state where the other instance reads it
    stored = feeds.list_sources(settings, two)[0]
    assert (stored.status, stored.etag) == ("ok", '"s"') and stored.last_fetch > 0
    # with the lock free, the other instance's round runs (and asks conditionally)
    summary = feeds.fetch(settings, transport=LocalOnly(), database=two)
    assert [r.outcome for r in summary.sources] == ["not modified"]
    # the lock is the database's, not the data folder's: a machine with another data
    # folder is kept out as well
    with one.try_lock(feeds.ROUND_LOCK) as held:
        assert held
        elsewhere = settings_for(tmp_path / "elsewhere", pg_database_url)
        with pytest.raises(RoundBusyError):
            feeds.fetch(elsewhere, transport=LocalOnly(), database=two)


@dataclass
class FakeServices:
    """What ``FeedService`` uses of the bot's services."""

    settings: BotSettings
    database: Database | None
    reindexed: int = 0

    async def reindex(self) -> None:
        self.reindexed += 1


def test_a_scheduled_round_just_run_elsewhere_is_not_run_again(
    instances: tuple[Database, Database], pg_database_url: str, tmp_path: Path, site: FeedServer
) -> None:
    one, two = instances
    settings = BotSettings(  # type: ignore[call-arg]
        _env_file=None,
        telegram_token="1:a",
        data_dir=tmp_path / "data",
        database_url=pg_database_url,
        feeds_per_host_delay=0,
        feeds_retries=0,
    )
    feed = site.route("/feed.xml", Route(rss([]), content_type=RSS_TYPE, etag='"f"'))
    feeds.add_source(settings, feed, "local", database=one)
    first = FeedService(None, FakeServices(settings, one), transport=LocalOnly())  # type: ignore[arg-type]
    second = FeedService(None, FakeServices(settings, two), transport=LocalOnly())  # type: ignore[arg-type]
    assert asyncio.run(first.run_round(skip_when_empty=True)) is not None
    assert asyncio.run(second.run_round(skip_when_empty=True)) is None  # fetched just now
    assert len(site.hits_for("/feed.xml")) == 1
    # /sources fetch (not a scheduled round) runs anyway
    assert asyncio.run(second.run_round()) is not None
    assert len(site.hits_for("/feed.xml")) == 2


# ---- the command line and the bot on one PostgreSQL ------------------------------------------


def test_sources_added_from_the_shell_are_the_bots(
    pg_database_url: str, tmp_path: Path, site: FeedServer
) -> None:
    feed = site.route("/feed.xml", Route(rss([]), content_type=RSS_TYPE))
    env = {
        "NEWSDESK_DATA_DIR": str(tmp_path / "cli-data"),
        "NEWSDESK_DATABASE_URL": pg_database_url,
    }
    done = run_cli("sources", "add", feed, "--name", "energy", env=env, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().startswith(f"Following energy: {feed}\n")
    assert not (tmp_path / "cli-data" / "sources.json").exists()

    bot_settings = BotSettings(  # type: ignore[call-arg]
        _env_file=None,
        telegram_token="1:a",
        data_dir=tmp_path / "bot-data",
        database_url=pg_database_url,
    )
    database = open_state_database(bot_settings)  # what BotServices.open opens
    try:
        assert [(s.name, s.url) for s in feeds.list_sources(bot_settings, database)] == [
            ("energy", feed)
        ]
        with database.try_lock(feeds.ROUND_LOCK) as held:  # a round on the bot's instance
            assert held
            busy = run_cli("fetch", env=env, timeout=120)
        assert busy.returncode == 3
        assert busy.stderr.decode().startswith("newsdesk: Another fetch round is running")
    finally:
        database.close()


def test_a_round_that_lands_during_a_reindex_keeps_its_articles_waiting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another instance's round (or `newsdesk fetch`) writes articles while this re-index
    runs, after it read the corpus: the mark it left must survive this re-index's end."""
    import newsdesk.services

    settings = Settings(_env_file=None, data_dir=tmp_path / "data")  # type: ignore[call-arg]
    feeds._mark_pending(settings)

    def reindex_while_a_round_lands(*args: object, **kwargs: object) -> None:
        feeds._mark_pending(settings)  # the other round, mid-way through this re-index

    monkeypatch.setattr(newsdesk.services, "run_reindex", reindex_while_a_round_lands)
    feeds.reindex_fetched(settings, embedder=None)  # type: ignore[arg-type]
    assert feeds.reindex_pending(settings)  # its articles still wait
    monkeypatch.setattr(newsdesk.services, "run_reindex", lambda *a, **k: None)
    feeds.reindex_fetched(settings, embedder=None)  # type: ignore[arg-type]
    assert not feeds.reindex_pending(settings)  # nothing landed meanwhile: cleared
