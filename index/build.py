"""Incremental re-index: load the corpus, embed only what changed, write a new version."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from corpus.article import Skipped
from corpus.loaders import LoadOptions, load_corpus
from index.ann import VectorStore
from index.ann.policy import DEFAULT_ANN_FROM
from index.ann.policy import choose_store as _choose_store
from index.embedders.base import Embedder
from index.errors import CorpusError, NewsdeskError
from index.lexical import LexicalIndex
from index.passages import passage_hash, passage_spans
from index.sentence_vectors import plan_sentences
from index.store import (
    Change,
    StoredArticle,
    clean_temporaries,
    collect_garbage,
    current_version_path,
    load_reusable,
    next_version,
    reindex_lock,
    unchanged_version,
    write_version,
)
from index.types import Passage

log = logging.getLogger(__name__)

ANN_FROM = DEFAULT_ANN_FROM
Progress = Callable[[int, int], None]


@dataclass(slots=True)
class ReindexReport:
    """What a re-index did, for the closing summary."""

    version: str | None = None
    previous_version: str | None = None
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    duplicates: list[Skipped] = field(default_factory=list)
    passages: int = 0
    embedded: int = 0
    sentences_embedded: int = 0
    reused: int = 0
    full_rebuild: bool = False
    reason: str = ""
    # Files of the previous version that were damaged (name -> what was wrong): rebuilt.
    damaged: dict[str, str] = field(default_factory=dict)
    # The previous version had no checksums (an older Newsdesk wrote it): rewritten.
    added_checksums: bool = False

    @property
    def wrote_new_version(self) -> bool:
        return self.version is not None and self.version != self.previous_version

    def summary(self, index_dir: Path) -> str:
        """The closing summary a person reads (CLI and the bot's /reindex)."""
        if self.wrote_new_version:
            kind = "full build" if self.full_rebuild else "incremental update"
            lines = [f"Index {self.version} written to {index_dir} ({kind})."]
        else:
            lines = [f"Index {self.version} at {index_dir} is up to date."]
        if self.reason:
            lines.append(f"Previous index not reused: {self.reason}")
        if self.damaged:
            damage = "; ".join(f"{name} {what}" for name, what in self.damaged.items())
            lines.append(
                f"Repaired: {self.previous_version} was damaged ({damage}); "
                "rebuilt from its intact files."
            )
        if self.added_checksums:
            lines.append(
                f"Rewritten with checksums: {self.previous_version} had none "
                "(an older Newsdesk wrote it)."
            )
        lines.append(
            f"added {len(self.added)}, changed {len(self.changed)}, removed "
            f"{len(self.removed)}, unchanged {self.unchanged}; passages {self.passages} "
            f"(embedded {self.embedded}, reused {self.reused})"
        )
        if self.duplicates:
            lines.append(f"duplicates skipped: {len(self.duplicates)}")
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)}:")
            lines += [f"  {s.path}: {s.reason}" for s in self.skipped]
        return "\n".join(lines)


def choose_store(kind: str, dimension: int, count: int, ann_from: int = ANN_FROM) -> VectorStore:
    """The vector store for ``count`` passages (policy and parameters: index/ann/policy.py)."""
    try:
        return _choose_store(kind, dimension, count, ann_from=ann_from)
    except ValueError as exc:
        raise NewsdeskError(str(exc)) from exc


EMBED_CHUNK = 256  # texts per progress step (and per task of a worker pool)


def embed_texts(
    embedder: Embedder,
    texts: Sequence[str],
    *,
    batch_size: int = 32,
    progress: Progress | None = None,
) -> np.ndarray:
    """The vectors of ``texts``, each distinct text embedded once.

    The texts are sorted longest first across the whole job (not per chunk), so each
    batch holds texts of nearly one length and pads little, then cut into chunks of
    ``EMBED_CHUNK`` for progress reports and for a bulk embedder's workers.
    """
    unique = list(dict.fromkeys(texts))
    order = sorted(range(len(unique)), key=lambda i: -len(unique[i]))
    chunks = [
        [unique[i] for i in order[begin : begin + EMBED_CHUNK]]
        for begin in range(0, len(order), EMBED_CHUNK)
    ]
    out = np.zeros((len(unique), embedder.dimension), dtype=np.float32)
    done = 0
    if progress:
        progress(0, len(unique))
    embedded = embedder.embed_chunks(chunks, batch_size=batch_size)
    for chunk, vectors in zip(chunks, embedded, strict=True):
        out[order[done : done + len(chunk)]] = vectors
        done += len(chunk)
        if progress:
            progress(done, len(unique))
    row = {text: i for i, text in enumerate(unique)}
    return out[[row[text] for text in texts]] if texts else out


def reindex(
    corpus_dirs: Sequence[Path],
    index_dir: Path,
    embedder: Embedder,
    *,
    vector_store: str = "auto",
    batch_size: int = 32,
    progress: Progress | None = None,
    ann_from: int = ANN_FROM,
    corpus_options: LoadOptions | None = None,
) -> ReindexReport:
    """Bring the index at ``index_dir`` in line with the corpus folders.

    Passages whose title and text are unchanged keep their stored vectors; only
    new or changed ones are embedded. Nothing changed: no new version is written.
    """
    index_dir = Path(index_dir)
    with reindex_lock(index_dir):
        clean_temporaries(index_dir)  # what a killed run left can fill the disk
        return _reindex_locked(
            corpus_dirs,
            index_dir,
            embedder,
            vector_store,
            batch_size,
            progress,
            ann_from,
            corpus_options=corpus_options,
        )


