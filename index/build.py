"""Incremental re-index: load the corpus, embed only what changed, write a new version."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from corpus.article import Article, Skipped
from corpus.loaders import LoadOptions, load_corpus
from index.ann import VectorStore
from index.ann.policy import DEFAULT_ANN_FROM
from index.ann.policy import choose_store as _choose_store
from index.embedders.base import Embedder, LateItem
from index.errors import CorpusError, NewsdeskError
from index.lexical import LexicalIndex
from index.passages import passage_hash, passage_spans
from index.sentence_vectors import SentencePlan, SentenceVectors, plan_sentences
from index.store import Change, IndexDir, StoredArticle
from index.types import Passage

log = logging.getLogger(__name__)

ANN_FROM = DEFAULT_ANN_FROM
Progress = Callable[[int, int], None]
# How sentence vectors are made: each sentence embedded on its own ("separate"), or pooled
# from its passage's token outputs in the passage's one forward pass ("late"; a sentence
# cut off by the model's maximum sequence length is embedded on its own). The manifest
# records it; a re-index never mixes the two (a change re-makes every sentence vector).
SENTENCE_METHODS = ("separate", "late")


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
    # Of those, how many were pooled from their passage's pass (late chunking).
    sentences_pooled: int = 0
    sentence_vectors: str = "separate"
    # The previous version's sentence vectors were made another way: all made again.
    sentence_method_changed: str = ""
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
        if self.sentence_method_changed:
            lines.append(
                f"Sentence vectors made again ({self.sentence_vectors}): the previous version's "
                f"were made {self.sentence_method_changed}."
            )
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


@dataclass(slots=True)
class Job:
    """What a re-index was asked to do: the phases below read their settings from it."""

    index: IndexDir
    embedder: Embedder
    vector_store: str = "auto"
    batch_size: int = 32
    progress: Progress | None = None
    ann_from: int = ANN_FROM
    sentence_vectors: str = "separate"

    @property
    def model(self) -> tuple[str, str]:
        return (self.embedder.name, self.embedder.fingerprint)


def reindex(
    corpus_dirs: Sequence[Path],
    index_dir: Path | IndexDir,
    embedder: Embedder,
    *,
    vector_store: str = "auto",
    batch_size: int = 32,
    progress: Progress | None = None,
    ann_from: int = ANN_FROM,
    corpus_options: LoadOptions | None = None,
    sentence_vectors: str = "separate",
) -> ReindexReport:
    """Bring the index at ``index_dir`` in line with the corpus folders.

    Passages whose title and text are unchanged keep their stored vectors; only
    new or changed ones are embedded. Nothing changed: no new version is written.
    ``sentence_vectors``: how sentence vectors are made (``SENTENCE_METHODS``).
    """
    if sentence_vectors not in SENTENCE_METHODS:
        raise NewsdeskError(
            f"Unknown sentence vector method {sentence_vectors!r}: use "
            + " or ".join(SENTENCE_METHODS)
            + "."
        )
    job = Job(
        IndexDir(index_dir),
        embedder,
        vector_store,
        batch_size,
        progress,
        ann_from,
        sentence_vectors,
    )
    with job.index.lock():
        job.index.clean_temporaries()  # what a killed run left can fill the disk
        return _reindex_locked(corpus_dirs, job, corpus_options)


def _reindex_locked(
    corpus_dirs: Sequence[Path], job: Job, corpus_options: LoadOptions | None
) -> ReindexReport:
    """The phases of a re-index: load, diff, embed, build, write."""
    loaded = load_corpus(corpus_dirs, corpus_options)
    report = ReindexReport(skipped=loaded.skipped, duplicates=loaded.duplicates)
    if not loaded.articles:
        raise CorpusError(
            "No articles found in "
            + ", ".join(str(d) for d in corpus_dirs)
            + (f" ({len(loaded.skipped)} files skipped)" if loaded.skipped else "")
            + ". Nothing was changed."
        )
    # Nothing changed (same articles, same model, intact files): stop before cutting
    # passages or loading the previous version's vectors. Never loads the embedder's model.
    same = job.index.unchanged(
        {a.doc_id: a.content_hash for a in loaded.articles},
        job.embedder.fingerprint,
        job.sentence_vectors,
    )
    if same is not None:
        report.version = report.previous_version = same.version
        report.unchanged = len(loaded.articles)
        report.passages = report.reused = same.passages
        return report

    previous = load_previous(job)
    diff = diff_articles(loaded.articles, previous)
    embedded = embed_new(job, diff.passages, previous)
    built = build_structures(job, diff.passages, previous, embedded)
    report.version = write_new_version(job, diff, built, full_rebuild=previous.empty)

    report.previous_version = previous.version
    report.reason = previous.reason
    report.damaged = previous.damaged
    report.added_checksums = previous.added_checksums
    report.full_rebuild = previous.empty
    report.added, report.changed, report.removed = diff.added, diff.changed, diff.removed
    report.unchanged = diff.unchanged
    report.passages = len(diff.passages)
    report.embedded = len(embedded.passages)
    report.sentences_embedded = len(embedded.plan.todo)
    report.sentences_pooled = embedded.pooled
    report.sentence_vectors = job.sentence_vectors
    if not previous.empty and previous.sentence_vectors != job.sentence_vectors:
        report.sentence_method_changed = previous.sentence_vectors
    report.reused = len(diff.passages) - len(embedded.passages)
    return report


# ---- 1. load: what the previous version can give ----------------------------------------


@dataclass(slots=True)
class Previous:
    """The current version before this run, as far as it can be reused (``empty``: nothing,
    a full rebuild; ``reason`` says why when there was a version)."""

    version: str | None = None
    articles: dict[str, str] = field(default_factory=dict)  # doc id -> content hash
    vectors: dict[str, np.ndarray] = field(default_factory=dict)  # passage hash -> vector
    sentences: dict[str, list[tuple[int, int, np.ndarray]]] = field(default_factory=dict)
    damaged: dict[str, str] = field(default_factory=dict)  # file -> what is wrong
    added_checksums: bool = False  # it had none: this run writes them
    reason: str = ""
    sentence_vectors: str = "separate"  # how its sentence vectors were made

    @property
    def empty(self) -> bool:
        return not self.articles


def load_previous(job: Job) -> Previous:
    """The previous version's articles and reusable vectors. One that cannot be reused
    (another model or format, a damaged article or passage list) means a full rebuild."""
    if job.index.current() is None:
        return Previous()
    try:
        old = job.index.reusable(expect_model=job.model)
    except NewsdeskError as exc:
        log.warning("Previous index not reusable, rebuilding in full: %s", exc)
        return Previous(reason=str(exc))
    if old.damaged:
        log.warning("Previous index damaged, rebuilding its files: %s", old.damaged)
    return Previous(
        old.version,
        old.articles,
        old.vectors,
        old.sentences,
        old.damaged,
        added_checksums=not old.checksummed,
        sentence_vectors=old.sentence_vectors,
    )


# ---- 2. diff: the corpus against the previous version -----------------------------------


@dataclass(slots=True)
class Diff:
    """The new version's articles and passages, and how they differ from the previous."""

    articles: list[StoredArticle]
    passages: list[Passage]
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    # Added articles whose content the archive never held (for alerts).
    new: list[str] = field(default_factory=list)


