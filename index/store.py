"""The index on disk: versioned directories, a manifest, an atomic swap, a change log.

Layout of an index directory::

    <index>/current            symlink -> versions/<version>, replaced atomically by rename
    <index>/versions/<version>/manifest.json, articles.jsonl, passages.jsonl,
                               vectors.npy, dense.faiss, bm25/
    <index>/changes.jsonl      one line per version: articles added, changed, removed
    <index>/.lock              held (flock) by the one re-index allowed at a time

A new version is written into ``versions/.tmp-*``, renamed into place, logged,
and only then made current; a re-index that dies half-way leaves the previous
version serving. The manifest names the format, model and counts, and the size
of every file, so a load can tell a damaged index from a good one.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from corpus.article import Article
from index.ann import FaissStore, VectorStore
from index.errors import (
    REBUILD_HINT,
    IndexBusyError,
    IndexCorruptError,
    IndexMismatchError,
    IndexMissingError,
    NewsdeskError,
)
from index.lexical import LexicalIndex
from index.sentence_vectors import SentenceVectors
from index.types import Passage

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ARTICLES = "articles.jsonl"
PASSAGES = "passages.jsonl"
VECTORS = "vectors.npy"
CHANGES = "changes.jsonl"
KEEP_VERSIONS = 3


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

    @classmethod
    def from_dict(cls, data: dict) -> Manifest:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


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
        """The passages' vectors (row = passage id), memory-mapped once on first use."""
        if self._matrix is None:
            self._matrix = load_vectors(self.path)
        return self._matrix

    def article_text(self, doc_id: str) -> str:
        return self.articles[doc_id].text


def _hint(index_dir: Path) -> str:
    return REBUILD_HINT.format(index=index_dir)


def current_version_path(index_dir: Path) -> Path | None:
    """The version directory ``current`` points at, or None when there is no index."""
    link = index_dir / "current"
    if not link.is_symlink():
        return None
    return (index_dir / os.readlink(link)).resolve()


def read_manifest(version_dir: Path, index_dir: Path) -> Manifest:
    try:
        data = json.loads((version_dir / MANIFEST).read_text())
        manifest = Manifest.from_dict(data)
    except FileNotFoundError as exc:
        raise IndexCorruptError(
            f"The index at {index_dir} has no manifest ({version_dir / MANIFEST}). "
            + _hint(index_dir)
        ) from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise IndexCorruptError(
            f"The manifest {version_dir / MANIFEST} is unreadable ({exc}). " + _hint(index_dir)
        ) from exc
    if manifest.format_version != FORMAT_VERSION:
        raise IndexMismatchError(
            f"The index at {index_dir} has format {manifest.format_version}; this Newsdesk "
            f"reads format {FORMAT_VERSION}. " + _hint(index_dir)
        )
    return manifest


def _check_files(version_dir: Path, manifest: Manifest, index_dir: Path) -> None:
    for name, size in manifest.files.items():
        path = version_dir / name
        if not path.is_file():
            raise IndexCorruptError(f"The index file {path} is missing. " + _hint(index_dir))
        if path.stat().st_size != size:
            raise IndexCorruptError(
                f"The index file {path} has {path.stat().st_size} bytes, the manifest says "
                f"{size}: it is damaged. " + _hint(index_dir)
            )


def _read_jsonl(path: Path, index_dir: Path) -> Iterator[dict]:
    try:
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                try:
                    yield json.loads(line)
                except ValueError as exc:
                    raise IndexCorruptError(
                        f"The index file {path} is damaged at line {lineno}. " + _hint(index_dir)
                    ) from exc
    except UnicodeDecodeError as exc:
        raise IndexCorruptError(f"The index file {path} is damaged. " + _hint(index_dir)) from exc


def load_index(
    index_dir: Path,
    *,
    expect_model: tuple[str, str] | None = None,
    version_dir: Path | None = None,
) -> LoadedIndex:
    """Load the current version (or ``version_dir``), checking it against its manifest.

    ``expect_model`` is (name, fingerprint) of the embedder that will query the
    index; a different fingerprint raises IndexMismatchError.
    """
    index_dir = Path(index_dir)
    version_dir = version_dir or current_version_path(index_dir)
    if version_dir is None:
        raise IndexMissingError(f"No index at {index_dir}. " + _hint(index_dir))
    if not version_dir.is_dir():
        raise IndexCorruptError(
            f"The index at {index_dir} points at {version_dir}, which does not exist. "
            + _hint(index_dir)
        )
    manifest = read_manifest(version_dir, index_dir)
    if expect_model and expect_model[1] != manifest.model_fingerprint:
        raise IndexMismatchError(
            f"The index at {index_dir} was built with model {manifest.model_name!r} "
            f"(fingerprint {manifest.model_fingerprint[:12]}), but the configured model is "
            f"{expect_model[0]!r} (fingerprint {expect_model[1][:12]}). " + _hint(index_dir)
        )
    _check_files(version_dir, manifest, index_dir)
    articles = {
        row["doc_id"]: StoredArticle(**row)
        for row in _read_jsonl(version_dir / ARTICLES, index_dir)
    }
    passages = [Passage(**row) for row in _read_jsonl(version_dir / PASSAGES, index_dir)]
    if len(passages) != manifest.passages or len(articles) != manifest.articles:
        raise IndexCorruptError(
            f"The index at {version_dir} holds {len(articles)} articles and {len(passages)} "
            f"passages, the manifest says {manifest.articles} and {manifest.passages}. "
            + _hint(index_dir)
        )
    try:
        vectors = FaissStore.load(version_dir)
        lexical = LexicalIndex.load(version_dir)
        sentences = SentenceVectors.load(version_dir)
    except Exception as exc:
        raise IndexCorruptError(
            f"The index at {version_dir} could not be read ({exc}). " + _hint(index_dir)
        ) from exc
    if vectors.size != len(passages):
        raise IndexCorruptError(
            f"The vector store at {version_dir} holds {vectors.size} vectors for "
            f"{len(passages)} passages. " + _hint(index_dir)
        )
    if sentences is not None and (
        sentences.vectors.shape[0] != sentences.spans.shape[0]
        or (len(sentences.spans) and int(sentences.spans[:, 0].max()) >= len(passages))
    ):
        raise IndexCorruptError(
            f"The sentence vectors at {version_dir} do not fit its passages. " + _hint(index_dir)
        )
    return LoadedIndex(version_dir, manifest, articles, passages, vectors, lexical, sentences)


