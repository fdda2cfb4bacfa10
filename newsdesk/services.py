"""Composition: build the embedder, index and engine from settings (used by CLI and bot)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from index.build import ReindexReport, reindex
from index.embedders import Embedder, load_embedder
from index.engine import Engine
from index.store import current_version_path, load_index
from newsdesk.settings import Settings

log = logging.getLogger(__name__)


def make_embedder(settings: Settings) -> Embedder:
    return load_embedder(settings.embedding_model, settings.data_dir)


def run_reindex(
    settings: Settings,
    embedder: Embedder,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> ReindexReport:
    return reindex(
        settings.corpus_dirs,
        settings.index_path,
        embedder,
        vector_store=settings.vector_store,
        batch_size=settings.embedding_batch_size,
        progress=progress,
    )


def open_engine(
    settings: Settings, embedder: Embedder | None = None, *, build_if_missing: bool = False
) -> Engine:
    """Load the current index for querying; optionally build it first when there is none."""
    embedder = embedder or make_embedder(settings)
    if build_if_missing and current_version_path(settings.index_path) is None:
        print(
            f"No index at {settings.index_path} yet: building it from "
            + ", ".join(str(d) for d in settings.corpus_dirs)
            + " ...",
            file=sys.stderr,
        )
        run_reindex(settings, embedder)
    index = load_index(settings.index_path, expect_model=(embedder.name, embedder.fingerprint))
    return Engine.create(
        index,
        embedder,
        threshold=settings.answer_threshold,
        max_question_chars=settings.max_question_chars,
    )
