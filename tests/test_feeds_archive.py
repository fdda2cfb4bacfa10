"""The archive of fetched articles: one per canonical URL, no duplicate text, atomic writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from corpus.feeds.archive import Archive, FeedArticle, article_id
from corpus.feeds.sources import archive_dir
from corpus.loaders import load_corpus

TEXT = "First paragraph of a story about rain.\nSecond paragraph with more detail."


def _article(url: str = "https://news.example/a", text: str = TEXT, **kw: str) -> FeedArticle:
    return FeedArticle(url=url, title=kw.pop("title", "Rain"), text=text, source="News", **kw)


def test_added_unchanged_duplicate_updated(tmp_path: Path) -> None:
    archive = Archive(tmp_path)
    assert archive.put("news", _article()).action == "added"
    assert archive.put("news", _article()).action == "unchanged"
    dup = archive.put("other", _article("https://mirror.example/a", TEXT.upper()))
    assert (dup.action, dup.of) == ("duplicate", "https://news.example/a")
    assert archive.put("news", _article(text=TEXT + "\nA correction.")).action == "updated"
    archive.save()
    records = Archive(tmp_path).records("news")
    assert len(records) == 1 and records[0]["text"].endswith("A correction.")
    assert records[0]["id"] == article_id("https://news.example/a")
    assert not (archive_dir(tmp_path) / "other.jsonl").exists()


def test_loaders_read_the_archive(tmp_path: Path) -> None:
    archive = Archive(tmp_path)
    archive.put("news", _article(published="2024-05-01T10:00:00Z", author="Ann"))
    archive.save()
    loaded = load_corpus([archive_dir(tmp_path)])
    assert not loaded.skipped
    (article,) = loaded.articles
    assert article.doc_id == article_id("https://news.example/a")
    assert (article.url, article.date, article.author, article.source) == (
        "https://news.example/a",
        "2024-05-01T10:00:00Z",
        "Ann",
        "News",
    )
    assert article.paragraphs == tuple(TEXT.split("\n"))


def test_a_line_separator_inside_an_article_does_not_split_it(tmp_path: Path) -> None:
    """U+2028 is written raw (ensure_ascii=False) and JSON allows it inside a string:
    reading the archive back must not cut the record there and lose the article."""
    text = "A paragraph\u2028that an editor broke with a line separator.\nAnd another."
    archive = Archive(tmp_path)
    archive.put("news", _article(text=text))
    archive.save()
    again = Archive(tmp_path)
    assert again.unreadable == []
    assert again.put("news", _article(text=text)).action == "unchanged"
    again.save()
    loaded = load_corpus([archive_dir(tmp_path)])
    assert not loaded.skipped and len(loaded.articles) == 1
    assert "paragraph\u2028that an editor" in loaded.articles[0].text


def test_unreadable_lines_are_kept_as_they_were(tmp_path: Path) -> None:
    path = archive_dir(tmp_path) / "news.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text('{"title": "hand-written", "text": "no url"}\nnot json\n')
    archive = Archive(tmp_path)
    assert len(archive.unreadable) == 2
    archive.put("news", _article())
    archive.save()
    lines = path.read_text().splitlines()
    assert lines[:2] == ['{"title": "hand-written", "text": "no url"}', "not json"]
    assert json.loads(lines[2])["url"] == "https://news.example/a"


def test_a_crash_while_writing_leaves_the_old_file(tmp_path: Path, monkeypatch) -> None:
    archive = Archive(tmp_path)
    archive.put("news", _article())
    archive.save()
    path = archive_dir(tmp_path) / "news.jsonl"
    before = path.read_bytes()
    archive.put("news", _article("https://news.example/b", "Another story entirely."))

    def crash(src: str, dst: str) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        archive.save()
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["news.jsonl"]  # no temp file left
