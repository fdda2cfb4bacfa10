"""Load news articles from corpus folders: plain-text files and JSON Lines.

Entry point: :func:`load_corpus`. Each root is a folder (walked recursively, in sorted
order, hidden files and folders ignored) or a single file. Files ending ``.txt`` (any case)
are plain-text articles, files ending ``.jsonl`` hold one article per line; anything else is
ignored silently. Files named ``README*`` / ``LICENSE*`` are reported as skipped, as is every
file, line, folder or link that cannot be loaded: loading never fails on bad content, only on
a missing root (:class:`index.errors.CorpusError`).

What is read, and what is skipped (each with its reason in ``LoadResult.skipped``)
---------------------------------------------------------------------------------

* Regular files only. A FIFO, device, socket or folder named ``*.txt`` is never read (a FIFO
  is opened without waiting for a writer, a device is not opened at all), and neither is a
  file over ``LoadOptions.max_file_bytes`` (``NEWSDESK_CORPUS_MAX_FILE_MB``).
* Symbolic links are followed only while they stay inside the root folder, unless
  ``LoadOptions.follow_links_out`` (``NEWSDESK_CORPUS_FOLLOW_LINKS_OUT``) allows leaving it.
  A link to a folder inside the root is not walked (its files are read where they are); a
  folder reached twice through links is walked once.
* Folders nested deeper than :data:`MAX_FOLDER_DEPTH` below the root, folders that cannot
  be listed, and files or folders whose name is not valid UTF-8 (it could not be a doc id).
  Paths in reports show such bytes as ``\\xe9``.
* JSON lines that are not valid JSON (including nesting too deep for the parser and numbers
  too long to convert) or that hold a lone surrogate (``"\\ud800"``, half of an emoji cut by
  a JavaScript program) in a field that is used.
* Any other error while reading one file skips that file, never the load.

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
name. Lines are separated by ``\\n`` only (a raw U+2028 inside a JSON string is text, not a
line break). In JSON texts *every* line break separates paragraphs (VOA uses single newlines
between paragraphs, Wikinews uses blank lines), so the text is split on newlines. A line that
is not valid JSON, not an object, or lacks a title or text is skipped as
``Skipped("<path>:<line number>", reason)``; blank lines are ignored. A file that cannot be
read or is not UTF-8 is skipped as a whole.

Metadata lengths
----------------

Titles, ``source``, ``author`` and ``date`` are cut to :data:`MAX_TITLE_CHARS` characters
(at a word boundary, ending ``…``): the title is repeated in every passage of the article,
so a 110 KB title would be stored and embedded over and over. A URL longer than
:data:`MAX_URL_CHARS` is dropped (a cut URL is a wrong link), and a JSON ``id`` longer than
:data:`MAX_ID_CHARS` skips its line.

Text and paragraphs
-------------------

``Article.text`` is the body only (no title, no header lines): paragraphs with their outer
whitespace stripped, boilerplate removed (:mod:`corpus.boilerplate`), joined by ``"\\n\\n"``.
Characters are never rewritten, so quotes cut from ``text`` are verbatim. ``paragraphs`` are
exact substrings of ``text``, in order.

Duplicates and doc ids
----------------------

Articles are deduplicated across all roots by :attr:`Article.content_hash` (title and body,
case and whitespace folded): the first in walk order is kept, later copies go to
``LoadResult.duplicates`` as ``Skipped(path, "duplicate of <first doc_id>")``.

Doc ids are unique, and no file can take another file's id:

* Ids made from paths (a ``.txt`` file's path, a JSON line's ``<path>#<line>``) come first.
  When a later root holds the same path (``story.txt`` in two roots), the later one is
  loaded as ``<root folder name>/<id>`` (``two/story.txt``).
* A JSON ``id`` is kept as it is unless a path id has it or a line of *another* file gives
  it too; then every line giving it is loaded as ``<file path>#<id>``
  (``feed.jsonl#voa/n1``; ``<root folder name>/<file path>#<id>`` in a later root).
* An id still taken (the same ``id`` twice in one file) skips the later article as
  ``doc_id <id> already loaded from <path>``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from corpus.article import Article, LoadResult, Skipped
from corpus.boilerplate import clean_paragraphs
from corpus.errors import CorpusError

__all__ = [
    "ARTICLE_SUFFIXES",
    "DEFAULT_MAX_FILE_BYTES",
    "MAX_FOLDER_DEPTH",
    "MAX_ID_CHARS",
    "MAX_TITLE_CHARS",
    "MAX_URL_CHARS",
    "LoadOptions",
    "NotAnArticleError",
    "display_path",
    "iter_corpus_files",
    "iter_jsonl",
    "json_lines",
    "load_corpus",
    "load_text_file",
    "parse_text_article",
    "read_file",
]

log = logging.getLogger(__name__)

#: File name endings (compared lower-case) that hold articles.
TEXT_SUFFIX = ".txt"
JSONL_SUFFIX = ".jsonl"
ARTICLE_SUFFIXES = frozenset({TEXT_SUFFIX, JSONL_SUFFIX})

#: File name prefixes (compared upper-case) of files that sit in corpora but are not articles.
_NOT_ARTICLE_PREFIXES = ("README", "LICENSE", "LICENCE")

#: Folders below a root deeper than this are reported, not walked.
MAX_FOLDER_DEPTH = 64
#: Longest title (and source, author, date) kept; longer ones are cut at a word.
MAX_TITLE_CHARS = 300
#: Longest URL kept; a longer one is dropped rather than cut into a wrong link.
MAX_URL_CHARS = 2048
#: Longest JSON ``id`` accepted (it is stored with every passage of the article).
MAX_ID_CHARS = 300
#: Largest file read by default (``NEWSDESK_CORPUS_MAX_FILE_MB``).
DEFAULT_MAX_FILE_BYTES = 100 * 1024 * 1024

# Each pattern is linear in the line's length: no two adjacent parts can match the same text
# (``\s*(.*?)\s*$`` backtracked quadratically on a long run of spaces).
_HEADER_LINE = re.compile(r"^\s*(url|date|source|author)\s*:(.*)$", re.IGNORECASE)
_BLANK_LINE = re.compile(r"\n[ \t\f\v]*\n")
#: C0 and C1 control characters other than tab, newline, vertical tab and form feed.
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
#: Share of control characters above which a decoded file is taken for binary data.
_MAX_CONTROL_SHARE = 0.02
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class LoadOptions:
    """How far loading may reach.

    ``max_file_bytes`` caps every file read (a larger one is skipped); ``follow_links_out``
    lets symbolic links lead out of the root folder.
    """

    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    follow_links_out: bool = False


class NotAnArticleError(CorpusError):
    """A corpus file cannot be loaded as an article; ``reason`` says why."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = display_path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def display_path(path: Path | str) -> str:
    """``path`` as printable text: bytes of a name that are not UTF-8 shown as ``\\xe9``."""
    try:
        return os.fsencode(path).decode("utf-8", "backslashreplace")
    except UnicodeError:
        return os.fspath(path).encode("utf-8", "backslashreplace").decode("utf-8")


