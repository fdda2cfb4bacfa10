"""Extract the article from a fetched page with trafilatura, minus page furniture.

:func:`extract_article` returns title, main text (one paragraph per line), date, author and
canonical URL. It runs trafilatura with the options below (:data:`TUNED`) and then drops
paragraphs that are page furniture by generic rules (:func:`drop_furniture`): calls to
subscribe or sign up, copyright and affiliate notices, bare metadata labels, a lone domain
name, and paragraphs whose words mix Latin and Cyrillic letters (look-alike letters used to
hide adverts from filters). Only whole paragraphs are removed; characters are never changed.

``scripts/eval_extraction.py`` scores this against trafilatura's defaults on the real pages
in ``../shared/web`` (see ``docs/feeds.md``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import trafilatura

from corpus.feeds.errors import ExtractionError

__all__ = [
    "DEFAULTS",
    "TUNED",
    "ExtractOptions",
    "Extracted",
    "decode_html",
    "drop_furniture",
    "extract_article",
]

#: Elements pruned before extraction: photo credits (caption bylines such as "By U.S.
#: CUSTOMS AND BORDER PROTECTION") and dialogs (pop-ups, newsletter and cookie modals),
#: which are never the article.
PRUNE_XPATH = (
    "//*[contains(concat(' ', normalize-space(@class), ' '), 'credit')]",
    "//*[@role='dialog' or @role='alertdialog']",
)


@dataclass(frozen=True, slots=True)
class ExtractOptions:
    """How trafilatura is called, and whether furniture paragraphs are dropped after."""

    include_comments: bool = True
    include_tables: bool = True
    favor_precision: bool = False
    prune_xpath: tuple[str, ...] = ()
    drop_furniture: bool = False

    def trafilatura_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "include_comments": self.include_comments,
            "include_tables": self.include_tables,
            "favor_precision": self.favor_precision,
        }
        if self.prune_xpath:
            kwargs["prune_xpath"] = list(self.prune_xpath)
        return kwargs


#: trafilatura as it comes.
DEFAULTS = ExtractOptions()
#: What Newsdesk uses: no reader comments, furniture elements pruned, furniture paragraphs
#: dropped. Tables are kept (recipes, figures in news) and precision mode is off: both cost
#: article text on the evaluation pages.
TUNED = ExtractOptions(include_comments=False, prune_xpath=PRUNE_XPATH, drop_furniture=True)


@dataclass(frozen=True, slots=True)
class Extracted:
    """An article extracted from a page. ``paragraphs`` are the lines of ``text``."""

    title: str
    text: str
    paragraphs: tuple[str, ...] = field(default=())
    date: str = ""
    author: str = ""
    canonical_url: str = ""
    sitename: str = ""


# --------------------------------------------------------------------------- decoding

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_:.-]+)""", re.I)


def _usable(encoding: str | None) -> str | None:
    if not encoding:
        return None
    try:
        "".encode(encoding)
    except LookupError:
        return None
    return encoding


