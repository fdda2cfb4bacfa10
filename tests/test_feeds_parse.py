"""Reading feeds, sitemaps and HTML pages (autodiscovery) into items."""

from __future__ import annotations

import json

import pytest

from corpus.feeds.errors import FeedParseError
from corpus.feeds.parse import feed_links, html_to_paragraphs, parse_source
from tests.test_feeds_server import need_web, rss

BASE = "http://127.0.0.1:8000/feed"


@pytest.mark.parametrize(
    ("name", "fmt", "count", "first_link"),
    [
        ("feed2.rss", "rss20", 1, "http://www.example.com/blog/post/1"),
        ("feed1.atom", "atom10", 2, "http://example.org/2003/12/13/atom03"),
        ("feed.json", "json", 25, "https://www.npr.org/2021/10/29/1050315385/"),
        ("sitemap.xml", "sitemap", 84, "https://www.sitemaps.org/"),
    ],
)
def test_sample_feeds(name: str, fmt: str, count: int, first_link: str) -> None:
    parsed = parse_source((need_web() / "feeds" / name).read_bytes(), BASE)
    assert parsed.format == fmt and len(parsed.items) == count
    assert parsed.items[0].link.startswith(first_link)
    assert all(item.key for item in parsed.items)


def test_rss_item_fields_and_dates() -> None:
    body = rss(
        [
            {
                "title": "A",
                "link": "http://x/a",
                "pubDate": "Sun, 06 Sep 2009 16:20:00 +0000",
                "description": "<p>One.</p><p>Two &amp; three.</p>",
                "guid": "g1",
            }
        ]
    )
    item = parse_source(body, BASE).items[0]
    assert item.key.endswith("g1") and (item.link, item.title) == ("http://x/a", "A")
    assert item.published == "2009-09-06T16:20:00Z"
    assert item.content == "One.\nTwo & three."


def test_rss_1_0_rdf() -> None:
    body = b"""<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/"
  xmlns:dc="http://purl.org/dc/elements/1.1/">
 <channel rdf:about="http://x/"><title>RDF news</title><link>http://x/</link></channel>
 <item rdf:about="http://x/1"><title>First</title><link>http://x/1</link>
  <dc:date>2024-05-01T10:00:00Z</dc:date><dc:creator>Ann</dc:creator></item>
</rdf:RDF>"""
    parsed = parse_source(body, BASE)
    assert parsed.format == "rss10" and parsed.title == "RDF news"
    item = parsed.items[0]
    assert (item.link, item.published, item.author) == ("http://x/1", "2024-05-01T10:00:00Z", "Ann")


def test_rss_0_91() -> None:
    body = b'<rss version="0.91"><channel><title>Old</title><item><title>T</title><link>http://x/9</link></item></channel></rss>'
    parsed = parse_source(body, BASE)
    assert parsed.format == "rss091u" or parsed.format.startswith("rss09")
    assert parsed.items[0].link == "http://x/9"


def test_json_feed_1_1_authors() -> None:
    body = json.dumps(
        {
            "version": "https://jsonfeed.org/version/1.1",
            "title": "J",
            "items": [
                {
                    "id": "1",
                    "url": "http://x/1",
                    "title": "T",
                    "content_text": "Line one.\nLine two.",
                    "authors": [{"name": "Bo"}],
                    "date_published": "2024-01-02T03:04:05Z",
                }
            ],
        }
    ).encode()
    item = parse_source(body, BASE).items[0]
    assert (item.author, item.content, item.published) == (
        "Bo",
        "Line one.\nLine two.",
        "2024-01-02T03:04:05Z",
    )


def test_news_sitemap_and_sitemap_index() -> None:
    news = b"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"
        xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">
 <url><loc>/story-1</loc><news:news><news:publication>
   <news:name>Paper</news:name><news:language>en</news:language></news:publication>
   <news:publication_date>2024-05-02T08:00:00Z</news:publication_date>
   <news:title>Big story</news:title></news:news></url>
</urlset>"""
    parsed = parse_source(news, "http://127.0.0.1:8000/news-sitemap.xml")
    item = parsed.items[0]
    assert parsed.kind == "sitemap"
    assert (item.link, item.title, item.published) == (
        "http://127.0.0.1:8000/story-1",
        "Big story",
        "2024-05-02T08:00:00Z",
    )
    index = b"""<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
 <sitemap><loc>http://127.0.0.1:8000/a.xml</loc></sitemap><sitemap><loc>/b.xml</loc></sitemap>
</sitemapindex>"""
    parsed = parse_source(index, "http://127.0.0.1:8000/index.xml")
    assert parsed.kind == "sitemapindex"
    assert parsed.links == ["http://127.0.0.1:8000/a.xml", "http://127.0.0.1:8000/b.xml"]


def test_html_autodiscovery() -> None:
    page = b"""<!DOCTYPE html><html><head><title>Site</title>
<link rel="stylesheet" href="/s.css">
<link rel="alternate" type="application/atom+xml" title="Atom" href="/atom.xml">
<link rel="alternate" type="application/rss+xml" href="https://cdn.example/rss">
</head><body><p>Hi</p></body></html>"""
    parsed = parse_source(page, "http://127.0.0.1:8000/blog/")
    assert parsed.kind == "html"
    assert parsed.links == ["http://127.0.0.1:8000/atom.xml", "https://cdn.example/rss"]
    assert feed_links("<p>no head</p>", "http://x/") == []


def test_a_real_article_page_is_html_without_feed_or_with_one() -> None:
    web = need_web()
    page = (web / "pages" / "1a53eff0c06c.html").read_bytes()
    assert parse_source(page, "http://127.0.0.1/p").kind == "html"


def test_malformed_xml_is_read_when_possible_with_a_warning() -> None:
    broken = rss([{"title": "Fish & chips", "link": "http://x/1"}])  # bare & is not XML
    parsed = parse_source(broken, BASE)
    assert parsed.items[0].title == "Fish & chips" and parsed.warning


def test_garbage_is_not_a_feed() -> None:
    with pytest.raises(FeedParseError, match="not a feed"):
        parse_source(b"<<<>>> this is & not xml at all", BASE)
    with pytest.raises(FeedParseError, match="JSON that is not a JSON Feed"):
        parse_source(b'{"hello": 1}', BASE)
    with pytest.raises(FeedParseError, match="empty"):
        parse_source(b"  \n", BASE)


def test_items_without_links_or_dates_keep_a_key() -> None:
    body = rss(
        [
            {"title": "No link", "description": "Text only."},
            {"title": "Dated", "link": "http://x/2"},
        ]
    )
    first, second = parse_source(body, BASE).items
    assert first.link == "" and first.published == "" and first.key
    assert second.key == "http://x/2" and second.published == ""


def test_fingerprint_changes_with_content() -> None:
    one = parse_source(rss([{"guid": "g", "title": "T", "description": "a"}]), BASE).items[0]
    two = parse_source(rss([{"guid": "g", "title": "T", "description": "b"}]), BASE).items[0]
    assert one.key == two.key and one.fingerprint != two.fingerprint


def test_html_to_paragraphs_skips_scripts() -> None:
    assert html_to_paragraphs("<p>A <b>b</b></p><script>x()</script><br>C") == ["A b", "C"]