def _is_utf8(name: str) -> bool:
    return _SURROGATE.search(name) is None


def _os_reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


# --------------------------------------------------------------------------- walking


@dataclass(slots=True)
class _Walk:
    boundary: str
    options: LoadOptions
    seen: set[tuple[int, int]] = field(default_factory=set)


def iter_corpus_files(root: Path, options: LoadOptions | None = None) -> Iterator[Path]:
    """Article files under ``root`` (a folder or a file), in sorted order.

    Hidden files and folders (name starting with ``.``) and files of other types are left
    out; ``README*`` / ``LICENSE*`` files with an article suffix are included so that the
    loader can report them. What is not walked (see the module's rules) is left out here;
    :func:`load_corpus` reports it.
    """
    for item in _walk_root(Path(root), options or LoadOptions()):
        if isinstance(item, Path):
            yield item


def _walk_root(root: Path, options: LoadOptions) -> Iterator[Path | Skipped]:
    if root.is_file():
        yield root
        return
    walk = _Walk(os.path.realpath(root), options)
    try:
        info = os.stat(root)
        walk.seen.add((info.st_dev, info.st_ino))
    except OSError:
        pass
    yield from _walk_folder(root, 0, walk)


def _inside(target: str, boundary: str) -> bool:
    return target == boundary or target.startswith(boundary.rstrip(os.sep) + os.sep)