def unchanged_version(
    index_dir: Path, article_hashes: dict[str, str], fingerprint: str
) -> Manifest | None:
    """The current version's manifest if it holds exactly these articles (doc id -> content
    hash), built with this model fingerprint, and its files are intact; else None."""
    version_dir = current_version_path(Path(index_dir))
    if version_dir is None or not version_dir.is_dir():
        return None
    try:
        manifest = read_manifest(version_dir, index_dir)
        if manifest.model_fingerprint != fingerprint or manifest.articles != len(article_hashes):
            return None
        _check_files(version_dir, manifest, index_dir)
        stored = {
            row["doc_id"]: row["content_hash"]
            for row in _read_jsonl(version_dir / ARTICLES, index_dir)
        }
    except (NewsdeskError, KeyError, TypeError):
        return None
    return manifest if stored == article_hashes else None


def load_vectors(version_dir: Path) -> np.ndarray:
    return np.load(version_dir / VECTORS, mmap_mode="r")


def read_changes(index_dir: Path) -> list[Change]:
    path = Path(index_dir) / CHANGES
    if not path.is_file():
        return []
    changes = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            changes.append(Change(**json.loads(line)))
        except (ValueError, TypeError):
            continue  # a torn last line from a crash: that version never became current
    return changes


def next_version(index_dir: Path) -> str:
    versions = index_dir / "versions"
    numbers = [0]
    if versions.is_dir():
        for child in versions.iterdir():
            if child.name.startswith("v") and child.name[1:].isdigit():
                numbers.append(int(child.name[1:]))
    return f"v{max(numbers) + 1:06d}"


def write_version(
    index_dir: Path,
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
) -> Path:
    """Write a complete version beside the others, log it, then swap ``current`` to it."""
    versions = index_dir / "versions"
    versions.mkdir(parents=True, exist_ok=True)
    tmp = versions / f".tmp-{version}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    with (tmp / ARTICLES).open("w", encoding="utf-8") as fh:
        for article in articles:
            fh.write(json.dumps(asdict(article), ensure_ascii=False) + "\n")
    with (tmp / PASSAGES).open("w", encoding="utf-8") as fh:
        for passage in passages:
            fh.write(json.dumps(asdict(passage), ensure_ascii=False) + "\n")
    np.save(tmp / VECTORS, np.ascontiguousarray(vectors, dtype=np.float32))
    store.save(tmp)
    lexical.save(tmp)
    if sentences is not None:
        sentences.save(tmp)
    files = {
        str(p.relative_to(tmp)): p.stat().st_size for p in sorted(tmp.rglob("*")) if p.is_file()
    }
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
    )
    (tmp / MANIFEST).write_text(json.dumps(asdict(manifest), indent=2))
    _fsync_tree(tmp)
    final = versions / version
    os.rename(tmp, final)
    with (index_dir / CHANGES).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(asdict(change)) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    swap_current(index_dir, final)
    return final


def swap_current(index_dir: Path, version_dir: Path) -> None:
    link_tmp = index_dir / f".current-{os.getpid()}"
    if link_tmp.is_symlink() or link_tmp.exists():
        link_tmp.unlink()
    os.symlink(os.path.relpath(version_dir, index_dir), link_tmp)
    os.replace(link_tmp, index_dir / "current")
    _fsync_dir(index_dir)


def collect_garbage(index_dir: Path, keep: int = KEEP_VERSIONS) -> None:
    """Delete old versions (and leftovers of interrupted builds), keeping the newest few."""
    versions = index_dir / "versions"
    current = current_version_path(index_dir)
    done = sorted(p for p in versions.iterdir() if p.name.startswith("v"))
    for old in done[:-keep]:
        if old != current:
            shutil.rmtree(old, ignore_errors=True)
    for leftover in versions.glob(".tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            with path.open("rb") as fh:
                os.fsync(fh.fileno())
    _fsync_dir(root)


@contextmanager
def reindex_lock(index_dir: Path) -> Iterator[None]:
    """Hold the index's re-index lock, or raise IndexBusyError at once."""
    index_dir.mkdir(parents=True, exist_ok=True)
    path = index_dir / ".lock"
    fh = path.open("a+")
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                fh.seek(0)
                holder = fh.read().strip() or "another process"
                raise IndexBusyError(
                    f"Another re-index of {index_dir} is running ({holder}). "
                    "Wait for it to finish, then run this again."
                ) from exc
            raise
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} since {datetime.now(UTC).isoformat(timespec='seconds')}")
        fh.flush()
        yield
    finally:
        fh.close()