def diff_articles(corpus: Sequence[Article], previous: Previous) -> Diff:
    """Cut every article into passages and sort the articles into added, changed, removed
    and unchanged (by content hash)."""
    diff = Diff([], [])
    for article in corpus:
        stored = StoredArticle.of(article)
        diff.articles.append(stored)
        diff.passages.extend(_passages_of(article, first_id=len(diff.passages)))
        previous_hash = previous.articles.get(article.doc_id)
        if previous_hash is None:
            diff.added.append(article.doc_id)
        elif previous_hash != stored.content_hash:
            diff.changed.append(article.doc_id)
        else:
            diff.unchanged += 1
    current_ids = {a.doc_id for a in diff.articles}
    diff.removed = sorted(d for d in previous.articles if d not in current_ids)
    old_hashes = set(previous.articles.values())
    hashes = {a.doc_id: a.content_hash for a in diff.articles}
    diff.new = [d for d in diff.added if hashes[d] not in old_hashes]
    return diff


def _passages_of(article: Article, *, first_id: int) -> list[Passage]:
    passages = []
    for position, span in enumerate(passage_spans(article)):
        text = article.text[span.start : span.end]
        passages.append(
            Passage(
                passage_id=first_id + position,
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
    return passages


# ---- 3. embed: only the texts the previous version has no vector for ---------------------


@dataclass(slots=True)
class Embedded:
    """The vectors of new passages and new sentences (the others are reused)."""

    passages: list[Passage]  # the passages embedded
    vectors: dict[str, np.ndarray]  # their content hash -> vector
    plan: SentencePlan  # every sentence: reused or embedded
    sentence_vectors: np.ndarray  # the vectors of ``plan.todo``, in order
    pooled: int = 0  # how many of them were pooled from their passage's pass (late)


def embed_new(job: Job, passages: list[Passage], previous: Previous) -> Embedded:
    """Embed, in one job, the passages and sentences the previous version has no vector for.
    Sentence vectors made another way than this job's are never reused."""
    to_embed = [p for p in passages if p.content_hash not in previous.vectors]
    same_method = previous.sentence_vectors == job.sentence_vectors
    plan = plan_sentences(
        passages, lambda p: previous.sentences.get(p.content_hash) if same_method else None
    )
    if job.sentence_vectors == "late":
        return _embed_late(job, passages, to_embed, plan)
    texts = [p.embedding_text() for p in to_embed] + [text for _, text in plan.todo]
    vectors = embed_texts(job.embedder, texts, batch_size=job.batch_size, progress=job.progress)
    fresh = vectors[: len(to_embed)]
    by_hash = {p.content_hash: v for p, v in zip(to_embed, fresh, strict=True)}
    return Embedded(to_embed, by_hash, plan, vectors[len(to_embed) :])


def _embed_late(
    job: Job, passages: list[Passage], to_embed: list[Passage], plan: SentencePlan
) -> Embedded:
    """Late chunking: one pass over each passage that needs a vector or has sentences to
    embed, pooling its sentences' vectors from that pass's token outputs; the sentences it
    could not pool (cut off at the model's maximum sequence length) are embedded on their
    own afterwards. Each distinct passage text is embedded once."""
    todo_of: dict[int, list[int]] = {}  # passage id -> indices into plan.todo
    for k, (row, _) in enumerate(plan.todo):
        todo_of.setdefault(plan.spans[row][0], []).append(k)
    run = {p.passage_id: p for p in to_embed}
    for passage_id in todo_of:
        run.setdefault(passage_id, passages[passage_id])
    items: dict[tuple[str, tuple[tuple[int, int], ...]], LateItem] = {}
    keys: dict[int, tuple[str, tuple[tuple[int, int], ...]]] = {}
    for passage_id, passage in run.items():
        shift = len(passage.title) + 1 if passage.title else 0
        spans = tuple(
            (plan.spans[plan.todo[k][0]][1] + shift, plan.spans[plan.todo[k][0]][2] + shift)
            for k in todo_of.get(passage_id, [])
        )
        key = (passage.embedding_text(), spans)
        items.setdefault(key, key)
        keys[passage_id] = key
    unique = list(items)
    order = sorted(range(len(unique)), key=lambda i: -len(unique[i][0]))
    chunks = [
        [unique[i] for i in order[begin : begin + EMBED_CHUNK]]
        for begin in range(0, len(order), EMBED_CHUNK)
    ]
    dimension = job.embedder.dimension
    text_vectors: dict[tuple[str, tuple[tuple[int, int], ...]], np.ndarray] = {}
    span_vectors: dict[tuple[str, tuple[tuple[int, int], ...]], tuple[np.ndarray, np.ndarray]] = {}
    done = 0
    if job.progress:
        job.progress(0, len(unique))
    for chunk, late in zip(
        chunks, job.embedder.embed_late_chunks(chunks, batch_size=job.batch_size), strict=True
    ):
        row = 0
        for i, key in enumerate(chunk):
            count = len(key[1])
            text_vectors[key] = late.texts[i]
            span_vectors[key] = (late.spans[row : row + count], late.pooled[row : row + count])
            row += count
        done += len(chunk)
        if job.progress:
            job.progress(done, len(unique))
    sentences = np.zeros((len(plan.todo), dimension), dtype=np.float32)
    missing: list[int] = []  # indices into plan.todo not pooled
    for passage_id, indices in todo_of.items():
        vectors, pooled = span_vectors[keys[passage_id]]
        for k, vector, ok in zip(indices, vectors, pooled, strict=True):
            if ok:
                sentences[k] = vector
            else:
                missing.append(k)
    if missing:
        texts = [plan.todo[k][1] for k in missing]
        sentences[missing] = embed_texts(job.embedder, texts, batch_size=job.batch_size)
    by_hash = {p.content_hash: text_vectors[keys[p.passage_id]] for p in to_embed}
    return Embedded(to_embed, by_hash, plan, sentences, len(plan.todo) - len(missing))


# ---- 4. build: the vector store, BM25 and the sentence vectors ---------------------------


@dataclass(slots=True)
class Built:
    """The new version's search structures, ready to write."""

    matrix: np.ndarray  # row = passage id
    store: VectorStore
    lexical: LexicalIndex
    sentences: SentenceVectors


def build_structures(
    job: Job, passages: list[Passage], previous: Previous, embedded: Embedded
) -> Built:
    """Assemble the passage matrix (new vectors, else reused ones) and build on it."""
    dimension = job.embedder.dimension
    sentences = embedded.plan.finish(embedded.sentence_vectors, dimension)
    matrix = np.zeros((len(passages), dimension), dtype=np.float32)
    for passage in passages:
        vector = embedded.vectors.get(passage.content_hash)
        matrix[passage.passage_id] = (
            previous.vectors[passage.content_hash] if vector is None else vector
        )
    store = choose_store(job.vector_store, dimension, len(passages), job.ann_from)
    store.add(np.arange(len(passages), dtype=np.int64), matrix)
    lexical = LexicalIndex.build([p.embedding_text() for p in passages])
    return Built(matrix, store, lexical, sentences)


# ---- 5. write: the version, its change log entry, the swap ------------------------------


def write_new_version(job: Job, diff: Diff, built: Built, *, full_rebuild: bool) -> str:
    """Write the new version, log it, make it current, drop old versions; its name."""
    version = job.index.next_version()
    change = Change(
        version=version,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        added=[] if full_rebuild else diff.new,
        changed=diff.changed,
        removed=diff.removed,
        full_rebuild=full_rebuild,
    )
    job.index.write_version(
        version=version,
        model=job.model,
        articles=diff.articles,
        passages=diff.passages,
        vectors=built.matrix,
        store=built.store,
        lexical=built.lexical,
        sentences=built.sentences,
        change=change,
        sentence_vectors=job.sentence_vectors,
    )
    job.index.collect_garbage()
    return version