def _walk_folder(folder: Path, depth: int, walk: _Walk) -> Iterator[Path | Skipped]:
    try:
        with os.scandir(folder) as listing:
            entries = sorted(listing, key=lambda entry: entry.name)
    except OSError as exc:
        yield Skipped(display_path(folder), f"cannot read folder: {_os_reason(exc)}")
        return
    for entry in entries:
        name = entry.name
        if name.startswith("."):
            continue
        path = folder / name
        try:
            is_link = entry.is_symlink()
            is_dir = entry.is_dir()  # follows a link
        except OSError as exc:
            yield Skipped(display_path(path), f"cannot read: {_os_reason(exc)}")
            continue
        if not is_dir and Path(name).suffix.lower() not in ARTICLE_SUFFIXES:
            continue
        what = "folder" if is_dir else "file"
        if not _is_utf8(name):
            yield Skipped(display_path(path), f"{what} name is not valid UTF-8: not read")
            continue
        if is_link:
            target = os.path.realpath(path)
            inside = _inside(target, walk.boundary)
            if not inside and not walk.options.follow_links_out:
                yield Skipped(
                    display_path(path),
                    f"link leads outside the corpus folder (to {display_path(target)}): "
                    "not followed",
                )
                continue
            if is_dir and inside:
                yield Skipped(
                    display_path(path),
                    "link to a folder inside the corpus: not followed (its files are read "
                    "where they are)",
                )
                continue
        if not is_dir:
            yield path
            continue
        if depth >= MAX_FOLDER_DEPTH:
            yield Skipped(
                display_path(path),
                f"folder nested deeper than {MAX_FOLDER_DEPTH} folders: not read",
            )
            continue
        try:
            info = entry.stat()
        except OSError as exc:
            yield Skipped(display_path(path), f"cannot read folder: {_os_reason(exc)}")
            continue
        key = (info.st_dev, info.st_ino)
        if key in walk.seen:
            yield Skipped(display_path(path), "link to a folder already read: not followed")
            continue
        walk.seen.add(key)
        yield from _walk_folder(path, depth + 1, walk)


def _relative_id(path: Path, root: Path) -> str:
    base = root.parent if root.is_file() else root
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return path.name


def _default_source(root: Path) -> str:
    folder = root.parent if root.is_file() else root
    return display_path(folder.resolve().name or folder.name)


def _not_article_reason(path: Path) -> str | None:
    upper = path.name.upper()
    for prefix in _NOT_ARTICLE_PREFIXES:
        if upper.startswith(prefix):
            return f"not an article ({prefix})"
    return None


# --------------------------------------------------------------------------- reading


def _size(count: int) -> str:
    if count < 1024:
        return f"{count} bytes"
    if count < 1024 * 1024:
        return f"{count / 1024:.0f} KB"
    return f"{count / (1024 * 1024):.1f} MB"


def _check_file(path: Path, info: os.stat_result, max_bytes: int) -> None:
    mode = info.st_mode
    if not stat.S_ISREG(mode):
        if stat.S_ISFIFO(mode):
            kind = "a FIFO"
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            kind = "a device"
        elif stat.S_ISSOCK(mode):
            kind = "a socket"
        elif stat.S_ISDIR(mode):
            kind = "a folder"
        else:
            kind = "an unknown kind"
        raise NotAnArticleError(path, f"not a regular file ({kind})")
    if info.st_size > max_bytes:
        raise NotAnArticleError(path, _too_large(info.st_size, max_bytes))