def decode_html(data: bytes, header_charset: str | None = None) -> str:
    """Decode a page: the HTTP charset, else a ``<meta charset>``, else UTF-8, else cp1252.

    A page sent without any charset that is not valid UTF-8 is read as Windows-1252 (what
    browsers do for such pages in Western languages); undecodable bytes are replaced.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace")
    encoding = _usable(header_charset)
    if encoding is None:
        match = _META_CHARSET.search(data[:4096])
        encoding = _usable(match.group(1).decode("ascii")) if match else None
    if encoding is not None:
        # Pages labelled latin-1 / ascii are in practice cp1252 (as browsers assume).
        if encoding.lower().replace("_", "-") in {"iso-8859-1", "latin-1", "latin1", "ascii"}:
            encoding = "cp1252"
        return data.decode(encoding, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


# --------------------------------------------------------------------------- furniture

#: Longest paragraph the furniture rules look at: real article paragraphs are longer, and a
#: long paragraph that happens to mention "subscribe" is kept.
_FURNITURE_MAX_CHARS = 260

_CALL_TO_ACTION = re.compile(
    r"\bsign[ -]?up (here|now|today|for (our|free|a free))\b|\bfree sign[ -]?up\b"
    r"|\bsign[ -]?up\W*$"
    r"|\bsubscribe (now|today|here)\b|\bplease subscribe\b|\bsubscribe to (our|the)\b"
    r"|\balready an? (subscriber|member)\b|\blog ?in for\b"
    r"|\bdownload (the|our) [\w .-]{0,40}\bapps?\b"
    r"|\bletters? to the editor\b"
    r"|\bnever miss (a|an|our)\b"
    r"|\b(follow|like) us on\b"
    r"|\bclick here\b",
    re.IGNORECASE,
)
_LEGAL = re.compile(
    r"^\s*(©|\(c\)|copyright\b)|\ball rights reserved\b|\bcopyrighted property\b"
    r"|\badvertisers? (do|does) not influence\b|\bmay (receive|earn) (a )?(compensation|commission)"
    r"|\badvertiser disclosure\b|\baffiliate links?\b",
    re.IGNORECASE,
)
#: Bare metadata labels: "Release Date:", "Category : Press Releases", "Last Modified: ...".
_METADATA_LABEL = re.compile(
    r"\b(last modified|last updated|release date|news date|categor(y|ies)|filed under|tags)"
    r"\s*:",
    re.IGNORECASE,
)
_METADATA_MAX_CHARS = 120
_LONE_DOMAIN = re.compile(
    r"^(https?://)?(www\.)?[a-z0-9-]+(\.[a-z0-9-]+)*\.([a-z]{2,12})/?$", re.IGNORECASE
)
#: Endings of file names, which look like domains ("setup.py") but are not.
_FILE_SUFFIXES = frozenset(
    [
        "py",
        "js",
        "ts",
        "md",
        "txt",
        "sh",
        "rb",
        "pl",
        "go",
        "rs",
        "c",
        "h",
        "cpp",
        "java",
        "php",
        "htm",
        "html",
        "json",
        "xml",
        "csv",
        "pdf",
        "doc",
        "docx",
        "zip",
        "exe",
        "jpg",
        "jpeg",
        "png",
        "gif",
        "svg",
        "css",
        "yml",
        "yaml",
        "toml",
        "ini",
        "cfg",
        "log",
    ]
)
_LATIN = re.compile(r"[A-Za-z]")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
#: Words mixing scripts that make a paragraph an obfuscated advert.
_MIXED_WORDS = 3


def _mixed_script_words(paragraph: str) -> int:
    return sum(1 for word in paragraph.split() if _LATIN.search(word) and _CYRILLIC.search(word))


def furniture_reason(paragraph: str) -> str | None:
    """Why ``paragraph`` is page furniture, or ``None`` when it may be article text."""
    text = paragraph.strip()
    if _mixed_script_words(text) >= _MIXED_WORDS:
        return "mixed Latin/Cyrillic words (obfuscated advert)"
    domain = _LONE_DOMAIN.match(text)
    indented = paragraph[:1].isspace()  # code blocks keep their indentation
    if domain and not indented and domain.group(4).lower() not in _FILE_SUFFIXES:
        return "a lone domain name"
    if len(text) > _FURNITURE_MAX_CHARS:
        return None
    if _CALL_TO_ACTION.search(text):
        return "call to action (subscribe, sign up, app)"
    if _LEGAL.search(text):
        return "copyright or affiliate notice"
    if len(text) <= _METADATA_MAX_CHARS and _METADATA_LABEL.search(text):
        return "metadata label"
    return None


def drop_furniture(paragraphs: list[str]) -> list[str]:
    """``paragraphs`` without those :func:`furniture_reason` flags, in order."""
    return [p for p in paragraphs if furniture_reason(p) is None]


# --------------------------------------------------------------------------- extraction


def _clean(value: object) -> str:
    return " ".join(str(value).split()) if value else ""


def extract_article(
    page: bytes | str,
    url: str = "",
    *,
    charset: str | None = None,
    options: ExtractOptions = TUNED,
    min_chars: int = 1,
) -> Extracted:
    """Extract the article of a page (bytes as served, or text) found at ``url``.

    Raises :class:`ExtractionError` with a reason when trafilatura finds no main text or
    what is left is shorter than ``min_chars``.
    """
    html = decode_html(page, charset) if isinstance(page, bytes) else page
    if not html.strip():
        raise ExtractionError("empty page")
    try:
        document = trafilatura.bare_extraction(
            html, url=url or None, with_metadata=True, **options.trafilatura_kwargs()
        )
    except Exception as exc:  # trafilatura raises assorted lxml/parser errors on bad HTML
        raise ExtractionError(f"page could not be parsed ({type(exc).__name__})") from exc
    if document is None or not (document.text or "").strip():
        raise ExtractionError("no article text found on the page")
    lines = [line for line in document.text.split("\n") if line.strip()]
    if options.drop_furniture:
        lines = drop_furniture(lines)
    paragraphs = [line.strip() for line in lines]
    text = "\n".join(paragraphs)
    if len(text) < min_chars:
        raise ExtractionError(f"article text too short ({len(text)} characters)")
    return Extracted(
        title=_clean(document.title),
        text=text,
        paragraphs=tuple(paragraphs),
        date=_clean(document.date),
        author=_clean(document.author),
        canonical_url=_clean(document.url),
        sitename=_clean(document.sitename),
    )
