"""Load news articles from corpus folders: plain-text files and JSON Lines.

Entry point: :func:`load_corpus`. Each root is a folder (walked recursively, in sorted
order, hidden files and folders ignored) or a single file. Files ending ``.txt`` (any case)
are plain-text articles, files ending ``.jsonl`` hold one article per line; anything else is
ignored silently. Files named ``README*`` / ``LICENSE*`` are reported as skipped, as is every
file or line that cannot be loaded: loading never fails on bad content, only on a missing
root (:class:`index.errors.CorpusError`).

Plain-text format
-----------------

::

    Title of the article                  <- line 1 (the first non-blank line)
    URL: https://example.com/story        <- optional header lines, directly under the
    Date: 2024-05-28                         title or after one blank line; keys URL, Date,
    Source: The Times of Central Asia        Source, Author (any case), one per line, the
    Author: Jane Doe                         block ending at a blank line
                                          <- blank line
    First paragraph of the body. It may   <- body: paragraphs separated by blank lines;
    run over several lines.                  line breaks inside a paragraph are kept

    Second paragraph.

* Encoding: UTF-8 (a byte-order mark is dropped); a file that is not valid UTF-8 is read as
  Windows-1252, else Latin-1. Files containing NUL bytes or many control characters are
  skipped as binary. ``\\r\\n`` and ``\\r`` line endings become ``\\n``.
* ``doc_id`` is the path relative to the root with ``/`` separators (``business/062.txt``
  for root ``corpus/bbc``, ``bbc/business/062.txt`` for root ``corpus``; just the file name
  when the root is the file itself).
* ``source`` is the ``Source:`` header, else the name of the root folder (for a file root,
  of its folder). ``url``, ``date`` and ``author`` come from the headers, else are empty
  (``author`` may be filled from an author-bio trailer, see :mod:`corpus.boilerplate`).
* A header paragraph only counts when *all* its lines are known ``Key: value`` lines;
  otherwise it is body text.
* Empty files, files with a title but no body, and files whose body is all boilerplate are
  skipped with a reason.

JSON Lines format
-----------------

One JSON object per line with ``title`` and ``text`` (required), ``id``, ``url``,
``published`` (or ``date``), ``source`` and ``author``; other fields are ignored (Wikinews'
``modified`` is the last edit, not the publication date, so it is not used). ``doc_id`` is
``id``, else ``<relative path>#<line number>``; ``source`` defaults to the root folder's
name. In JSON texts *every* line break separates paragraphs (VOA uses single newlines
between paragraphs, Wikinews uses blank lines), so the text is split on newlines. A line that
is not valid JSON, not an object, or lacks a title or text is skipped as
``Skipped("<path>:<line number>", reason)``; blank lines are ignored. A file that cannot be
read or is not UTF-8 is skipped as a whole.

Text and paragraphs
-------------------

``Article.text`` is the body only (no title, no header lines): paragraphs with their outer
whitespace stripped, boilerplate removed (:mod:`corpus.boilerplate`), joined by ``"\\n\\n"``.
Characters are never rewritten, so quotes cut from ``text`` are verbatim. ``paragraphs`` are
exact substrings of ``text``, in order.

Duplicates
----------

Articles are deduplicated across all roots by :attr:`Article.content_hash` (title and body,
case and whitespace folded): the first in walk order is kept, later copies go to
``LoadResult.duplicates`` as ``Skipped(path, "duplicate of <first doc_id>")``. An article
whose ``doc_id`` was already loaded (possible across roots) is skipped.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from corpus.article import Article, LoadResult, Skipped
from corpus.boilerplate import clean_paragraphs
from index.errors import CorpusError

__all__ = [
    "ARTICLE_SUFFIXES",
    "NotAnArticleError",
    "iter_corpus_files",
    "iter_jsonl",
    "load_corpus",
    "load_text_file",
    "parse_text_article",
]

#: File name endings (compared lower-case) that hold articles.
TEXT_SUFFIX = ".txt"
JSONL_SUFFIX = ".jsonl"
ARTICLE_SUFFIXES = frozenset({TEXT_SUFFIX, JSONL_SUFFIX})

#: File name prefixes (compared upper-case) of files that sit in corpora but are not articles.
_NOT_ARTICLE_PREFIXES = ("README", "LICENSE", "LICENCE")

_HEADER_LINE = re.compile(r"^\s*(url|date|source|author)\s*:\s*(.*?)\s*$", re.IGNORECASE)
_BLANK_LINE = re.compile(r"\n[ \t\f\v]*\n")
#: C0 and C1 control characters other than tab, newline, vertical tab and form feed.
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
#: Share of control characters above which a decoded file is taken for binary data.
_MAX_CONTROL_SHARE = 0.02


class NotAnArticleError(CorpusError):
    """A corpus file cannot be loaded as an article; ``reason`` says why."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


