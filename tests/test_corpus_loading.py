"""Loading corpus folders: text and JSON Lines formats, boilerplate, duplicates, bad input."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from corpus.article import Article, LoadResult, Skipped
from corpus.loaders import NotAnArticleError, iter_jsonl, load_corpus, load_text_file
from index.errors import CorpusError

SHARED = Path(__file__).resolve().parents[2] / "shared"
CORPUS = SHARED / "corpus"
BBC = CORPUS / "bbc"
SEED = CORPUS / "seed" / "tca-shoigu-dushanbe.txt"

#: Numbers found in the shared data (see the loader's report).
BBC_FILES = 2225
BBC_DUPLICATES = 101
WIKINEWS = 260
VOA = 30


@pytest.fixture(scope="module")
def shared() -> Path:
    if not CORPUS.is_dir():
        pytest.skip("../shared/corpus is not available")
    return CORPUS


@pytest.fixture(scope="module")
def bbc(shared: Path) -> LoadResult:
    return load_corpus([shared / "bbc"])


@pytest.fixture(scope="module")
def whole(shared: Path) -> LoadResult:
    return load_corpus([shared])


def by_id(result: LoadResult) -> dict[str, Article]:
    return {a.doc_id: a for a in result.articles}


def assert_well_formed(article: Article) -> None:
    assert article.title and article.text
    assert article.text == "\n\n".join(article.paragraphs)
    pos = 0
    for para in article.paragraphs:
        assert para and para == para.strip()
        found = article.text.find(para, pos)
        assert found >= 0, para
        pos = found + len(para)


# --------------------------------------------------------------------------- real data


def test_seed_article_body_and_bio_cut(shared: Path) -> None:
    article = load_text_file(SEED, shared)
    assert article.doc_id == "seed/tca-shoigu-dushanbe.txt"
    assert article.title == (
        "Russian defense minister, Tajikistan president discuss military cooperation in Dushanbe"
    )
    assert article.text.startswith("DUSHANBE (TCA) — Russian Defense Minister Sergei Shoigu")
    assert article.text.endswith("need support from Russia to defend themselves.")
    for bio in ("Sergey Kwan", "Kwan studied", "divider", "View more", "Bishkek"):
        assert bio not in article.text
    assert article.author == "Sergey Kwan"
    assert article.source == "corpus"  # the root folder's name
    assert len(article.paragraphs) == 10
    assert_well_formed(article)


def test_seed_as_single_file_root(shared: Path) -> None:
    result = load_corpus([SEED])
    [article] = result.articles
    assert article.doc_id == "tca-shoigu-dushanbe.txt"
    assert article.source == "seed"
    assert article.author == "Sergey Kwan"


def test_bbc_article_title_and_paragraphs(bbc: LoadResult) -> None:
    article = by_id(bbc)["business/062.txt"]
    assert article.title == "Wembley firm won't make a profit"
    assert article.source == "bbc"
    assert article.url == article.date == article.author == ""
    assert article.path.endswith("bbc/business/062.txt")
    assert len(article.paragraphs) == 5
    assert article.paragraphs[0].startswith("Shares in Multiplex Group")
    assert article.paragraphs[-1].endswith("told Reuters.")
    assert "A$4.67" in article.text
    assert "Wembley firm" not in article.text.split("\n\n")[0]
    assert_well_formed(article)


def test_bbc_whole_root_doc_ids(whole: LoadResult) -> None:
    assert "bbc/business/062.txt" in by_id(whole)


def test_latin1_file_decodes_pound_sign(bbc: LoadResult) -> None:
    raw = (BBC / "sport" / "199.txt").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    article = by_id(bbc)["sport/199.txt"]
    assert article.title == "Chelsea sack Mutu"
    assert "a £15.8m signing from Parma" in article.text
    assert "\ufffd" not in article.text


def test_bbc_readme_reported_not_loaded(bbc: LoadResult) -> None:
    assert bbc.skipped == [Skipped(str(BBC / "README.TXT"), "not an article (README)")]
    assert not any("README" in a.doc_id for a in bbc.articles)


def test_bbc_duplicates(bbc: LoadResult) -> None:
    assert len(bbc.duplicates) == BBC_DUPLICATES
    assert len(bbc.articles) == BBC_FILES - BBC_DUPLICATES
    ids = by_id(bbc)
    for dup in bbc.duplicates:
        assert dup.reason.startswith("duplicate of ")
        first = ids[dup.reason.removeprefix("duplicate of ")]
        later = load_text_file(dup.path, BBC)
        assert later.content_hash == first.content_hash
        assert later.doc_id > first.doc_id  # the first in walk order is kept
    assert len({a.content_hash for a in bbc.articles}) == len(bbc.articles)


def test_wikinews_jsonl(shared: Path) -> None:
    path = shared / "wikinews" / "wikinews.jsonl"
    items = list(iter_jsonl(path, shared / "wikinews"))
    articles = [i for i in items if isinstance(i, Article)]
    assert len(articles) == len(items) == WIKINEWS
    article = by_id(LoadResult(articles=articles))[
        "wikinews/Bomb_on_Jerusalem_bus_kills_one,_over_30_injured"
    ]
    assert article.title == "Bomb on Jerusalem bus kills one, over 30 injured"
    assert (
        article.url
        == "https://en.wikinews.org/wiki/Bomb_on_Jerusalem_bus_kills_one,_over_30_injured"
    )
    assert article.source == "Wikinews"
    assert article.date == ""  # "modified" is the last edit, not publication
    assert article.text.endswith("the militant group Hamas.")
    for a in articles:
        assert "Category:" not in a.text
        assert "Sources" not in a.paragraphs
        assert "__NOTOC__" not in a.text
        assert_well_formed(a)


def test_wikinews_digest_keeps_items_after_inner_sources(shared: Path) -> None:
    result = load_corpus([shared / "wikinews"])
    article = by_id(result)["wikinews/Wikinews_Shorts:_August_9,_2009"]
    assert "Ronnie Biggs released to die a free man" in article.paragraphs
    assert "Sources" not in article.paragraphs
    assert article.text.endswith("before making landfall on Hawaii.")


def test_voa_jsonl_single_newlines_are_paragraphs(shared: Path) -> None:
    result = load_corpus([shared / "voa"])
    assert len(result.articles) == VOA and not result.skipped
    article = by_id(result)["voa/n144"]
    assert article.author == "Katherine Gypson"
    assert article.source == "Voice of America"
    assert article.url.startswith("https://www.voanews.com/a/")
    assert article.paragraphs[0] == (
        "U.S. senators adjourned late Thursday without voting on a bill to fund the "
        "government beyond Friday."
    )
    assert article.paragraphs[1].startswith("Senators will resume debate Friday morning")
    for a in result.articles:
        assert "\n" not in "".join(a.paragraphs)
        assert_well_formed(a)


def test_whole_corpus(whole: LoadResult) -> None:
    started = time.perf_counter()
    again = load_corpus([CORPUS])
    assert time.perf_counter() - started < 5
    expected = BBC_FILES - BBC_DUPLICATES + WIKINEWS + VOA + 1
    assert len(whole.articles) == len(again.articles) == expected
    assert len(whole.duplicates) == BBC_DUPLICATES
    assert [s.reason for s in whole.skipped] == ["not an article (README)"]
    assert [a.doc_id for a in whole.articles] == [a.doc_id for a in again.articles]
    assert len({a.doc_id for a in whole.articles}) == expected
    for article in whole.articles:
        assert_well_formed(article)


# --------------------------------------------------------------------------- synthetic


def test_metadata_headers(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(
        "The title\n\nURL: https://example.com/a\ndate: 2024-05-28\nSOURCE: Example Times\n"
        "Author:  Jane Doe \n\nFirst paragraph.\n\nSecond\nparagraph.\n",
        encoding="utf-8",
    )
    (tmp_path / "b.txt").write_text("Another title\nSource: Wire\n\nBody.\n", encoding="utf-8")
    result = load_corpus([tmp_path])
    a, b = result.articles
    assert (a.title, a.url, a.date, a.source, a.author) == (
        "The title",
        "https://example.com/a",
        "2024-05-28",
        "Example Times",
        "Jane Doe",
    )
    assert a.paragraphs == ("First paragraph.", "Second\nparagraph.")
    assert a.text == "First paragraph.\n\nSecond\nparagraph."
    assert (b.source, b.text) == ("Wire", "Body.")


def test_header_like_body_text_is_kept(tmp_path: Path) -> None:
    body = "Source: a person close to the talks said it was over.\nThey left at noon."
    (tmp_path / "a.txt").write_text(f"Title\n\n{body}\n", encoding="utf-8")
    article = load_corpus([tmp_path]).articles[0]
    assert article.text == body
    assert article.source == tmp_path.name


def test_crlf_bom_and_cp1252(tmp_path: Path) -> None:
    (tmp_path / "crlf.txt").write_bytes(
        "\ufeffTitle\r\n\r\nOne\r\nline two\r\n\r\nThree\r\n".encode()
    )
    (tmp_path / "win.txt").write_bytes("Title\n\n\u201cQuoted\u201d \u2013 €5\n".encode("cp1252"))
    result = load_corpus([tmp_path])
    crlf, win = result.articles
    assert crlf.title == "Title"
    assert crlf.paragraphs == ("One\nline two", "Three")
    assert win.text == "\u201cQuoted\u201d \u2013 €5"


def test_empty_no_body_and_binary_files_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "blank.txt").write_text("\n  \n\n", encoding="utf-8")
    (tmp_path / "title_only.txt").write_text("Just a title\n\n", encoding="utf-8")
    (tmp_path / "garbage.txt").write_bytes(bytes(range(256)) * 8)
    (tmp_path / "noise.txt").write_bytes(bytes(b for b in range(1, 256) if b != 10) * 8)
    (tmp_path / "ok.txt").write_text("Title\n\nBody.\n", encoding="utf-8")
    result = load_corpus([tmp_path])
    assert [a.doc_id for a in result.articles] == ["ok.txt"]
    reasons = {Path(s.path).name: s.reason for s in result.skipped}
    assert reasons["empty.txt"] == "empty file"
    assert reasons["blank.txt"] == "empty file"
    assert reasons["title_only.txt"] == "no body after the title"
    assert reasons["garbage.txt"].startswith("binary file")
    assert reasons["noise.txt"].startswith("binary file")
    with pytest.raises(NotAnArticleError) as info:
        load_text_file(tmp_path / "empty.txt", tmp_path)
    assert info.value.reason == "empty file"


def test_walk_order_ignored_files_and_readme(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "a").mkdir()
    (tmp_path / ".hidden").mkdir()
    for rel in ("b/2.txt", "b/1.TXT", "a/z.txt", ".hidden/x.txt", "top.txt"):
        (tmp_path / rel).write_text(f"Title {rel}\n\nBody of {rel}.\n", encoding="utf-8")
    (tmp_path / ".dot.txt").write_text("T\n\nB\n", encoding="utf-8")
    (tmp_path / "notes.md").write_text("T\n\nB\n", encoding="utf-8")
    (tmp_path / "LICENSE.txt").write_text("MIT\n\nPermission is granted.\n", encoding="utf-8")
    result = load_corpus([str(tmp_path)])
    assert [a.doc_id for a in result.articles] == ["a/z.txt", "b/1.TXT", "b/2.txt", "top.txt"]
    assert result.skipped == [Skipped(str(tmp_path / "LICENSE.txt"), "not an article (LICENSE)")]


def test_malformed_jsonl_lines(tmp_path: Path) -> None:
    lines = [
        json.dumps({"id": "x/1", "title": "One", "text": "Para one.\nPara two.", "date": "2020"}),
        "{not json",
        "",
        json.dumps(["a", "list"]),
        json.dumps({"id": "x/2", "text": "no title"}),
        json.dumps({"id": "x/3", "title": "no text", "text": "  "}),
        json.dumps(
            {"title": "Two", "text": "Body.", "published": "2018-01-02", "modified": "2024"}
        ),
    ]
    path = tmp_path / "feed.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = load_corpus([tmp_path])
    one, two = result.articles
    assert (one.doc_id, one.paragraphs, one.date) == ("x/1", ("Para one.", "Para two."), "2020")
    assert one.text == "Para one.\n\nPara two."
    assert (two.doc_id, two.date, two.source) == ("feed.jsonl#7", "2018-01-02", tmp_path.name)
    assert [(s.path, s.reason.split(":")[0]) for s in result.skipped] == [
        (f"{path}:2", "invalid JSON"),
        (f"{path}:4", "not a JSON object but list"),
        (f"{path}:5", "no title"),
        (f"{path}:6", "no text"),
    ]


def test_jsonl_not_utf8_is_one_skip(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"title": "Caf\xe9", "text": "x"}\n')
    assert list(iter_jsonl(path, tmp_path)) == [
        Skipped(str(path), "not UTF-8 (byte 14): JSON Lines must be UTF-8")
    ]


def test_unreadable_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("locked.txt", "locked.jsonl", "ok.txt"):
        (tmp_path / name).write_text("T\n\nB\n", encoding="utf-8")
    real_open = os.open

    def open_file(path, *args, **kwargs):  # running as root, chmod cannot lock a file
        if os.path.basename(path).startswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_file)
    result = load_corpus([tmp_path])
    assert [a.doc_id for a in result.articles] == ["ok.txt"]
    assert result.skipped == [
        Skipped(str(tmp_path / "locked.jsonl"), "cannot read: Permission denied"),
        Skipped(str(tmp_path / "locked.txt"), "cannot read: Permission denied"),
    ]


def test_duplicates_and_doc_id_clashes_across_roots(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    (one / "a.txt").write_text("Same story\n\nThe same  body.\n", encoding="utf-8")
    (two / "copy.txt").write_text("same story\n\nThe same\nbody.\n", encoding="utf-8")
    (two / "a.txt").write_text("Other story\n\nDifferent.\n", encoding="utf-8")
    result = load_corpus([one, two])
    # The same path in a later root is qualified by the root's name, not dropped.
    assert [a.doc_id for a in result.articles] == ["a.txt", "two/a.txt"]
    assert result.skipped == []
    assert result.duplicates == [Skipped(str(two / "copy.txt"), "duplicate of a.txt")]


def test_generic_author_trailer_and_furniture(tmp_path: Path) -> None:
    text = (
        "Title\n\nFirst paragraph.\n\nAdvertisement\n\nSecond paragraph.\nShare this\n\n"
        "Jane Roe\n\nJane Roe writes about energy. She lives in Almaty.\n\n"
        "view more articles  from Jane Roe\n"
    )
    (tmp_path / "a.txt").write_text(text, encoding="utf-8")
    article = load_corpus([tmp_path]).articles[0]
    assert article.paragraphs == ("First paragraph.", "Second paragraph.")
    assert article.author == "Jane Roe"


def test_author_header_wins_over_trailer(tmp_path: Path) -> None:
    text = "Title\nAuthor: Desk\n\nBody text here.\n\nJane Roe\n\nView more articles from Jane Roe"
    (tmp_path / "a.txt").write_text(text, encoding="utf-8")
    article = load_corpus([tmp_path]).articles[0]
    assert (article.author, article.text) == ("Desk", "Body text here.")


def test_missing_root_raises(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="not found"):
        load_corpus([tmp_path / "nope"])
    (tmp_path / "x.pdf").write_bytes(b"%PDF")
    with pytest.raises(CorpusError, match=r"expected \.txt or \.jsonl"):
        load_corpus([tmp_path / "x.pdf"])


def test_empty_root_gives_empty_result(tmp_path: Path) -> None:
    result = load_corpus([tmp_path])
    assert result.articles == result.skipped == result.duplicates == []
