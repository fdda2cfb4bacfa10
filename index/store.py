"""The index on disk: versioned directories, a manifest, an atomic swap, a change log.

``IndexDir`` is one index directory: it owns its path and everything done under it
(the current version, loading, writing a version, the change log, the lock, cleaning
up), and words every error with that path. The module-level ``load_index``,
``current_version_path`` and ``read_changes`` are thin shortcuts for its callers.

Layout of an index directory::

    <index>/current            symlink -> versions/<version>, replaced atomically by rename
    <index>/versions/<version>/manifest.json, articles.jsonl, passages.jsonl,
                               vectors.npy, dense.faiss, bm25/
    <index>/changes.jsonl      one line per version: articles added, changed, removed
    <index>/.lock              held (flock) by the one re-index allowed at a time
    <index>/readers/<instance>.json  the version each running process serves (a heartbeat)

A new version is written into ``versions/.tmp-*``, renamed into place, logged,
and only then made current; a re-index that dies half-way leaves the previous
version serving. A write that fails (a full disk, a read-only folder) removes what it
wrote and raises IndexWriteError; a run also removes what a killed run left behind.

The manifest names the format, model and counts, and the size and SHA-256 of every
file. A version's files are verified against it once (when written, or when first
loaded: ``verified.json`` then records each file's size, times and inode, and later
loads compare only those), so same-size garbage is refused at load and a re-index
rebuilds a damaged version from its intact files instead of calling it up to date.
Manifests from before checksums (same format number: the field is additive) load with
their sizes checked; the next re-index rewrites the version with checksums.

Several processes, on several machines, may read one index folder (NFS or the like). Each
records the version it serves in ``readers/`` (``IndexDir.note_reader``: a small JSON file
written aside and renamed over, refreshed at every reload check, removed by
``drop_reader`` at shutdown); ``collect_garbage`` keeps every version a fresh record names.
Readers take no lock (an flock on NFS is not to be trusted, and a reader must never stop a
re-index); only the writer holds ``.lock``.

The change log is replaced whole (written aside, then renamed), never appended in
place, so a crash cannot leave a torn line for the next entry to be glued to; a torn
line left by an older Newsdesk is skipped and the entry glued to it recovered.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import math
import os
import re
import secrets
import shutil
import socket
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from corpus.article import Article
from index.ann import FaissStore, VectorStore
from index.errors import (
    IndexBusyError,
    IndexCorruptError,
    IndexMismatchError,
    IndexMissingError,
    IndexWriteError,
    NewsdeskError,
)
from index.files import file_checksum, load_npy, save_npy
from index.lexical import LexicalIndex
from index.sentence_vectors import SPANS as SENTENCE_SPANS
from index.sentence_vectors import VECTORS as SENTENCE_VECTORS
from index.sentence_vectors import SentenceVectors
from index.types import Passage

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ARTICLES = "articles.jsonl"
PASSAGES = "passages.jsonl"
VECTORS = "vectors.npy"
CHANGES = "changes.jsonl"
STAMP = "verified.json"  # the verdict of the last full verification (not in the manifest)
KEEP_VERSIONS = 3
READERS = "readers"  # <index>/readers/<instance>.json: which version each process serves
# A reader record older than this (or than 3 of its own heartbeat intervals, if longer)
# pins nothing: its process is taken for dead, and its record is removed.
READER_TTL = 600.0
TRASH = ".trash-"  # versions/.trash-<version>-<pid>: a version being deleted


@dataclass(slots=True)
class Manifest:
    format_version: int
    version: str
    created_at: str
    model_name: str
    model_fingerprint: str
    dimension: int
    articles: int
    passages: int
    vector_store: str
    files: dict[str, int] = field(default_factory=dict)
    # "sha256:<hex>" of every file in ``files``; empty in manifests from before checksums.
    checksums: dict[str, str] = field(default_factory=dict)
    # How the sentence vectors were made: "separate" (each sentence embedded on its own) or
    # "late" (pooled from its passage's token outputs). Manifests from before: "separate".
    sentence_vectors: str = "separate"

    @classmethod
    def from_dict(cls, data: dict) -> Manifest:
        manifest = cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
        if not (
            isinstance(manifest.files, dict)
            and isinstance(manifest.checksums, dict)
            and all(type(size) is int for size in manifest.files.values())
            and all(isinstance(value, str) for value in manifest.checksums.values())
        ):
            raise TypeError("its file list is malformed")
        return manifest


@dataclass(slots=True)
class Change:
    """One line of the change log: what a version added, changed and removed."""

    version: str
    created_at: str
    added: list[str]
    changed: list[str]
    removed: list[str]
    full_rebuild: bool


@dataclass(slots=True)
class StoredArticle:
    doc_id: str
    title: str
    text: str
    source: str
    url: str
    date: str
    author: str
    content_hash: str

    @classmethod
    def of(cls, article: Article) -> StoredArticle:
        return cls(
            article.doc_id,
            article.title,
            article.text,
            article.source,
            article.url,
            article.date,
            article.author,
            article.content_hash,
        )


@dataclass(slots=True)
class LoadedIndex:
    """One version of the index, in memory, ready to search."""

    path: Path
    manifest: Manifest
    articles: dict[str, StoredArticle]
    passages: list[Passage]
    vectors: VectorStore
    lexical: LexicalIndex
    sentences: SentenceVectors | None = None
    _by_doc: dict[str, list[int]] | None = field(default=None, repr=False, compare=False)
    _matrix: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def version(self) -> str:
        return self.manifest.version

    def passages_of(self, doc_id: str) -> list[Passage]:
        """One article's passages in article order (a map built on first use)."""
        by_doc = self._by_doc
        if by_doc is None:  # built aside and then published: safe with concurrent readers
            by_doc = {}
            for position, passage in enumerate(self.passages):
                by_doc.setdefault(passage.doc_id, []).append(position)
            self._by_doc = by_doc
        return [self.passages[i] for i in by_doc.get(doc_id, ())]

    def vector_matrix(self) -> np.ndarray:
        """The passages' vectors (row = passage id), read once on first use (``load_npy``:
        into memory, or mapped when large)."""
        if self._matrix is None:
            try:
                self._matrix = load_vectors(self.path)
            except (OSError, ValueError) as exc:  # changed since the version was loaded
                raise IndexCorruptError(
                    f"The index file {self.path / VECTORS} could not be read ({exc}).",
                    index_dir=self.path.parent.parent,
                ) from exc
        return self._matrix

    def article_text(self, doc_id: str) -> str:
        return self.articles[doc_id].text


