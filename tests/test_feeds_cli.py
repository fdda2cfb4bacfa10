"""``newsdesk sources`` and ``newsdesk fetch`` in a child process, as an admin runs them,
against a local feed server on 127.0.0.1: add, fetch (round + re-index), fetch again
(only conditional requests, nothing changed), list, remove, the exit codes, and a
re-index from scratch that rebuilds the fetched articles too."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from corpus.feeds.sources import state_dir
from corpus.feeds.store import file_lock
from tests.conftest import run_cli
from tests.test_feeds_server import RSS_TYPE, FeedServer, Route, rss, serve

TITLE = "Solar farms spread across the plains"
PARAGRAPHS = (
    "Solar farms now cover more than forty square kilometres of the northern plains, the "
    "regional energy agency said on Tuesday, twice the area of two years ago.",
    "Farmers lease the land for about 900 euros a hectare a year, and many keep grazing "
    "sheep between the rows of panels, the agency's report added.",
    "The agency expects the built area to double again by the end of the decade as the "
    "grid connection to the coast is finished.",
)


@pytest.fixture
def site() -> Iterator[FeedServer]:
    yield from serve()


def page(title: str, *paragraphs: str) -> bytes:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (
        f'<html><head><meta charset="utf-8"><title>{title}</title></head><body>'
        f"<nav>Home | Energy</nav><article><h1>{title}</h1>{body}</article></body></html>"
    ).encode()


@pytest.fixture
def env(tmp_path: Path, small_corpus: Path) -> dict[str, str]:
    return {
        "NEWSDESK_DATA_DIR": str(tmp_path / "data"),
        "NEWSDESK_CORPUS_DIRS": str(small_corpus),
        "NEWSDESK_EMBEDDING_MODEL": "hashing",
        "NEWSDESK_FEEDS_PER_HOST_DELAY": "0",
        "NEWSDESK_FEEDS_READ_TIMEOUT": "3",
        "NEWSDESK_FEEDS_RETRIES": "0",
    }


def newsdesk(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    done = run_cli(*args, env=env, timeout=180)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def test_add_fetch_then_fetch_again_makes_only_conditional_requests(
    site: FeedServer, env: dict[str, str], tmp_path: Path
) -> None:
    url = site.route("/news/solar.html", Route(page(TITLE, *PARAGRAPHS), etag='"p1"'))
    item = {"title": TITLE, "link": url, "guid": "solar"}
    feed = site.route(
        "/feed.xml", Route(rss([item], title="Energy Wire"), content_type=RSS_TYPE, etag='"f1"')
    )

    code, out, err = newsdesk("sources", "add", feed, "--name", "energy", env=env)
    assert (code, err) == (0, "")
    assert out.startswith(f"Following energy: {feed}\n")
    code, out, _ = newsdesk("sources", "list", env=env)
    assert code == 0 and "energy" in out and "never fetched; 0 articles" in out

    code, out, err = newsdesk("fetch", "--quiet", env=env)
    assert (code, err) == (0, ""), err
    assert "1 added" in out and "  energy: 1 items, 1 new or changed, 1 added" in out
    assert "Index v000001 written" in out  # the incremental re-index followed
    stored = (tmp_path / "data" / "feeds" / "energy.jsonl").read_text(encoding="utf-8")
    assert [json.loads(line)["url"] for line in stored.splitlines()] == [url]

    hits = len(site.hits)
    code, out, err = newsdesk("fetch", "--quiet", env=env)
    assert (code, err) == (0, "")
    assert "Nothing changed: only conditional requests, nothing written." in out
    assert "  energy: not modified (304)" in out
    assert out.rstrip().endswith("Nothing changed: the index is up to date.")
    assert all(h.conditional for h in site.hits[hits:]) and site.hits[hits:]
    assert (tmp_path / "data" / "feeds" / "energy.jsonl").read_text(encoding="utf-8") == stored

    code, out, _ = newsdesk("sources", "list", env=env)
    assert code == 0 and "energy [feed]" in out and "ok; last fetch" in out
    assert out.rstrip().endswith("1 articles")

    # the fetched article answers questions, and a re-index from scratch keeps it
    code, out, _ = newsdesk("ask", "--json", "how much do farmers get for leasing land?", env=env)
    assert code == 0 and json.loads(out)["url"] == url
    shutil.rmtree(tmp_path / "data" / "index")
    code, out, _ = newsdesk("reindex", "--quiet", env=env)
    assert code == 0 and "added 4," in out  # the three corpus articles and the fetched one

    code, out, _ = newsdesk("sources", "remove", "energy", env=env)
    assert code == 0 and out.startswith(f"Stopped following energy: {feed}")
    assert "Its 1 article(s) stay in" in out
    code, out, _ = newsdesk("fetch", env=env)
    assert code == 0 and out.startswith("No sources to fetch.")


def test_errors_are_one_line_with_their_exit_codes(site: FeedServer, env: dict[str, str]) -> None:
    feed = site.route("/feed.xml", Route(rss([]), content_type=RSS_TYPE))
    assert newsdesk("sources", "add", feed, env=env)[0] == 0
    cases = [
        (("sources", "add", feed), 1, "newsdesk: Already followed as"),
        (("sources", "add", "ftp://example.org/x"), 2, "newsdesk: Not an http(s) URL"),
        (("sources", "add", feed + "?2", "--name", "Bad Name!"), 2, "newsdesk: Bad source name"),
        (("sources", "remove", "nope"), 1, "newsdesk: No source named 'nope'"),
        (
            ("sources",),
            2,
            "newsdesk sources: the following arguments are required: add|list|remove",
        ),
    ]
    for args, code, start in cases:
        got, out, err = newsdesk(*args, env=env)
        assert (got, out) == (code, ""), args
        assert err.startswith(start) and err.count("\n") == 1, err


def test_a_round_already_running_is_busy(site: FeedServer, env: dict[str, str]) -> None:
    feed = site.route("/feed.xml", Route(rss([]), content_type=RSS_TYPE))
    assert newsdesk("sources", "add", feed, env=env)[0] == 0
    lock = state_dir(Path(env["NEWSDESK_DATA_DIR"])) / "round.lock"
    with file_lock(lock, blocking=False) as locked:
        assert locked
        code, out, err = newsdesk("fetch", env=env)
    assert (code, out) == (3, "")
    assert err == "newsdesk: Another fetch round is running; try again when it ends\n"
