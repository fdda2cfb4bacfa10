"""Cut page furniture (author bios, wiki trailers, stray UI lines) from article paragraphs.

Everything here works on a list of paragraphs (each an already stripped block of text,
possibly spanning several lines) and only ever *removes* whole lines or paragraphs: it never
rewrites characters, so what is left is still a faithful copy of the article and quotes cut
from it are verbatim.

The rules are deliberately conservative; when in doubt, text is kept:

* **Author trailer** (news sites such as The Times of Central Asia): when the last line is
  ``View more articles from <Name>``, that line goes, and so does the bio block above it: the
  earliest of the last few paragraphs that is just a short name (at most four capitalised
  words, no sentence punctuation) is cut together with everything after it, provided every
  paragraph after it repeats the name, mentions it, or is a lone furniture line. The name
  becomes the article's author.
* **Wiki trailer** (Wikinews): a paragraph that is just a section heading such as
  ``Sources``, ``References``, ``External links``, ``Related news`` or ``Sister links``
  starts the trailer when no prose paragraph (long running text) follows it; the trailer is
  cut to the end. Such headings that do sit between prose (digest articles have one
  ``Sources`` per item) are dropped on their own.
* **Lone lines** dropped wherever they stand: ``Category:...`` lines, wiki magic words like
  ``__NOTOC__``, image markup residue (``right|200px|...``) and UI words such as ``divider``,
  ``Share this`` or ``Advertisement``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["CleanResult", "clean_paragraphs"]

#: Lines that carry no article content when they stand alone (compared case-folded).
LONE_LINES = frozenset(
    {
        "divider",
        "share",
        "share this",
        "share this article",
        "share this story",
        "advertisement",
        "skip advertisement",
        "story continues below advertisement",
        "continue reading the main story",
    }
)

#: Headings that start the reference/navigation trailer of a wiki article.
TRAILER_HEADINGS = frozenset(
    {
        "sources",
        "source",
        "references",
        "external links",
        "external link",
        "external media",
        "related news",
        "related articles",
        "related wikinews",
        "related sources",
        "sister links",
        "sister link",
        "see also",
        "press releases",
        "further reading",
    }
)

# The patterns run on every line of every article, so each is linear in the line's length:
# no two neighbouring parts can match the same characters (``\s*(?:...)?\s*``, ``.*?\s*$``
# and ``\d*x?\d+`` backtracked quadratically: minutes for one line of spaces or digits).
_VIEW_MORE = re.compile(
    r"^\s*view\s*more\s*(?:(?:articles|stories|posts|news)\s*)?(?:from|by)(?P<name>.*)$",
    re.IGNORECASE,
)
_CATEGORY = re.compile(r"^\s*category\s*:", re.IGNORECASE)
_MAGIC_WORD = re.compile(r"^\s*__[A-Z]+__\s*$")
_IMAGE_MARKUP = re.compile(
    r"^\s*(?:(?:thumb|thumbnail|frame|frameless|border|left|right|center|centre|none"
    r"|upright|(?:\d+(?:x\d+)?|x\d+)px)\s*\|)+",
    re.IGNORECASE,
)
_NAME_WORD = re.compile(r"^[A-Z\u00c0-\u024f][\w'\u2019.-]*$")
_SENTENCE_PUNCT = re.compile(r"[!?;:,\"\u201c\u201d()]|\.\s|\.$")

#: How many paragraphs above ``View more articles from`` may belong to the bio block.
_MAX_BIO_PARAGRAPHS = 6
#: A paragraph at least this long (characters) counts as running prose.
_PROSE_CHARS = 200


@dataclass(frozen=True, slots=True)
class CleanResult:
    """Paragraphs left after cleaning and the author name found in a bio trailer, if any."""

    paragraphs: list[str]
    author: str = ""


def clean_paragraphs(paragraphs: Sequence[str]) -> CleanResult:
    """Remove boilerplate from ``paragraphs`` (already stripped, none empty)."""
    paras = list(paragraphs)
    paras, author = _cut_author_trailer(paras)
    paras = _cut_wiki_trailer(paras)
    paras = _drop_lone_lines(paras)
    return CleanResult(paras, author)


def _fold(text: str) -> str:
    return " ".join(text.split()).casefold()


def _is_furniture_line(line: str) -> bool:
    return (
        _fold(line) in LONE_LINES
        or bool(_CATEGORY.match(line))
        or bool(_MAGIC_WORD.match(line))
        or bool(_IMAGE_MARKUP.match(line))
    )


def _is_heading_line(line: str) -> bool:
    return _fold(line).rstrip(":").strip() in TRAILER_HEADINGS


def _is_heading(paragraph: str) -> bool:
    """The paragraph is a lone section heading such as ``Sources``."""
    return "\n" not in paragraph and _is_heading_line(paragraph)


def _is_prose(paragraph: str) -> bool:
    return len(paragraph) >= _PROSE_CHARS and not _CATEGORY.match(paragraph)


def _is_short_name(paragraph: str) -> bool:
    """A line such as ``Sergey Kwan``: 1-4 capitalised words, no sentence punctuation."""
    if "\n" in paragraph or _SENTENCE_PUNCT.search(paragraph):
        return False
    words = paragraph.split()
    return 1 <= len(words) <= 4 and all(_NAME_WORD.match(w) for w in words)


def _cut_author_trailer(paras: list[str]) -> tuple[list[str], str]:
    if not paras:
        return paras, ""
    lines = paras[-1].split("\n")
    match = _VIEW_MORE.match(lines[-1])
    if match is None:
        return paras, ""
    hint = " ".join(match.group("name").split())
    rest = "\n".join(lines[:-1]).strip()
    paras = [*paras[:-1], rest] if rest else paras[:-1]

    start = max(1, len(paras) - _MAX_BIO_PARAGRAPHS)
    for i in range(start, len(paras)):
        name = paras[i]
        if not _is_short_name(name) or (hint and _fold(name) != _fold(hint)):
            continue
        if all(_belongs_to_bio(p, name) for p in paras[i + 1 :]):
            return paras[:i], name
    return paras, hint if _is_short_name(hint) else ""


def _belongs_to_bio(paragraph: str, name: str) -> bool:
    if _fold(paragraph) == _fold(name) or _is_furniture_line(paragraph):
        return True
    folded = _fold(paragraph)
    return any(word.casefold() in folded for word in name.split() if len(word) > 2)


def _cut_wiki_trailer(paras: list[str]) -> list[str]:
    last_prose = max((i for i, p in enumerate(paras) if _is_prose(p)), default=-1)
    for i in range(max(last_prose + 1, 1), len(paras)):
        if _is_heading_line(paras[i].split("\n", 1)[0]):
            return paras[:i]
    return paras


def _drop_lone_lines(paras: list[str]) -> list[str]:
    out: list[str] = []
    for para in paras:
        if _is_heading(para):
            continue
        lines = para.split("\n")
        kept = [line for line in lines if not _is_furniture_line(line)]
        if len(kept) != len(lines):
            para = "\n".join(kept).strip()
        if para:
            out.append(para)
    return out