def _reindex_locked(
    corpus_dirs: Sequence[Path],
    index_dir: Path,
    embedder: Embedder,
    vector_store: str,
    batch_size: int,
    progress: Progress | None,
    ann_from: int = ANN_FROM,
    corpus_options: LoadOptions | None = None,
) -> ReindexReport:
    report = ReindexReport()
    loaded = load_corpus(corpus_dirs, corpus_options)
    report.skipped, report.duplicates = loaded.skipped, loaded.duplicates
    if not loaded.articles:
        raise CorpusError(
            "No articles found in "
            + ", ".join(str(d) for d in corpus_dirs)
            + (f" ({len(loaded.skipped)} files skipped)" if loaded.skipped else "")
            + ". Nothing was changed."
        )

    # Nothing changed (same articles, same model, intact files): stop before cutting
    # passages or loading the previous version's vectors. Never loads the embedder's model.
    same = unchanged_version(
        index_dir, {a.doc_id: a.content_hash for a in loaded.articles}, embedder.fingerprint
    )
    if same is not None:
        report.version = report.previous_version = same.version
        report.unchanged = len(loaded.articles)
        report.passages = report.reused = same.passages
        return report

    old_vectors: dict[str, np.ndarray] = {}
    old_sentences: dict[str, list[tuple[int, int, np.ndarray]]] = {}
    old_articles: dict[str, str] = {}
    old_hashes: set[str] = set()
    previous = current_version_path(index_dir)
    if previous is not None:
        try:
            old = load_reusable(index_dir, expect_model=(embedder.name, embedder.fingerprint))
            report.previous_version = old.version
            old_vectors, old_sentences, old_articles = old.vectors, old.sentences, old.articles
            old_hashes = set(old_articles.values())
            report.damaged = old.damaged
            report.added_checksums = not old.checksummed
            if old.damaged:
                log.warning("Previous index damaged, rebuilding its files: %s", old.damaged)
        except NewsdeskError as exc:
            log.warning("Previous index not reusable, rebuilding in full: %s", exc)
            report.reason = str(exc)
    report.full_rebuild = not old_articles

    articles: list[StoredArticle] = []
    passages: list[Passage] = []
    for article in loaded.articles:
        stored = StoredArticle.of(article)
        articles.append(stored)
        for position, span in enumerate(passage_spans(article)):
            text = article.text[span.start : span.end]
            passages.append(
                Passage(
                    passage_id=len(passages),
                    doc_id=article.doc_id,
                    title=article.title,
                    text=text,
                    start=span.start,
                    position=position,
                    source=article.source,
                    url=article.url,
                    date=article.date,
                    content_hash=passage_hash(article.title, text),
                )
            )
        previous_hash = old_articles.get(article.doc_id)
        if previous_hash is None:
            report.added.append(article.doc_id)
        elif previous_hash != stored.content_hash:
            report.changed.append(article.doc_id)
        else:
            report.unchanged += 1
    current_ids = {a.doc_id for a in articles}
    report.removed = sorted(d for d in old_articles if d not in current_ids)
    report.passages = len(passages)

    to_embed = [p for p in passages if p.content_hash not in old_vectors]
    sentence_plan = plan_sentences(passages, lambda p: old_sentences.get(p.content_hash))
    texts = [p.embedding_text() for p in to_embed] + [text for _, text in sentence_plan.todo]
    vectors = embed_texts(embedder, texts, batch_size=batch_size, progress=progress)
    fresh = vectors[: len(to_embed)]
    new_vectors = {p.content_hash: v for p, v in zip(to_embed, fresh, strict=True)}
    sentences = sentence_plan.finish(vectors[len(to_embed) :], embedder.dimension)
    report.embedded = len(to_embed)
    report.sentences_embedded = len(sentence_plan.todo)
    report.reused = len(passages) - len(to_embed)

    matrix = np.zeros((len(passages), embedder.dimension), dtype=np.float32)
    for passage in passages:
        vector = new_vectors.get(passage.content_hash)
        matrix[passage.passage_id] = old_vectors[passage.content_hash] if vector is None else vector
    store = choose_store(vector_store, embedder.dimension, len(passages), ann_from)
    store.add(np.arange(len(passages), dtype=np.int64), matrix)
    lexical = LexicalIndex.build([p.embedding_text() for p in passages])

    # Only articles whose content the archive never held count as new (for alerts).
    hashes = {a.doc_id: a.content_hash for a in articles}
    fresh = [d for d in report.added if hashes[d] not in old_hashes]
    version = next_version(index_dir)
    change = Change(
        version=version,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        added=[] if report.full_rebuild else fresh,
        changed=report.changed,
        removed=report.removed,
        full_rebuild=report.full_rebuild,
    )
    write_version(
        index_dir,
        version=version,
        model=(embedder.name, embedder.fingerprint),
        articles=articles,
        passages=passages,
        vectors=matrix,
        store=store,
        lexical=lexical,
        sentences=sentences,
        change=change,
    )
    collect_garbage(index_dir)
    report.version = version
    return report
