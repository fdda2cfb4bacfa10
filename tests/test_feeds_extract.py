"""Article extraction: decoding, furniture rules, and quality on the real pages."""

from __future__ import annotations

import json

import pytest

from corpus.feeds.errors import ExtractionError
from corpus.feeds.extract import decode_html, extract_article, furniture_reason
from tests.test_feeds_server import need_web

ARTICLE = (
    "<html><head><title>Storm hits coast</title>"
    '<link rel="canonical" href="https://news.example/storm"></head><body>'
    "<nav><a href='/'>Home</a> <a href='/world'>World</a></nav><article><h1>Storm hits coast</h1>"
    + "".join(
        f"<p>Paragraph {i}: the storm brought heavy rain and strong winds to the coastal towns, "
        "where residents were told to stay indoors while crews cleared fallen trees.</p>"
        for i in range(5)
    )
    + "<p>Subscribe now to our newsletter for the full story.</p>"
    "<p>© 2024 Example News. All rights reserved.</p></article></body></html>"
)


def test_extracts_text_title_canonical_and_drops_furniture() -> None:
    article = extract_article(ARTICLE.encode(), "http://127.0.0.1/storm")
    assert article.title == "Storm hits coast"
    assert article.canonical_url == "https://news.example/storm"
    assert any(p.startswith("Paragraph 0: the storm") for p in article.paragraphs[:2])
    assert "Subscribe" not in article.text and "rights reserved" not in article.text
    assert article.text == "\n".join(article.paragraphs)


def test_windows_1252_page_without_charset_is_decoded() -> None:
    page = ARTICLE.replace("storm brought", "storm\u2019s \u201cworst\u201d rain brought").encode(
        "cp1252"
    )
    assert b"charset" not in page
    article = extract_article(page, "http://127.0.0.1/storm")
    assert "storm\u2019s \u201cworst\u201d rain" in article.text
    assert decode_html("caf\u00e9".encode("cp1252")) == "caf\u00e9"
    assert decode_html("caf\u00e9".encode()) == "caf\u00e9"
    assert decode_html("caf\u00e9".encode("cp1252"), "iso-8859-1") == "caf\u00e9"


def test_no_article_is_an_error_with_a_reason() -> None:
    with pytest.raises(ExtractionError, match="empty page"):
        extract_article(b"  ", "http://x/")
    with pytest.raises(ExtractionError, match="too short"):
        extract_article(b"<html><body><p>Just a line of text.</p></body></html>", min_chars=200)


@pytest.mark.parametrize(
    "paragraph",
    [
        "Do you want to be informed of our actions? Sign up here",
        "To view the full story, please subscribe to The Daily. You can choose a plan.",
        "For the latest stories download the Nationnews apps for iOS and Android.",
        "© 2020 ®/TM General Mills All Rights Reserved",
        "We may receive compensation if you visit partners we recommend.",
        "Release Date:",
        "News date : 04/21/2022 Category : Press Releases",
        "BVINEWS.COM",
        "Аdvеrtіѕе wіth thе most visited news site",  # Cyrillic look-alike letters
    ],
)
def test_furniture_rules_flag_boilerplate(paragraph: str) -> None:
    assert furniture_reason(paragraph) is not None


@pytest.mark.parametrize(
    "paragraph",
    [
        "New users can get $10 when they sign up for (and verify) an account.",
        "The company said subscribers rose 8% as it pushed its new app in Europe.",
        "  setup.py",
        "Carbohydrates: 31g",
        "Москва и Душанбе подписали соглашение.",
        "Netflix said 2.5 million people signed up in the quarter, and that its copyright "
        "dispute with the studio was settled; all rights reserved by the parties were kept "
        "in the agreement, according to the filing reviewed by reporters on Tuesday morning, "
        "which also showed revenue growth in every region of the world including Asia.",
    ],
)
def test_furniture_rules_keep_article_text(paragraph: str) -> None:
    assert furniture_reason(paragraph) is None


def test_quality_on_real_pages_beats_trafilatura_defaults() -> None:
    """The issue's bar: >= 95% of `with` snippets kept, >= 92% of `without` dropped."""
    web = need_web()
    found = absent = n_with = n_without = 0
    for line in (web / "expected.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        page = (web / "pages" / row["file"]).read_bytes()
        try:
            text = " ".join(extract_article(page, row["url"]).text.split())
        except ExtractionError:
            text = ""
        n_with += len(row["with"])
        n_without += len(row["without"])
        found += sum(" ".join(s.split()) in text for s in row["with"])
        absent += sum(" ".join(s.split()) not in text for s in row["without"])
    assert found / n_with >= 0.95
    assert absent / n_without >= 0.92
