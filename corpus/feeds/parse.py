"""Read what a source URL serves: a feed, a sitemap, or an HTML page that links to a feed.

* Feeds (RSS 0.9x/2.0, RSS 1.0/RDF, Atom) go through feedparser, which copes with broken
  XML: a feed it can still read entries from is used, its error noted in ``warning``.
* JSON Feed (1.0 and 1.1) is read here (feedparser 6.0 does not know it).
* Sitemaps (``urlset``, with the news extension's title and publication date) and sitemap
  indexes (``sitemapindex``: their child sitemaps are returned for the caller to fetch).
* HTML: the ``<link rel="alternate">`` feeds it names, for autodiscovery.

Everything is turned into :class:`FeedItem` records; :func:`parse_source` raises
:class:`~corpus.feeds.errors.FeedParseError` with a reason for anything else.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin

import feedparser
from lxml import etree

from corpus.feeds.errors import FeedParseError

__all__ = [
    "FeedItem",
    "ParsedSource",
    "feed_links",
    "html_to_paragraphs",
    "parse_source",
]

FEED_TYPES = {
    "application/rss+xml": "rss",
    "application/atom+xml": "atom",
    "application/rdf+xml": "rdf",
    "application/feed+json": "json",
    "application/x-rss+xml": "rss",
    "text/xml": "xml",
    "application/xml": "xml",
}


@dataclass(frozen=True, slots=True)
class FeedItem:
    """One entry of a feed or sitemap.

    ``key`` identifies the item within its source (guid/id, else link, else a hash of title
    and content); ``fingerprint`` changes when the item is edited (title, dates, content).
    ``content`` is the item's own text (HTML stripped), one paragraph per line.
    """

    key: str
    link: str = ""
    title: str = ""
    published: str = ""
    updated: str = ""
    author: str = ""
    content: str = ""

    @property
    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for part in (self.link, self.title, self.published, self.updated, self.content):
            h.update(part.encode())
            h.update(b"\0")
        return h.hexdigest()[:24]


@dataclass(slots=True)
class ParsedSource:
    """What a source URL held. ``kind``: feed, sitemap, sitemapindex or html."""

    kind: str
    format: str = ""
    title: str = ""
    items: list[FeedItem] = field(default_factory=list)
    #: Child sitemaps of a sitemap index; feeds an HTML page links to.
    links: list[str] = field(default_factory=list)
    #: A problem the parser got past (feedparser's "bozo" error on broken XML).
    warning: str = ""


# --------------------------------------------------------------------------- helpers


def _text(value: object) -> str:
    return " ".join(str(value).split()) if value else ""


def _iso(parsed: time.struct_time | None) -> str:
    if not parsed:
        return ""
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(calendar.timegm(parsed)))
    except (OverflowError, ValueError, TypeError):
        return ""


class _TextCollector(HTMLParser):
    _BLOCKS = frozenset(
        [
            "p",
            "br",
            "div",
            "li",
            "ul",
            "ol",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "blockquote",
            "pre",
            "tr",
            "table",
            "section",
            "article",
            "header",
            "footer",
            "figure",
            "figcaption",
            "dd",
            "dt",
            "hr",
        ]
    )
    _SKIP = frozenset({"script", "style", "noscript", "template"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skip += 1
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_paragraphs(html: str) -> list[str]:
    """The text of an HTML fragment, one paragraph per block element, whitespace folded."""
    if "<" not in html:
        return [p for p in (" ".join(line.split()) for line in html.splitlines()) if p]
    collector = _TextCollector()
    collector.feed(html)
    collector.close()
    lines = "".join(collector.parts).split("\n")
    return [p for p in (" ".join(line.split()) for line in lines) if p]


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]


# --------------------------------------------------------------------------- feeds


def _entry_content(entry: Any) -> str:
    best = ""
    for content in entry.get("content") or []:
        value = content.get("value") or ""
        if len(value) > len(best):
            best = value
    summary = entry.get("summary") or ""
    if len(summary) > len(best):
        best = summary
    return "\n".join(html_to_paragraphs(best))


def _from_feedparser(parsed: Any) -> list[FeedItem]:
    items = []
    for entry in parsed.entries:
        link = _text(entry.get("link"))
        title = _text(entry.get("title"))
        content = _entry_content(entry)
        key = (
            _text(entry.get("id")) or link or (_digest(title, content) if title or content else "")
        )
        if not key:
            continue
        items.append(
            FeedItem(
                key=key,
                link=link,
                title=title,
                # dict.get: FeedParserDict maps a missing "updated" to "published" (with a
                # DeprecationWarning); RSS 1.0's dc:date only ever lands in "updated".
                published=_iso(
                    dict.get(entry, "published_parsed") or dict.get(entry, "updated_parsed")
                ),
                updated=_iso(dict.get(entry, "updated_parsed")),
                author=_text(entry.get("author")),
                content=content,
            )
        )
    return items


def _json_feed(data: dict[str, Any]) -> ParsedSource:
    items = []
    for raw in data.get("items") or []:
        if not isinstance(raw, dict):
            continue
        link = _text(raw.get("url") or raw.get("external_url"))
        title = _text(raw.get("title"))
        html = raw.get("content_html") or ""
        text = raw.get("content_text") or ""
        content = "\n".join(html_to_paragraphs(html if len(html) >= len(text) else text))
        if not content and raw.get("summary"):
            content = "\n".join(html_to_paragraphs(str(raw["summary"])))
        authors = raw.get("authors") or ([raw["author"]] if raw.get("author") else [])
        author = ", ".join(
            _text(a.get("name")) for a in authors if isinstance(a, dict) and a.get("name")
        )
        key = _text(raw.get("id")) or link or _digest(title, content)
        items.append(
            FeedItem(
                key=key,
                link=link,
                title=title,
                published=_text(raw.get("date_published")),
                updated=_text(raw.get("date_modified")),
                author=author,
                content=content,
            )
        )
    return ParsedSource(kind="feed", format="json", title=_text(data.get("title")), items=items)


# --------------------------------------------------------------------------- sitemaps


def _local(tag: object) -> str:
    return str(tag).rsplit("}", 1)[-1].lower() if isinstance(tag, str) else ""


def _child_text(element: Any, *path: str) -> str:
    current = [element]
    for name in path:
        current = [c for e in current for c in e if _local(c.tag) == name]
    return _text(current[0].text) if current else ""


def _sitemap(root: Any, base_url: str) -> ParsedSource:
    kind = _local(root.tag)
    if kind == "sitemapindex":
        links = [
            urljoin(base_url, loc)
            for child in root
            if _local(child.tag) == "sitemap" and (loc := _child_text(child, "loc"))
        ]
        return ParsedSource(kind="sitemapindex", format="sitemap", links=links)
    items = []
    for child in root:
        if _local(child.tag) != "url":
            continue
        loc = _child_text(child, "loc")
        if not loc:
            continue
        loc = urljoin(base_url, loc)
        items.append(
            FeedItem(
                key=loc,
                link=loc,
                title=_child_text(child, "news", "title"),
                published=_child_text(child, "news", "publication_date"),
                updated=_child_text(child, "lastmod"),
            )
        )
    return ParsedSource(kind="sitemap", format="sitemap", items=items)


def _xml_root(content: bytes) -> Any | None:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, recover=True)
    try:
        return etree.fromstring(content, parser=parser)
    except (etree.XMLSyntaxError, ValueError):
        return None


# --------------------------------------------------------------------------- HTML


class _LinkCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "link":
            return
        values = {k.lower(): (v or "") for k, v in attrs}
        rels = values.get("rel", "").lower().split()
        kind = FEED_TYPES.get(values.get("type", "").lower().split(";")[0].strip())
        if "alternate" in rels and kind and values.get("href"):
            self.links.append((kind, values["href"].strip()))


def feed_links(html: str, base_url: str) -> list[str]:
    """Feeds an HTML page announces with ``<link rel="alternate" type=...>``: in page order,
    comment feeds last. Plain ``application/json`` links (WordPress' REST API) are not feeds."""
    collector = _LinkCollector()
    try:
        collector.feed(html[:500_000])
        collector.close()
    except Exception:  # HTMLParser is lenient; be safe on pathological input
        pass
    seen: list[str] = []
    for _, href in collector.links:
        url = urljoin(base_url, href)
        if url not in seen:
            seen.append(url)
    # The site's feed before its comments feed.
    return sorted(seen, key=lambda url: "comment" in url.lower())


_HTML_MARKERS = (b"<!doctype html", b"<html", b"<head", b"<body")
_XML_ROOTS = (b"<rss", b"<feed", b"<rdf:rdf", b"<urlset", b"<sitemapindex", b"<channel")


def _first(haystack: bytes, needles: tuple[bytes, ...]) -> int:
    found = [i for i in (haystack.find(n) for n in needles) if i >= 0]
    return min(found) if found else -1


def _looks_like_html(head: bytes) -> bool:
    """Whether an HTML marker comes before any feed or sitemap root element."""
    lowered = head[:65536].lower()
    html = _first(lowered, _HTML_MARKERS)
    xml = _first(lowered, _XML_ROOTS)
    return html >= 0 and (xml < 0 or html < xml)


# --------------------------------------------------------------------------- entry point


def parse_source(content: bytes, url: str, content_type: str = "") -> ParsedSource:
    """Parse a body fetched from ``url`` as a feed, sitemap or HTML page.

    Raises :class:`FeedParseError` when it is none of them (or an HTML page without feeds
    yields ``kind == "html"`` with empty ``links`` -- the caller decides).
    """
    stripped = content.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not stripped:
        raise FeedParseError("empty response")
    if stripped[:1] in (b"{", b"["):
        try:
            data = json.loads(stripped.decode("utf-8", errors="replace"))
        except json.JSONDecodeError as exc:
            raise FeedParseError(f"not a feed: invalid JSON ({exc.msg})") from exc
        if isinstance(data, dict) and "jsonfeed.org" in str(data.get("version", "")):
            return _json_feed(data)
        raise FeedParseError("not a feed: JSON that is not a JSON Feed")
    if stripped[:1] == b"<" and not _looks_like_html(stripped):
        root = _xml_root(stripped)
        if root is not None and _local(root.tag) in ("urlset", "sitemapindex"):
            return _sitemap(root, url)
    if _looks_like_html(stripped) or content_type in ("text/html", "application/xhtml+xml"):
        html = stripped.decode("utf-8", errors="replace")
        return ParsedSource(kind="html", format="html", links=feed_links(html, url))
    headers = {"content-location": url}
    if content_type:
        headers["content-type"] = content_type
    parsed = feedparser.parse(stripped, response_headers=headers)
    problem = parsed.get("bozo_exception")
    warning = f"{type(problem).__name__}: {problem}" if parsed.get("bozo") and problem else ""
    if not parsed.get("version") and not parsed.entries:
        detail = f" ({warning[:120]})" if warning else ""
        raise FeedParseError(f"not a feed: unreadable XML{detail}")
    return ParsedSource(
        kind="feed",
        format=parsed.get("version") or "unknown",
        title=_text(parsed.feed.get("title")),
        items=_from_feedparser(parsed),
        warning=warning[:200],
    )