# ---- checking one version's files (no index directory involved) ------------------------


def _stat_key(st: os.stat_result) -> list[int]:
    """What changes when a file is written: size, times (ctime cannot be set back), inode."""
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _read_stamp(version_dir: Path) -> object:
    try:
        return json.loads((version_dir / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_stamp(version_dir: Path, stamp: dict) -> None:
    """Record a verdict, if the folder lets us (a read-only index verifies at every load)."""
    tmp = version_dir / f"{STAMP}.tmp-{os.getpid()}"
    try:
        tmp.write_text(json.dumps(stamp), encoding="utf-8")
        os.replace(tmp, version_dir / STAMP)
    except OSError as exc:
        log.debug("Could not record the verification of %s: %s", version_dir, exc)
        _remove(tmp)


def damaged_files(version_dir: Path, manifest: Manifest) -> dict[str, str]:
    """The version's files that are missing or do not match the manifest: name -> what is
    wrong. Sizes are compared at every call; checksums when the files changed since the last
    verification that passed (``verified.json``), so each version is hashed about once."""
    problems: dict[str, str] = {}
    stats: dict[str, list[int]] = {}
    for name, size in manifest.files.items():
        try:
            st = (version_dir / name).stat()
        except (FileNotFoundError, NotADirectoryError):
            problems[name] = "is missing"
            continue
        if not stat.S_ISREG(st.st_mode):
            problems[name] = "is not a regular file"
        elif st.st_size != size:
            problems[name] = f"has {st.st_size} bytes, the manifest says {size}"
        else:
            stats[name] = _stat_key(st)
    if problems or not manifest.checksums:
        return problems
    verdict = {"checksums": manifest.checksums, "files": stats}
    if _read_stamp(version_dir) == verdict:
        return {}
    for name in manifest.files:
        expected = manifest.checksums.get(name)
        if expected is None:
            problems[name] = "has no checksum in the manifest"
        elif file_checksum(version_dir / name) != expected:
            problems[name] = "does not match its checksum"
    if not problems:
        _write_stamp(version_dir, verdict)
    return problems


def _check_sentences(sentences: SentenceVectors, passages: int) -> None:
    spans = sentences.spans
    if (
        spans.ndim != 2
        or sentences.vectors.shape[0] != spans.shape[0]
        or (len(spans) and int(spans[:, 0].max()) >= passages)
    ):
        raise ValueError("the sentence vectors do not fit the passages")


def load_vectors(version_dir: Path) -> np.ndarray:
    """The passages' vectors: read into memory, or mapped when large (``index.files``)."""
    return load_npy(version_dir / VECTORS)


@dataclass(slots=True)
class Reusable:
    """What a re-index can take over from the current version, keyed by content hash."""

    version: str
    articles: dict[str, str]  # doc id -> content hash
    vectors: dict[str, np.ndarray]  # passage content hash -> vector
    sentences: dict[str, list[tuple[int, int, np.ndarray]]]  # ... -> (start, end, vector)
    damaged: dict[str, str]  # file -> what is wrong: not reused, rebuilt by this run
    checksummed: bool  # False: written before checksums, its files could not be verified
    sentence_vectors: str = "separate"  # how ``sentences`` were made (Manifest field)


# ---- the change log's text ---------------------------------------------------------------

_DECODER = json.JSONDecoder()
_ENTRY_START = '{"version"'


def _parse_changes(text: str) -> list[tuple[str, Change]]:
    """(line, change) for every entry of a change log. A torn line (a crash in the middle of
    an append, by an older Newsdesk) is skipped; an entry appended after it, on the same
    line, is recovered."""
    out = []
    for raw in text.split("\n"):
        line = raw.strip()
        if not line:
            continue
        try:
            out.append((line, Change(**json.loads(line))))
            continue
        except (ValueError, TypeError):
            pass
        start = line.find(_ENTRY_START, 1)
        while start != -1:
            try:
                data, end = _DECODER.raw_decode(line, start)
                if not line[end:].strip():
                    out.append((line[start:end], Change(**data)))
                    log.warning("Change log: skipped a torn entry before %s", data["version"])
                    break
            except (ValueError, TypeError, KeyError):
                pass
            start = line.find(_ENTRY_START, start + 1)
        else:
            log.warning("Change log: skipped a torn entry (a version that never became current)")
    return out


def _read_text(path: Path) -> str:
    return path.read_bytes().decode("utf-8", errors="replace")


# ---- files on disk -----------------------------------------------------------------------

_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
_READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)


def _remove(path: Path) -> None:
    """Remove a file, folder or link if there is one; never raise (cleaning up after an
    error, or on a full disk, where removing is what helps)."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("Could not remove %s: %s", path, exc)


def _fsync_dir(path: Path, *, strict: bool = True) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        if strict:
            raise
        log.warning("Could not flush %s to disk: %s", path, exc)


def _fsync_tree(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            with path.open("rb") as fh:
                os.fsync(fh.fileno())
    _fsync_dir(root)


def _write_files(
    directory: Path,
    articles: list[StoredArticle],
    passages: list[Passage],
    vectors: np.ndarray,
    store: VectorStore,
    lexical: LexicalIndex,
    sentences: SentenceVectors | None,
) -> None:
    with (directory / ARTICLES).open("w", encoding="utf-8") as fh:
        for article in articles:
            fh.write(json.dumps(asdict(article), ensure_ascii=False) + "\n")
    with (directory / PASSAGES).open("w", encoding="utf-8") as fh:
        for passage in passages:
            fh.write(json.dumps(asdict(passage), ensure_ascii=False) + "\n")
    save_npy(directory / VECTORS, np.ascontiguousarray(vectors, dtype=np.float32))
    store.save(directory)
    lexical.save(directory)
    if sentences is not None:
        sentences.save(directory)


# ---- readers of a shared index folder ----------------------------------------------------


def instance_name(configured: str = "") -> str:
    """This process's name among those sharing an index folder or a database: the setting
    (``NEWSDESK_INSTANCE_NAME``) when set, else "<hostname>-<pid>"."""
    return configured.strip() or f"{socket.gethostname()}-{os.getpid()}"


def _reader_file(instance: str) -> str:
    """The record's file name: the instance name with anything but letters, digits, ``_``,
    ``-`` and ``.`` replaced, never hidden (temporaries are), never empty."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", instance).lstrip(".")[:200]
    return f"{safe or '_'}.json"