# --------------------------------------------------------------------------- walking


def iter_corpus_files(root: Path) -> Iterator[Path]:
    """Article files under ``root`` (a folder or a file), in sorted order.

    Hidden files and folders (name starting with ``.``) and files of other types are left
    out; ``README*`` / ``LICENSE*`` files with an article suffix are included so that the
    loader can report them.
    """
    if root.is_file():
        yield root
        return
    found: list[tuple[tuple[str, ...], Path]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        base = Path(dirpath)
        for name in filenames:
            if name.startswith(".") or Path(name).suffix.lower() not in ARTICLE_SUFFIXES:
                continue
            path = base / name
            found.append((path.relative_to(root).parts, path))
    found.sort(key=lambda item: item[0])
    for _, path in found:
        yield path


def _relative_id(path: Path, root: Path) -> str:
    base = root.parent if root.is_file() else root
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return path.name


def _default_source(root: Path) -> str:
    folder = root.parent if root.is_file() else root
    return folder.resolve().name or folder.name


def _not_article_reason(path: Path) -> str | None:
    upper = path.name.upper()
    for prefix in _NOT_ARTICLE_PREFIXES:
        if upper.startswith(prefix):
            return f"not an article ({prefix})"
    return None


# --------------------------------------------------------------------------- decoding


def decode_bytes(data: bytes) -> str:
    """Decode a text file: UTF-8 (BOM dropped), else Windows-1252, else Latin-1.

    Line endings are normalised to ``\\n``. Raises :class:`ValueError` for binary data.
    """
    if b"\x00" in data:
        raise ValueError("binary file (NUL bytes), not text")
    text = ""
    for encoding in ("utf-8-sig", "cp1252", "latin-1"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if text:
        controls = len(_CONTROL_CHARS.findall(text))
        if controls / len(text) > _MAX_CONTROL_SHARE:
            raise ValueError("binary file (control characters), not text")
    return text


def split_paragraphs(body: str, *, every_line: bool = False) -> list[str]:
    """Split ``body`` into stripped, non-empty paragraphs.

    Paragraphs are separated by blank lines (lines of only whitespace), or by every line
    break when ``every_line`` is true.
    """
    body = body.replace("\r\n", "\n").replace("\r", "\n")
    parts = body.split("\n") if every_line else _BLANK_LINE.split(body)
    return [p.strip() for p in parts if p.strip()]


# --------------------------------------------------------------------------- plain text


def parse_text_article(text: str, *, doc_id: str, source: str, path: str = "") -> Article:
    """Build an :class:`Article` from the decoded contents of a plain-text file.

    Raises :class:`NotAnArticleError` when there is no title or no body.
    """
    lines = text.split("\n")
    index = 0
    while index < len(lines) and not lines[index].strip():
        index += 1
    if index == len(lines):
        raise NotAnArticleError(path or doc_id, "empty file")
    title = lines[index].strip()
    index += 1

    headers: dict[str, str] = {}
    start = index + 1 if index < len(lines) and not lines[index].strip() else index
    end = start
    block: dict[str, str] = {}
    while end < len(lines) and lines[end].strip():
        match = _HEADER_LINE.match(lines[end])
        if match is None:
            break
        block.setdefault(match.group(1).lower(), match.group(2))
        end += 1
    else:
        if end > start:  # the whole paragraph was header lines
            headers = block
            index = end

    paragraphs = split_paragraphs("\n".join(lines[index:]))
    if not paragraphs:
        raise NotAnArticleError(path or doc_id, "no body after the title")
    cleaned = clean_paragraphs(paragraphs)
    if not cleaned.paragraphs:
        raise NotAnArticleError(path or doc_id, "no body left after removing boilerplate")
    return Article(
        doc_id=doc_id,
        title=title,
        text="\n\n".join(cleaned.paragraphs),
        source=headers.get("source") or source,
        url=headers.get("url", ""),
        date=headers.get("date", ""),
        author=headers.get("author") or cleaned.author,
        path=path,
        paragraphs=tuple(cleaned.paragraphs),
    )


def load_text_file(path: Path | str, root: Path | str) -> Article:
    """Load one plain-text article; ``root`` is the corpus root it was found under.

    Raises :class:`NotAnArticleError` (with a ``reason``) when the file is not loadable.
    """
    path, root = Path(path), Path(root)
    reason = _not_article_reason(path)
    if reason:
        raise NotAnArticleError(path, reason)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise NotAnArticleError(path, f"cannot read: {exc.strerror or exc}") from exc
    try:
        text = decode_bytes(data)
    except ValueError as exc:
        raise NotAnArticleError(path, str(exc)) from exc
    return parse_text_article(
        text, doc_id=_relative_id(path, root), source=_default_source(root), path=str(path)
    )


# --------------------------------------------------------------------------- JSON Lines


def _field(record: dict[str, object], *names: str) -> str:
    for name in names:
        value = record.get(name)
        if value is None or isinstance(value, (dict, list, bool)):
            continue
        text = str(value).strip()
        if text:
            return text
    return ""


def _article_from_record(
    record: dict[str, object], *, fallback_id: str, source: str, path: str, where: str
) -> Article | Skipped:
    title = record.get("title")
    body = record.get("text")
    if not isinstance(title, str) or not title.strip():
        return Skipped(where, "no title")
    if not isinstance(body, str) or not body.strip():
        return Skipped(where, "no text")
    cleaned = clean_paragraphs(split_paragraphs(body, every_line=True))
    if not cleaned.paragraphs:
        return Skipped(where, "no body left after removing boilerplate")
    return Article(
        doc_id=_field(record, "id") or fallback_id,
        title=" ".join(title.split()),
        text="\n\n".join(cleaned.paragraphs),
        source=_field(record, "source") or source,
        url=_field(record, "url"),
        date=_field(record, "published", "date"),
        author=_field(record, "author") or cleaned.author,
        path=path,
        paragraphs=tuple(cleaned.paragraphs),
    )


def iter_jsonl(path: Path | str, root: Path | str) -> Iterator[Article | Skipped]:
    """Articles of a JSON Lines file, one per line, with a :class:`Skipped` for each bad line.

    A file that cannot be read or decoded yields a single :class:`Skipped` for the file.
    """
    path, root = Path(path), Path(root)
    reason = _not_article_reason(path)
    if reason:
        yield Skipped(str(path), reason)
        return
    try:
        content = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        yield Skipped(str(path), f"cannot read: {exc.strerror or exc}")
        return
    except UnicodeDecodeError as exc:
        yield Skipped(str(path), f"not UTF-8 (byte {exc.start}): JSON Lines must be UTF-8")
        return
    rel = _relative_id(path, root)
    source = _default_source(root)
    for lineno, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield Skipped(where, f"invalid JSON: {exc.msg} (column {exc.colno})")
            continue
        if not isinstance(record, dict):
            yield Skipped(where, f"not a JSON object but {type(record).__name__}")
            continue
        yield _article_from_record(
            record, fallback_id=f"{rel}#{lineno}", source=source, path=str(path), where=where
        )


# --------------------------------------------------------------------------- corpus


def _iter_file(path: Path, root: Path) -> Iterator[Article | Skipped]:
    if path.suffix.lower() == JSONL_SUFFIX:
        yield from iter_jsonl(path, root)
        return
    try:
        yield load_text_file(path, root)
    except NotAnArticleError as exc:
        yield Skipped(str(path), exc.reason)


def load_corpus(roots: Sequence[Path | str]) -> LoadResult:
    """Load every article under ``roots`` (folders or single files), in order.

    Raises :class:`CorpusError` when a root does not exist or is a file of an unsupported
    type; bad files and lines are recorded in ``skipped``, later copies of an article in
    ``duplicates``.
    """
    if isinstance(roots, (str, Path)):
        roots = [roots]
    result = LoadResult()
    by_hash: dict[str, str] = {}
    by_id: dict[str, str] = {}
    for given in roots:
        root = Path(given)
        if not root.exists():
            raise CorpusError(f"Corpus folder not found: {root}")
        if root.is_file() and root.suffix.lower() not in ARTICLE_SUFFIXES:
            raise CorpusError(f"Not a corpus file (expected .txt or .jsonl): {root}")
        if not root.is_dir() and not root.is_file():
            raise CorpusError(f"Not a folder or file: {root}")
        for path in iter_corpus_files(root):
            for item in _iter_file(path, root):
                if isinstance(item, Skipped):
                    result.skipped.append(item)
                    continue
                label = str(path) if path.suffix.lower() == TEXT_SUFFIX else item.doc_id
                if item.doc_id in by_id:
                    reason = f"doc_id {item.doc_id} already loaded from {by_id[item.doc_id]}"
                    result.skipped.append(Skipped(label, reason))
                    continue
                digest = item.content_hash
                if digest in by_hash:
                    result.duplicates.append(Skipped(label, f"duplicate of {by_hash[digest]}"))
                    continue
                by_id[item.doc_id] = item.path or item.doc_id
                by_hash[digest] = item.doc_id
                result.articles.append(item)
    return result