def _too_large(size: int, max_bytes: int) -> str:
    return f"larger than the size cap ({_size(size)} > {_size(max_bytes)})"


def read_file(path: Path | str, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> bytes:
    """The contents of the regular file ``path``, if it holds at most ``max_bytes``.

    Anything else raises :class:`NotAnArticleError`: a FIFO, device, socket or folder (a
    device is never opened, a FIFO is opened without waiting for a writer, in case it took
    the checked file's place), a larger file, or a file that cannot be read.
    """
    path = Path(path)
    try:
        _check_file(path, os.stat(path), max_bytes)
        flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0)
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise NotAnArticleError(path, f"cannot read: {_os_reason(exc)}") from exc
    try:
        _check_file(path, os.fstat(fd), max_bytes)
        chunks: list[bytes] = []
        total = 0
        while total <= max_bytes:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > max_bytes:  # grew after it was checked
            raise NotAnArticleError(path, _too_large(total, max_bytes))
        return b"".join(chunks)
    except OSError as exc:
        raise NotAnArticleError(path, f"cannot read: {_os_reason(exc)}") from exc
    finally:
        os.close(fd)


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


def cap_text(text: str, limit: int = MAX_TITLE_CHARS) -> str:
    """``text`` cut to at most ``limit`` characters, at a word when one ends in the second
    half, with ``…`` marking the cut."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit // 2:
        cut = cut[:space]
    return cut.rstrip() + "…"


def _cap_url(url: str) -> str:
    return url if len(url) <= MAX_URL_CHARS else ""


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
        block.setdefault(match.group(1).lower(), match.group(2).strip())
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
        title=cap_text(title),
        text="\n\n".join(cleaned.paragraphs),
        source=cap_text(headers.get("source") or source),
        url=_cap_url(headers.get("url", "")),
        date=cap_text(headers.get("date", "")),
        author=cap_text(headers.get("author") or cleaned.author),
        path=path,
        paragraphs=tuple(cleaned.paragraphs),
    )


def load_text_file(
    path: Path | str, root: Path | str, *, max_bytes: int = DEFAULT_MAX_FILE_BYTES
) -> Article:
    """Load one plain-text article; ``root`` is the corpus root it was found under.

    Raises :class:`NotAnArticleError` (with a ``reason``) when the file is not loadable.
    """
    path, root = Path(path), Path(root)
    reason = _not_article_reason(path)
    if reason:
        raise NotAnArticleError(path, reason)
    data = read_file(path, max_bytes)
    try:
        text = decode_bytes(data)
    except ValueError as exc:
        raise NotAnArticleError(path, str(exc)) from exc
    return parse_text_article(
        text,
        doc_id=_relative_id(path, root),
        source=_default_source(root),
        path=display_path(path),
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
    fields = {
        "id": _field(record, "id"),
        "title": title,
        "text": body,
        "url": _field(record, "url"),
        "date": _field(record, "published", "date"),
        "source": _field(record, "source"),
        "author": _field(record, "author"),
    }
    for name, value in fields.items():
        match = _SURROGATE.search(value)
        if match is not None:
            return Skipped(
                where,
                f"lone surrogate \\u{ord(match.group()):04x} in {name} (not valid Unicode: "
                "half of a character, such as an emoji cut in two)",
            )
    if len(fields["id"]) > MAX_ID_CHARS:
        return Skipped(where, f"id longer than {MAX_ID_CHARS} characters")
    cleaned = clean_paragraphs(split_paragraphs(body, every_line=True))
    if not cleaned.paragraphs:
        return Skipped(where, "no body left after removing boilerplate")
    return Article(
        doc_id=fields["id"] or fallback_id,
        title=cap_text(" ".join(title.split())),
        text="\n\n".join(cleaned.paragraphs),
        source=cap_text(fields["source"] or source),
        url=_cap_url(fields["url"]),
        date=cap_text(fields["date"]),
        author=cap_text(fields["author"] or cleaned.author),
        path=path,
        paragraphs=tuple(cleaned.paragraphs),
    )


def _parse_json_line(line: str, where: str) -> dict[str, object] | Skipped:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        return Skipped(where, f"invalid JSON: {exc.msg} (column {exc.colno})")
    except RecursionError:
        return Skipped(where, "invalid JSON: nested too deeply to read")
    except ValueError as exc:  # such as a number of more than 4,300 digits
        return Skipped(where, f"invalid JSON: {str(exc).split(';')[0]}")
    if not isinstance(record, dict):
        return Skipped(where, f"not a JSON object but {type(record).__name__}")
    return record


def json_lines(content: str, shown: str) -> Iterator[tuple[int, str, dict[str, object] | Skipped]]:
    """``(line number, line, object or why not)`` for each non-blank line of JSON Lines text.

    Only "\n" ends a line: str.splitlines() also splits at U+2028, U+0085 and other
    characters JSON allows raw inside a string, and would cut such a record in two."""
    for lineno, line in enumerate(content.split("\n"), start=1):
        if line.strip():
            yield lineno, line, _parse_json_line(line, f"{shown}:{lineno}")


def _jsonl_items(
    path: Path, root: Path, max_bytes: int
) -> Iterator[tuple[int, bool, Article | Skipped]]:
    """``(line number, whether the line gave an id, article or skip)`` for each line."""
    shown = display_path(path)
    reason = _not_article_reason(path)
    if reason:
        yield 0, False, Skipped(shown, reason)
        return
    try:
        content = read_file(path, max_bytes).decode("utf-8-sig")
    except NotAnArticleError as exc:
        yield 0, False, Skipped(shown, exc.reason)
        return
    except UnicodeDecodeError as exc:
        reason = f"not UTF-8 (byte {exc.start}): JSON Lines must be UTF-8"
        yield 0, False, Skipped(shown, reason)
        return
    rel = _relative_id(path, root)
    source = _default_source(root)
    for lineno, _, record in json_lines(content, shown):
        where = f"{shown}:{lineno}"
        if isinstance(record, Skipped):
            yield lineno, False, record
            continue
        item = _article_from_record(
            record, fallback_id=f"{rel}#{lineno}", source=source, path=shown, where=where
        )
        yield lineno, bool(_field(record, "id")), item


def iter_jsonl(
    path: Path | str, root: Path | str, *, max_bytes: int = DEFAULT_MAX_FILE_BYTES
) -> Iterator[Article | Skipped]:
    """Articles of a JSON Lines file, one per line, with a :class:`Skipped` for each bad line.

    A file that cannot be read or decoded yields a single :class:`Skipped` for the file.
    """
    for _, _, item in _jsonl_items(Path(path), Path(root), max_bytes):
        yield item


# --------------------------------------------------------------------------- corpus


@dataclass(slots=True)
class _Loaded:
    """An article as found, before its doc id is settled against the others."""

    article: Article
    label: str  # where it came from, for reports: the file, or file:line
    root_pos: int
    root_name: str
    file_id: str  # the file's path relative to its root
    declared: bool  # the doc id is a JSON ``id``, not made from the path


def _iter_root(root: Path, pos: int, options: LoadOptions) -> Iterator[_Loaded | Skipped]:
    root_name = _default_source(root)
    for path in _walk_root(root, options):
        if isinstance(path, Skipped):
            yield path
            continue
        try:
            yield from _iter_file(path, root, pos, root_name, options)
        except Exception as exc:  # one bad file never stops a load
            log.warning("Skipping %s", display_path(path), exc_info=True)
            yield Skipped(display_path(path), f"cannot load: {type(exc).__name__}: {exc}")


def _iter_file(
    path: Path, root: Path, pos: int, root_name: str, options: LoadOptions
) -> Iterator[_Loaded | Skipped]:
    shown = display_path(path)
    rel = _relative_id(path, root)
    if path.suffix.lower() == JSONL_SUFFIX:
        for lineno, declared, item in _jsonl_items(path, root, options.max_file_bytes):
            if isinstance(item, Skipped):
                yield item
            else:
                yield _Loaded(item, f"{shown}:{lineno}", pos, root_name, rel, declared)
        return
    try:
        article = load_text_file(path, root, max_bytes=options.max_file_bytes)
    except NotAnArticleError as exc:
        yield Skipped(shown, exc.reason)
        return
    yield _Loaded(article, shown, pos, root_name, rel, False)


def _settle_ids(loaded: list[_Loaded], skipped: list[Skipped]) -> list[str | None]:
    """The doc id of each article (``None``: skipped, its id taken), by the module's rules."""
    ids: list[str | None] = [None] * len(loaded)
    holder: dict[str, str] = {}

    def claim(i: int, candidates: list[str]) -> None:
        item = loaded[i]
        for candidate in candidates:
            if candidate not in holder:
                holder[candidate] = item.article.path or candidate
                ids[i] = candidate
                return
        first = candidates[0]
        skipped.append(Skipped(item.label, f"doc_id {first} already loaded from {holder[first]}"))

    # Ids made from paths first: they name one file each, so no JSON id can take them.
    for i, item in enumerate(loaded):
        if not item.declared:
            own = item.article.doc_id
            claim(i, [own, f"{item.root_name}/{own}"] if item.root_pos else [own])
    path_ids = set(holder)
    files: dict[str, set[tuple[int, str]]] = defaultdict(set)
    for item in loaded:
        if item.declared:
            files[item.article.doc_id].add((item.root_pos, item.file_id))
    for i, item in enumerate(loaded):
        if not item.declared:
            continue
        given = item.article.doc_id
        if given in path_ids or len(files[given]) > 1:
            prefix = item.file_id if item.root_pos == 0 else f"{item.root_name}/{item.file_id}"
            claim(i, [f"{prefix}#{given}"])
        else:
            claim(i, [given])
    for item, doc_id in zip(loaded, ids, strict=True):
        if doc_id is not None and doc_id != item.article.doc_id:
            log.warning(
                "%s: doc id %s is not unique, loaded as %s", item.label, item.article.doc_id, doc_id
            )
    return ids