@dataclass(frozen=True, slots=True)
class Reader:
    """One process's record in ``<index>/readers/``: the version it serves."""

    instance: str
    version: str
    host: str
    pid: int
    seen: float  # the last heartbeat: the later of the record's time and the file's mtime
    every: float = 0.0  # its heartbeat interval, as it said (0: unknown)
    file: Path | None = field(default=None, compare=False)

    def fresh(self, now: float, ttl: float = READER_TTL) -> bool:
        """Whether the process is taken for alive: it wrote within the TTL (or within three
        of its own heartbeat intervals, when those are longer)."""
        return now - self.seen < max(ttl, 3 * self.every)


def _parse_reader(path: Path, st: os.stat_result) -> Reader | None:
    """The record in ``path``, or None when it is not one (torn, garbage, wrong types)."""
    try:
        data = json.loads(path.read_bytes())
        version, host, pid = data["version"], data.get("host", ""), data.get("pid", 0)
        seen, every = data.get("seen", 0.0), data.get("every", 0.0)
        if not (
            isinstance(version, str)
            and isinstance(host, str)
            and type(pid) is int
            and all(type(x) in (int, float) and math.isfinite(x) for x in (seen, every))
        ):
            return None
        instance = data.get("instance", path.stem)
        return Reader(
            instance if isinstance(instance, str) else path.stem,
            version,
            host,
            pid,
            max(float(seen), st.st_mtime),
            float(every),
            path,
        )
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def _forget(path: Path, seen: os.stat_result) -> None:
    """Remove a reader record found stale, unless its process has just refreshed it (a
    refresh renames a new file over it: another inode)."""
    try:
        if path.stat().st_ino == seen.st_ino:
            path.unlink()
    except OSError:
        pass


