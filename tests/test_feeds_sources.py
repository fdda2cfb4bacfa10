"""The source list: add, list, remove, names, persistence, status lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from corpus.feeds.errors import DuplicateSourceError, SourceError, SourceNotFoundError
from corpus.feeds.sources import SourceList, archive_dir, state_dir


def test_add_list_remove_persist(tmp_path: Path) -> None:
    sources = SourceList(tmp_path)
    assert sources.list() == []
    first = sources.add("https://www.example.com/rss.xml")
    second = sources.add("https://example.com/atom.xml")
    third = sources.add("http://127.0.0.1:8080/feed", name="Local")
    assert [s.name for s in SourceList(tmp_path).list()] == [
        "example.com",
        "example.com-2",
        "local",
    ]
    assert first.status == "new" and second.articles == 0 and third.url.endswith("/feed")
    assert sources.get("local").name == "local"
    assert sources.get("https://example.com/atom.xml").name == "example.com-2"
    removed = sources.remove("example.com")
    assert removed.url == "https://www.example.com/rss.xml"
    assert [s.name for s in sources.list()] == ["example.com-2", "local"]


def test_bad_and_duplicate_sources_are_refused(tmp_path: Path) -> None:
    sources = SourceList(tmp_path)
    sources.add("https://example.com/rss", name="ex")
    with pytest.raises(SourceError, match="Not an http"):
        sources.add("ftp://example.com/rss")
    with pytest.raises(SourceError, match="Bad source name"):
        sources.add("https://example.com/other", name="../etc")
    with pytest.raises(DuplicateSourceError, match="Already followed"):
        sources.add("https://example.com/rss")
    with pytest.raises(DuplicateSourceError, match="already exists"):
        sources.add("https://example.com/other", name="ex")
    with pytest.raises(SourceNotFoundError):
        sources.remove("nope")


def test_remove_keeps_articles_unless_asked(tmp_path: Path) -> None:
    sources = SourceList(tmp_path)
    sources.add("https://a.example/rss", name="a")
    sources.add("https://b.example/rss", name="b")
    for name in ("a", "b"):
        path = archive_dir(tmp_path) / f"{name}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}\n")
        (state_dir(tmp_path) / f"{name}.json").write_text("{}")
    sources.remove("a")
    sources.remove("b", delete_articles=True)
    assert (archive_dir(tmp_path) / "a.jsonl").exists()
    assert not (archive_dir(tmp_path) / "b.jsonl").exists()
    assert not (state_dir(tmp_path) / "a.json").exists()


def test_describe_shows_status_time_and_count(tmp_path: Path) -> None:
    sources = SourceList(tmp_path)
    sources.add("https://a.example/rss", name="a")
    assert "never fetched" in sources.get("a").describe()
    stored = sources.set(
        "a", status="failing", failures=3, last_error="HTTP 500", last_fetch=1000.0, articles=7
    )
    assert stored is not None
    line = stored.describe(now=1000.0 + 120)
    assert "failing (HTTP 500)" in line and "3 failed rounds" in line and "7 articles" in line
    assert "2 min ago" in line
    assert sources.set("gone", status="ok") is None


def test_a_damaged_list_is_reported(tmp_path: Path) -> None:
    (tmp_path / "sources.json").write_text('["not", "a", "list"]')
    with pytest.raises(SourceError, match="not a source list"):
        SourceList(tmp_path).list()
