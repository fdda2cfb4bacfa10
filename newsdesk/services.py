"""Composition: build the embedder, index and engine from settings (used by CLI and bot)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from corpus.loaders import LoadOptions
from index.build import ReindexReport, reindex
from index.database import Database, open_database
from index.embedders import Embedder, load_embedder
from index.engine import Engine
from index.errors import IndexBusyError, IndexMissingError, NewsdeskError
from index.store import IndexDir
from newsdesk.settings import Settings

log = logging.getLogger(__name__)


def make_embedder(settings: Settings, *, lazy: bool = True, purpose: str = "query") -> Embedder:
    """The configured embedder. Lazy by default: the model is loaded on the first ``embed``,
    so a re-index that finds nothing changed never loads it. ``purpose="bulk"`` (re-index)
    lets ``auto`` pick torch (bf16 autocast where the CPU has it), faster in batches, and
    spreads large jobs over worker processes; ``query`` picks ONNX Runtime, which needs no
    torch. They give the same vectors (same fingerprint)."""
    return load_embedder(
        settings.embedding_model,
        settings.data_dir,
        backend=settings.embedding_backend,
        threads=settings.embedding_threads,
        lazy=lazy,
        purpose=purpose,
        workers=settings.embedding_workers if purpose == "bulk" else 1,
    )


def check_index_path(settings: Settings) -> None:
    """Refuse an index path that is a file (or lies under one) before anything reads it."""
    path = settings.index_path
    for part in (path, *path.parents):
        if part.exists() or part.is_symlink():
            if not part.is_dir():
                where = "is" if part == path else f"lies under {part}, which is"
                raise NewsdeskError(
                    f"The index path {path} {where} not a directory: "
                    "give --index (or NEWSDESK_INDEX_DIR) a directory."
                )
            return


STATE_FILE = "bot_state.sqlite3"  # the bot's SQLite state file, in the data folder


def open_state_database(settings: Settings, sqlite_path: Path | None = None) -> Database:
    """The state database: PostgreSQL when ``database_url`` is set (shared by every
    instance), else the SQLite file ``sqlite_path`` (default: the bot's state file in the
    data folder). Raises ``StateDatabaseError`` (naming the URL without its password) when
    PostgreSQL cannot be reached."""
    url = settings.database_url.get_secret_value() if settings.database_url else None
    return open_database(
        url,
        sqlite_path or settings.data_dir / STATE_FILE,
        settings.database_pool_size,
        synchronous="NORMAL",
    )


@contextmanager
def reindex_lock(settings: Settings, database: Database | None = None) -> Iterator[None]:
    """With a PostgreSQL state database: hold its "reindex" lock (one re-index at a time
    across machines), or raise ``IndexBusyError`` at once. Without one, nothing: the index
    folder's own lock (taken by the re-index) is enough on one machine."""
    if settings.database_url is None:
        yield
        return
    owned = database is None
    db = open_state_database(settings) if database is None else database
    try:
        with db.try_lock("reindex") as got:
            if not got:
                raise IndexBusyError(
                    f"Another re-index is running (it holds the re-index lock in the "
                    f"state database {db.label}). Wait for it to finish, then run this again."
                )
            yield
    finally:
        if owned:
            db.close()


def run_reindex(
    settings: Settings,
    embedder: Embedder,
    *,
    progress: Callable[[int, int], None] | None = None,
    database: Database | None = None,
) -> ReindexReport:
    """Re-index the corpus. With a PostgreSQL state database, one at a time across
    machines (``reindex_lock``; ``database``: an open one to use, else one is opened)."""
    check_index_path(settings)
    with reindex_lock(settings, database):
        return _reindex(settings, embedder, progress)


def _reindex(
    settings: Settings,
    embedder: Embedder,
    progress: Callable[[int, int], None] | None,
) -> ReindexReport:
    return reindex(
        settings.corpus_dirs,
        settings.index_path,
        embedder,
        corpus_options=LoadOptions(
            max_file_bytes=int(settings.corpus_max_file_mb * 1024 * 1024),
            follow_links_out=settings.corpus_follow_links_out,
        ),
        vector_store=settings.vector_store,
        ann_from=settings.ann_from,
        batch_size=settings.embedding_batch_size,
        progress=progress,
        sentence_vectors=settings.sentence_vectors,
    )


def open_engine(
    settings: Settings, embedder: Embedder | None = None, *, build_if_missing: bool = False
) -> Engine:
    """Load the current index for querying. ``build_if_missing``: build it first when there
    is none, if it is the default index ($NEWSDESK_DATA_DIR/index): any other path with no
    index is an error, so a mistyped --index never becomes a new index of the sample."""
    check_index_path(settings)
    index_dir = IndexDir(settings.index_path)
    if build_if_missing and index_dir.current() is None:
        if not settings.index_is_default:
            raise IndexMissingError(
                f"No index at {settings.index_path} (only the default index, "
                f"{settings.data_dir / 'index'}, is built on first use).",
                index_dir=settings.index_path,
            )
        embedder = embedder or make_embedder(settings)
        print(
            f"No index at {settings.index_path} yet: building it from "
            + ", ".join(str(d) for d in settings.corpus_dirs)
            + " ...",
            file=sys.stderr,
        )
        run_reindex(settings, embedder)
    embedder = embedder or make_embedder(settings)
    index = index_dir.load(expect_model=(embedder.name, embedder.fingerprint))
    return Engine.create(
        index,
        embedder,
        threshold=settings.answer_threshold,
        model_path=settings.answer_model,
        max_question_chars=settings.max_question_chars,
    )