_UNWRITABLE: set[Path] = set()  # index folders whose readers/ we could not write (warned)


# ---- the index directory -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IndexDir:
    """One index directory: its versions, the ``current`` link, the change log and the lock.

    Its errors name what is wrong and carry the directory (``IndexDirError.index_dir``);
    the CLI and the bot add how to rebuild it (``newsdesk/messages.py``). Also a path-like
    object (``os.fspath`` gives the directory), so it goes wherever a path went.
    """

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    def __str__(self) -> str:
        return str(self.path)

    @property
    def versions(self) -> Path:
        return self.path / "versions"

    # -- reading ---------------------------------------------------------------------------

    def current(self) -> Path | None:
        """The version directory ``current`` points at, or None when there is no index."""
        link = self.path / "current"
        if not link.is_symlink():
            return None
        return (self.path / os.readlink(link)).resolve()

    def _current_or_raise(self) -> Path:
        version_dir = self.current()
        if version_dir is None:
            raise IndexMissingError(f"No index at {self.path}.", index_dir=self.path)
        return self._existing(version_dir)

    def _existing(self, version_dir: Path) -> Path:
        if not version_dir.is_dir():
            raise IndexCorruptError(
                f"The index at {self.path} points at {version_dir}, which does not exist.",
                index_dir=self.path,
            )
        return version_dir

    def manifest(self, version_dir: Path) -> Manifest:
        """The manifest of ``version_dir`` (a version of this index), checked for format."""
        try:
            data = json.loads((version_dir / MANIFEST).read_text())
            manifest = Manifest.from_dict(data)
        except FileNotFoundError as exc:
            raise IndexCorruptError(
                f"The index at {self.path} has no manifest ({version_dir / MANIFEST}).",
                index_dir=self.path,
            ) from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise IndexCorruptError(
                f"The manifest {version_dir / MANIFEST} is unreadable ({exc}).", index_dir=self.path
            ) from exc
        if manifest.format_version != FORMAT_VERSION:
            raise IndexMismatchError(
                f"The index at {self.path} has format {manifest.format_version}; this Newsdesk "
                f"reads format {FORMAT_VERSION}.",
                index_dir=self.path,
            )
        return manifest

    def _check_model(self, manifest: Manifest, expect_model: tuple[str, str] | None) -> None:
        if expect_model and expect_model[1] != manifest.model_fingerprint:
            raise IndexMismatchError(
                f"The index at {self.path} was built with model {manifest.model_name!r} "
                f"(fingerprint {manifest.model_fingerprint[:12]}), but the configured model "
                f"is {expect_model[0]!r} (fingerprint {expect_model[1][:12]}).",
                index_dir=self.path,
            )

    def _damage_error(self, version_dir: Path, problems: dict[str, str]) -> IndexCorruptError:
        name, what = next(iter(problems.items()))
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        damaged = "" if what == "is missing" else ": it is damaged"
        return IndexCorruptError(
            f"The index file {version_dir / name} {what}{damaged}{more}.", index_dir=self.path
        )

    def _read_jsonl(self, path: Path) -> Iterator[dict]:
        try:
            with path.open(encoding="utf-8") as fh:
                for lineno, line in enumerate(fh, 1):
                    try:
                        yield json.loads(line)
                    except ValueError as exc:
                        raise IndexCorruptError(
                            f"The index file {path} is damaged at line {lineno}.",
                            index_dir=self.path,
                        ) from exc
        except UnicodeDecodeError as exc:
            raise IndexCorruptError(
                f"The index file {path} is damaged.", index_dir=self.path
            ) from exc

    def _check_counts(
        self, version_dir: Path, manifest: Manifest, articles: int, passages: int
    ) -> None:
        if passages != manifest.passages or articles != manifest.articles:
            raise IndexCorruptError(
                f"The index at {version_dir} holds {articles} articles and {passages} "
                f"passages, the manifest says {manifest.articles} and {manifest.passages}.",
                index_dir=self.path,
            )

    def load(
        self, *, expect_model: tuple[str, str] | None = None, version_dir: Path | None = None
    ) -> LoadedIndex:
        """Load the current version (or ``version_dir``), checking it against its manifest.

        ``expect_model`` is (name, fingerprint) of the embedder that will query the
        index; a different fingerprint raises IndexMismatchError.
        """
        version_dir = (
            self._existing(version_dir) if version_dir is not None else self._current_or_raise()
        )
        manifest = self.manifest(version_dir)
        self._check_model(manifest, expect_model)
        problems = damaged_files(version_dir, manifest)  # verify, then read (or map)
        if problems:
            raise self._damage_error(version_dir, problems)
        articles = {
            row["doc_id"]: StoredArticle(**row) for row in self._read_jsonl(version_dir / ARTICLES)
        }
        passages = [Passage(**row) for row in self._read_jsonl(version_dir / PASSAGES)]
        self._check_counts(version_dir, manifest, len(articles), len(passages))
        try:
            vectors = FaissStore.load(version_dir)
            lexical = LexicalIndex.load(version_dir)
            sentences = SentenceVectors.load(version_dir)
        except Exception as exc:
            raise IndexCorruptError(
                f"The index at {version_dir} could not be read ({exc}).", index_dir=self.path
            ) from exc
        if vectors.size != len(passages):
            raise IndexCorruptError(
                f"The vector store at {version_dir} holds {vectors.size} vectors for "
                f"{len(passages)} passages.",
                index_dir=self.path,
            )
        if sentences is not None:
            try:
                _check_sentences(sentences, len(passages))
            except ValueError as exc:
                raise IndexCorruptError(
                    f"The sentence vectors at {version_dir} do not fit its passages.",
                    index_dir=self.path,
                ) from exc
        return LoadedIndex(version_dir, manifest, articles, passages, vectors, lexical, sentences)

    def unchanged(
        self,
        article_hashes: dict[str, str],
        fingerprint: str,
        sentence_vectors: str | None = None,
    ) -> Manifest | None:
        """The current version's manifest if it holds exactly these articles (doc id ->
        content hash), built with this model fingerprint (and, when given, with sentence
        vectors made this way), and its files are intact (checksums verified); else None.
        A version without checksums is never "unchanged": a re-index rewrites it."""
        version_dir = self.current()
        if version_dir is None or not version_dir.is_dir():
            return None
        try:
            manifest = self.manifest(version_dir)
            if manifest.model_fingerprint != fingerprint or manifest.articles != len(
                article_hashes
            ):
                return None
            if sentence_vectors is not None and manifest.sentence_vectors != sentence_vectors:
                return None
            if not manifest.checksums or damaged_files(version_dir, manifest):
                return None
            stored = {
                row["doc_id"]: row["content_hash"]
                for row in self._read_jsonl(version_dir / ARTICLES)
            }
        except (NewsdeskError, KeyError, TypeError):
            return None
        return manifest if stored == article_hashes else None

    def reusable(self, *, expect_model: tuple[str, str]) -> Reusable:
        """The current version's articles and stored vectors, for a re-index to reuse.

        Verifies the files first. A damaged article or passage list, another model or format
        raise (a full rebuild); damaged vectors or sentence vectors are left out (their texts
        are embedded again); the FAISS and BM25 files are not read at all (always rebuilt).
        """
        version_dir = self._current_or_raise()
        manifest = self.manifest(version_dir)
        self._check_model(manifest, expect_model)
        damaged = damaged_files(version_dir, manifest)
        lists = {name: what for name, what in damaged.items() if name in (ARTICLES, PASSAGES)}
        if lists:
            raise self._damage_error(version_dir, lists)
        try:
            articles = {
                row["doc_id"]: row["content_hash"]
                for row in self._read_jsonl(version_dir / ARTICLES)
            }
            passages = [Passage(**row) for row in self._read_jsonl(version_dir / PASSAGES)]
        except (KeyError, TypeError) as exc:
            raise IndexCorruptError(
                f"The index at {version_dir} could not be read ({exc}).", index_dir=self.path
            ) from exc
        self._check_counts(version_dir, manifest, len(articles), len(passages))
        vectors: dict[str, np.ndarray] = {}
        if VECTORS not in damaged:
            try:
                matrix = load_vectors(version_dir)
                if matrix.ndim != 2 or matrix.shape[0] != len(passages):
                    raise ValueError(f"{matrix.shape[0]} rows for {len(passages)} passages")
                vectors = {p.content_hash: matrix[p.passage_id] for p in passages}
            except (OSError, ValueError) as exc:
                damaged[VECTORS] = f"could not be read ({exc})"
        sentences: dict[str, list[tuple[int, int, np.ndarray]]] = {}
        if SENTENCE_SPANS not in damaged and SENTENCE_VECTORS not in damaged:
            try:
                stored = SentenceVectors.load(version_dir)
                if stored is not None:
                    _check_sentences(stored, len(passages))
                    sentences = {p.content_hash: stored.of_passage(p.passage_id) for p in passages}
            except (OSError, ValueError, IndexError) as exc:
                damaged[SENTENCE_VECTORS] = f"could not be read ({exc})"
        return Reusable(
            manifest.version,
            articles,
            vectors,
            sentences,
            damaged,
            bool(manifest.checksums),
            manifest.sentence_vectors,
        )

    # -- the change log --------------------------------------------------------------------

    def changes(self) -> list[Change]:
        """Every version's entry in the change log, oldest first."""
        path = self.path / CHANGES
        if not path.is_file():
            return []
        return [change for _, change in _parse_changes(_read_text(path))]

    def log_change(self, change: Change) -> None:
        """Add ``change`` to the log: the whole log is written aside and renamed over the old
        one, so readers and a crash see either the old log or the new one, never a torn
        line. (A torn line left by an older Newsdesk is dropped on the way.)"""
        path = self.path / CHANGES
        lines = [line for line, _ in _parse_changes(_read_text(path))] if path.is_file() else []
        lines.append(json.dumps(asdict(change)))
        tmp = self.path / f"{CHANGES}.tmp-{os.getpid()}"
        try:
            with tmp.open("w", encoding="utf-8") as fh:
                fh.write("\n".join(lines) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            _remove(tmp)
            raise
        _fsync_dir(self.path, strict=False)

    # -- writing ---------------------------------------------------------------------------

    def write_error(self, exc: OSError) -> IndexWriteError:
        """A failed write as one line a person can act on ("disk full", "read-only")."""
        if isinstance(exc, IndexWriteError):
            return exc
        reason = exc.strerror or str(exc) or type(exc).__name__
        where = f"{exc.filename}: {reason}" if exc.filename else reason
        if exc.errno in _DISK_FULL:
            what, advice = "disk full", "free some space, then re-index again"
        elif exc.errno in _READ_ONLY:
            what, advice = (
                "read-only",
                "make the folder writable for this user or index elsewhere",
            )
        else:
            what, advice = "the write failed", "re-index again once the cause is fixed"
        message = (
            f"Cannot write the index at {self.path}: {what} ({where}). "
            f"Nothing was changed; {advice}."
        )
        error = IndexWriteError(" ".join(message.split()))  # one line, whatever the path holds
        error.errno = exc.errno
        return error

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Turn a failed write in this block into IndexWriteError."""
        try:
            yield
        except OSError as exc:
            raise self.write_error(exc) from exc

    def next_version(self) -> str:
        """The name of the next version: one past the highest written so far."""
        numbers = [0]
        if self.versions.is_dir():
            for child in self.versions.iterdir():
                if child.name.startswith("v") and child.name[1:].isdigit():
                    numbers.append(int(child.name[1:]))
        return f"v{max(numbers) + 1:06d}"

    def write_version(
        self,
        *,
        version: str,
        model: tuple[str, str],
        articles: list[StoredArticle],
        passages: list[Passage],
        vectors: np.ndarray,
        store: VectorStore,
        lexical: LexicalIndex,
        change: Change,
        sentences: SentenceVectors | None = None,
        sentence_vectors: str = "separate",
    ) -> Path:
        """Write a complete version beside the others, log it, then swap ``current`` to it.

        Any failure removes what this call wrote (the version, unless it is already in the
        change log) and leaves ``current`` as it was; a failed write (a full disk, a
        read-only folder) raises IndexWriteError.
        """
        tmp = self.versions / f".tmp-{version}-{os.getpid()}"
        final = self.versions / version
        logged = False
        try:
            with self._writing():
                self.versions.mkdir(parents=True, exist_ok=True)
                _remove(tmp)
                tmp.mkdir()
                _write_files(tmp, articles, passages, vectors, store, lexical, sentences)
                files = {
                    str(p.relative_to(tmp)): p.stat().st_size
                    for p in sorted(tmp.rglob("*"))
                    if p.is_file()
                }
                checksums = {name: file_checksum(tmp / name) for name in files}
                manifest = Manifest(
                    format_version=FORMAT_VERSION,
                    version=version,
                    created_at=change.created_at,
                    model_name=model[0],
                    model_fingerprint=model[1],
                    dimension=int(vectors.shape[1]) if vectors.ndim == 2 else 0,
                    articles=len(articles),
                    passages=len(passages),
                    vector_store=store.kind,
                    files=files,
                    checksums=checksums,
                    sentence_vectors=sentence_vectors,
                )
                (tmp / MANIFEST).write_text(json.dumps(asdict(manifest), indent=2))
                # Hashed from the disk just now: the first load need not hash them again.
                stats = {name: _stat_key((tmp / name).stat()) for name in files}
                _write_stamp(tmp, {"checksums": checksums, "files": stats})
                _fsync_tree(tmp)
                os.rename(tmp, final)
                self.log_change(change)
                logged = True
                self.swap(final)
        except BaseException:
            _remove(tmp)
            if not logged and final.is_dir() and self.current() != final:
                _remove(final)  # never logged, never current: the name is free again
            raise
        return final

    def swap(self, version_dir: Path) -> None:
        """Point ``current`` at ``version_dir``, atomically (a new link renamed over it)."""
        link_tmp = self.path / f".current-{os.getpid()}"
        try:
            _remove(link_tmp)
            os.symlink(os.path.relpath(version_dir, self.path), link_tmp)
            os.replace(link_tmp, self.path / "current")
        except BaseException:
            _remove(link_tmp)
            raise
        _fsync_dir(self.path, strict=False)  # the swap is done: a failed flush must not undo it

    # -- housekeeping ----------------------------------------------------------------------

    def clean_temporaries(self) -> None:
        """Remove what an interrupted run left behind (a half-written version can hold most
        of a disk). Call it holding the lock: no other run is writing then."""
        leftovers = [*self.versions.glob(".tmp-*")] if self.versions.is_dir() else []
        leftovers += [*self.path.glob(".current-*"), *self.path.glob(f"{CHANGES}.tmp-*")]
        for leftover in leftovers:
            log.info("Removing %s, left by an interrupted re-index", leftover)
            _remove(leftover)

    def collect_garbage(
        self, keep: int = KEEP_VERSIONS, *, reader_ttl: float = READER_TTL, now: float | None = None
    ) -> list[str]:
        """Delete old versions (and leftovers of interrupted builds); the names deleted.

        Kept: the current version, the newest ``keep``, and every version a fresh reader
        record names (``note_reader``: a bot on this or another machine still serving it).
        Stale records (older than ``reader_ttl``) pin nothing and are removed, as are
        unreadable ones once as old. A version is renamed aside (``versions/.trash-*``)
        before its files are deleted, so a deletion cut short (a crash, files held open
        on NFS) never leaves a half version under a version's name; later runs finish it.
        Call it holding the lock (the re-index does).
        """
        now = time.time() if now is None else now
        current = self.current()
        in_use = {r.version: r for r in self._live_readers(now, reader_ttl)}
        done = (
            sorted(p for p in self.versions.iterdir() if p.name.startswith("v") and p.is_dir())
            if self.versions.is_dir()
            else []
        )
        removed = []
        for old in done[: max(len(done) - keep, 0)]:
            if current is not None and old.name == current.name:
                continue
            if old.name in in_use:
                reader = in_use[old.name]
                log.info("Keeping %s: %s on %s serves it", old, reader.instance, reader.host)
                continue
            trash = self.versions / f"{TRASH}{old.name}-{os.getpid()}"
            try:
                os.rename(old, trash)
            except OSError as exc:
                log.warning("Could not remove the old version %s: %s", old, exc)
                continue
            _remove(trash)
            removed.append(old.name)
        for leftover in self.versions.glob(f"{TRASH}*") if self.versions.is_dir() else ():
            _remove(leftover)  # a deletion cut short, by this run or an earlier one
        self.clean_temporaries()
        return removed

    # -- readers (processes serving a version, on this machine or another) -----------------

    @property
    def readers_dir(self) -> Path:
        return self.path / READERS

    def note_reader(
        self, instance: str, version: str | Path, *, every: float = 0.0, now: float | None = None
    ) -> bool:
        """Record (or refresh: call it again within ``READER_TTL``) that ``instance`` serves
        ``version`` (a name or a version folder), so that no re-index on any machine deletes
        it. ``every`` is the caller's heartbeat interval: a record stays fresh for three of
        them when that is longer than the TTL.

        The record is written aside and renamed over the old one, so other machines read
        the old record or the new one, never half of one. A folder that cannot be written
        (a read-only mount) is logged once and False returned: the process serves anyway,
        but its version is not protected from cleanup.
        """
        name = version.name if isinstance(version, Path) else version
        record = {
            "instance": instance,
            "version": name,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "seen": time.time() if now is None else now,
            "every": every,
        }
        target = self.readers_dir / _reader_file(instance)
        tmp = self.readers_dir / f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            self.readers_dir.mkdir(exist_ok=True)
            tmp.write_text(json.dumps(record), encoding="utf-8")
            os.replace(tmp, target)
        except OSError as exc:
            _remove(tmp)
            if self.path not in _UNWRITABLE:
                _UNWRITABLE.add(self.path)
                log.warning(
                    "Cannot record which index version this process serves in %s (%s): a "
                    "re-index may delete it while it is in use.",
                    self.readers_dir,
                    exc,
                )
            return False
        _UNWRITABLE.discard(self.path)
        return True

    def drop_reader(self, instance: str) -> None:
        """Remove ``instance``'s record (at shutdown), if this process wrote it: a record
        since taken over by another process of the same name is left to it. Never raises."""
        path = self.readers_dir / _reader_file(instance)
        try:
            reader = _parse_reader(path, path.stat())
            if reader is None or (reader.host, reader.pid) == (socket.gethostname(), os.getpid()):
                path.unlink(missing_ok=True)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("Could not remove the reader record %s: %s", path, exc)

    def readers(self) -> list[Reader]:
        """Every readable record in ``readers/``, fresh or stale, by instance name."""
        found = [reader for _, _, reader in self._reader_records() if reader is not None]
        return sorted(found, key=lambda r: r.instance)

    def _reader_records(self) -> Iterator[tuple[Path, os.stat_result, Reader | None]]:
        """(file, its stat, its record or None when unreadable) for every record file."""
        try:
            paths = [p for p in self.readers_dir.iterdir() if not p.name.startswith(".")]
        except (FileNotFoundError, NotADirectoryError):
            return
        for path in paths:
            try:
                st = path.stat()
                if stat.S_ISREG(st.st_mode):
                    yield path, st, _parse_reader(path, st)
            except OSError:  # gone since the listing (dropped, or renamed over: read next time)
                continue

    def _live_readers(self, now: float, ttl: float) -> list[Reader]:
        """The fresh records. Stale ones, unreadable files and temporaries left by a killed
        writer are removed once older than the TTL; unreadable ones are logged."""
        live = []
        for path, st, reader in self._reader_records():
            if reader is None:
                log.warning("Ignoring %s: not a reader record (torn or foreign)", path)
                if now - st.st_mtime >= ttl:
                    _forget(path, st)
            elif reader.fresh(now, ttl):
                live.append(reader)
            else:
                log.info("Reader %s on %s is silent: forgetting it", reader.instance, reader.host)
                _forget(path, st)
        for tmp in self.readers_dir.glob(".*.tmp-*") if self.readers_dir.is_dir() else ():
            try:
                if now - tmp.stat().st_mtime >= ttl:
                    _remove(tmp)
            except OSError:
                continue
        return live

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the index's re-index lock, or raise IndexBusyError at once (IndexWriteError
        when the folder cannot be written)."""
        path = self.path / ".lock"
        with self._writing():
            self.path.mkdir(parents=True, exist_ok=True)
            fh = path.open("a+")
        try:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EACCES):
                    fh.seek(0)
                    holder = fh.read().strip() or "another process"
                    raise IndexBusyError(
                        f"Another re-index of {self.path} is running ({holder}). "
                        "Wait for it to finish, then run this again."
                    ) from exc
                raise
            try:  # who holds it, for the message above; a full disk must not stop the run
                fh.seek(0)
                fh.truncate()
                since = datetime.now(UTC).isoformat(timespec="seconds")
                fh.write(f"pid {os.getpid()} since {since}")
                fh.flush()
            except OSError as exc:
                log.warning("Could not note the lock holder in %s: %s", path, exc)
            yield
        finally:
            fh.close()


# ---- shortcuts for callers that hold a path ------------------------------------------------


def load_index(
    index_dir: Path | IndexDir,
    *,
    expect_model: tuple[str, str] | None = None,
    version_dir: Path | None = None,
) -> LoadedIndex:
    """``IndexDir(index_dir).load(...)``."""
    return IndexDir(index_dir).load(expect_model=expect_model, version_dir=version_dir)


def current_version_path(index_dir: Path | IndexDir) -> Path | None:
    """``IndexDir(index_dir).current()``."""
    return IndexDir(index_dir).current()


def read_changes(index_dir: Path | IndexDir) -> list[Change]:
    """``IndexDir(index_dir).changes()``."""
    return IndexDir(index_dir).changes()