def load_corpus(
    roots: Sequence[Path | str] | Path | str, options: LoadOptions | None = None
) -> LoadResult:
    """Load every article under ``roots`` (folders or single files), in order.

    Raises :class:`CorpusError` when a root does not exist or is a file of an unsupported
    type; bad files, lines, folders and links are recorded in ``skipped``, later copies of
    an article in ``duplicates``.
    """
    options = options or LoadOptions()
    if isinstance(roots, (str, Path)):
        roots = [roots]
    result = LoadResult()
    loaded: list[_Loaded] = []
    first_of: dict[str, int] = {}  # content hash -> position in loaded
    copies: list[tuple[str, int]] = []
    for pos, given in enumerate(roots):
        root = Path(given)
        if not root.exists():
            raise CorpusError(f"Corpus folder not found: {display_path(root)}")
        if root.is_file() and root.suffix.lower() not in ARTICLE_SUFFIXES:
            raise CorpusError(f"Not a corpus file (expected .txt or .jsonl): {display_path(root)}")
        if not root.is_dir() and not root.is_file():
            raise CorpusError(f"Not a folder or file: {display_path(root)}")
        for item in _iter_root(root, pos, options):
            if isinstance(item, Skipped):
                result.skipped.append(item)
                continue
            digest = item.article.content_hash
            if digest in first_of:
                jsonl = item.file_id.lower().endswith(JSONL_SUFFIX)
                copies.append((item.article.doc_id if jsonl else item.label, first_of[digest]))
                continue
            first_of[digest] = len(loaded)
            loaded.append(item)
    ids = _settle_ids(loaded, result.skipped)
    for item, doc_id in zip(loaded, ids, strict=True):
        if doc_id is not None:
            article = item.article
            if doc_id != article.doc_id:
                article = replace(article, doc_id=doc_id)
            result.articles.append(article)
    for label, first in copies:
        kept = ids[first] or loaded[first].article.doc_id
        result.duplicates.append(Skipped(label, f"duplicate of {kept}"))
    return result
