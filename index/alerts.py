"""Topic alerts: which new articles match which subscribed topics, and with what quote.

A topic is embedded once; an article's score is the cosine of the topic with the
article's best passage, using the passage vectors already stored in the index
(so matching new articles costs one embedding per topic, plus a few sentences to
pick the quote). A match needs ``score >= threshold``; the default threshold was
calibrated on the shared corpus with ``scripts/calibrate_alerts.py`` (see
docs/alerts.md). The quote is the passage's sentence most similar to the topic,
and is always an exact substring of the article's text.

``process_new_versions`` ties it to the change log and the subscription store:
it matches the genuinely new articles of the versions after the store's cursor
and queues the alerts and the new cursor in one transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import numpy as np

from index.embedders.base import Embedder
from index.errors import IndexMismatchError
from index.sentences import sentence_spans
from index.store import Change, LoadedIndex, read_changes
from index.subscriptions import Alert, Subscription, SubscriptionStore
from index.types import Passage

log = logging.getLogger(__name__)

# Calibrated for all-MiniLM-L6-v2 on ../shared/corpus (docs/alerts.md); another model
# needs its own (``AlertMatcher(embedder, threshold)``).
DEFAULT_THRESHOLD = 0.38
MAX_QUOTE_CHARS = 400
MIN_QUOTE_CHARS = 25


def _check_model(embedder: Embedder, index: LoadedIndex) -> None:
    if index.manifest.model_fingerprint != embedder.fingerprint:
        raise IndexMismatchError(
            f"The index at {index.path} was built with model {index.manifest.model_name!r}; "
            f"topics cannot be matched with {embedder.name!r}."
        )


class AlertMatcher:
    """Scores articles against topics with an embedder and the index's stored vectors."""

    def __init__(self, embedder: Embedder, threshold: float = DEFAULT_THRESHOLD) -> None:
        self.embedder = embedder
        self.threshold = threshold

    def embed_topics(self, topics: Sequence[str]) -> dict[str, np.ndarray]:
        """Each distinct topic text embedded once."""
        unique = list(dict.fromkeys(topics))
        if not unique:
            return {}
        vectors = self.embedder.embed(unique)
        return dict(zip(unique, vectors, strict=True))

    def article_scores(
        self, topic_vectors: np.ndarray, doc_ids: Sequence[str], index: LoadedIndex
    ) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Best-passage cosine of each topic (rows) with each article (columns).

        Returns (doc ids that have passages, scores, passage id of each best passage).
        """
        _check_model(self.embedder, index)
        wanted = set(doc_ids)
        by_doc: dict[str, list[int]] = {}
        for passage in index.passages:
            if passage.doc_id in wanted:
                by_doc.setdefault(passage.doc_id, []).append(passage.passage_id)
        docs = [d for d in dict.fromkeys(doc_ids) if d in by_doc]
        if not docs or len(topic_vectors) == 0:
            empty = np.zeros((len(topic_vectors), len(docs)), dtype=np.float32)
            return docs, empty, np.zeros_like(empty, dtype=np.int64)
        rows = np.concatenate([np.asarray(by_doc[d], dtype=np.int64) for d in docs])
        matrix = np.asarray(index.vector_matrix()[rows], dtype=np.float32)
        sims = np.asarray(topic_vectors, dtype=np.float32) @ matrix.T  # (topics, passages)
        scores = np.empty((len(topic_vectors), len(docs)), dtype=np.float32)
        best = np.empty((len(topic_vectors), len(docs)), dtype=np.int64)
        offset = 0
        for j, doc in enumerate(docs):
            n = len(by_doc[doc])
            block = sims[:, offset : offset + n]
            arg = block.argmax(axis=1)
            scores[:, j] = block[np.arange(len(block)), arg]
            best[:, j] = rows[offset + arg]
            offset += n
        return docs, scores, best

    def match(
        self,
        topics: Sequence[Subscription],
        new_doc_ids: Sequence[str],
        index: LoadedIndex,
    ) -> list[Alert]:
        """Every (topic, new article) pair scoring at least the threshold, best first."""
        if not topics or not new_doc_ids:
            return []
        vectors = self.embed_topics([t.topic for t in topics])
        texts = list(vectors)
        docs, scores, best = self.article_scores(
            np.stack([vectors[t] for t in texts]), new_doc_ids, index
        )
        row_of = {t: i for i, t in enumerate(texts)}
        quotes: dict[tuple[str, int], tuple[str, int] | None] = {}
        matches: list[Alert] = []
        for topic in topics:
            i = row_of[topic.topic]
            for j, doc in enumerate(docs):
                score = float(scores[i, j])
                if score < self.threshold:
                    continue
                pid = int(best[i, j])
                key = (topic.topic, pid)
                if key not in quotes:
                    quotes[key] = self.quote(vectors[topic.topic], index.passages[pid], index)
                found = quotes[key]
                if found is None:
                    continue
                quote, start = found
                matches.append(self._make(index, doc, topic.topic, quote, start, score, pid, topic))
        matches.sort(key=lambda m: (-m.score, m.doc_id, m.subscription_id or 0))
        return matches

    def preview(
        self,
        topic: str,
        index: LoadedIndex,
        k: int = 3,
        *,
        min_score: float | None = None,
    ) -> list[Alert]:
        """The ``k`` archive articles that best match a topic (at least ``min_score``,
        by default the threshold: an empty list means nothing would have matched)."""
        _check_model(self.embedder, index)
        floor = self.threshold if min_score is None else min_score
        if not index.passages or k <= 0:
            return []
        vector = self.embedder.embed([topic])[0]
        depth = min(len(index.passages), max(50, 20 * k))
        scores, ids = index.vectors.search(vector[None, :], depth)
        seen: dict[str, tuple[float, int]] = {}
        for score, pid in zip(scores[0], ids[0], strict=True):
            if pid < 0 or score < floor:
                continue
            doc = index.passages[int(pid)].doc_id
            if doc not in seen:
                seen[doc] = (float(score), int(pid))
            if len(seen) >= k:
                break
        out = []
        for doc, (score, pid) in seen.items():
            found = self.quote(vector, index.passages[pid], index)
            if found is None:
                continue
            quote, start = found
            out.append(self._make(index, doc, topic, quote, start, score, pid, None))
        return out

    def quote(
        self, topic_vector: np.ndarray, passage: Passage, index: LoadedIndex
    ) -> tuple[str, int] | None:
        """The passage's sentence closest to the topic: (quote, offset in the article).

        None when the passage does not line up with the article (a damaged index):
        no quote rather than a misquote.
        """
        article = index.article_text(passage.doc_id)
        spans = sentence_spans(passage.text) or [(0, len(passage.text))]
        long_enough = [s for s in spans if s[1] - s[0] >= MIN_QUOTE_CHARS]
        spans = long_enough or spans
        if len(spans) == 1:
            start, end = spans[0]
        else:
            vectors = self.embedder.embed([passage.text[s:e] for s, e in spans])
            start, end = spans[int(np.argmax(vectors @ topic_vector))]
        start, end = _cap(passage.text, start, end)
        absolute = passage.start + start
        quote = article[absolute : absolute + (end - start)]
        if not quote or quote != passage.text[start:end]:
            absolute = article.find(passage.text[start:end])
            quote = passage.text[start:end]
            if absolute < 0 or not quote:
                log.warning("No verbatim quote for %s: passage and article differ", passage.doc_id)
                return None
        return quote, absolute

    def _make(
        self,
        index: LoadedIndex,
        doc: str,
        topic: str,
        quote: str,
        start: int,
        score: float,
        pid: int,
        sub: Subscription | None,
    ) -> Alert:
        art = index.articles[doc]
        return Alert(
            topic=topic,
            doc_id=doc,
            title=art.title,
            source=art.source,
            url=art.url,
            date=art.date,
            quote=quote,
            score=round(score, 4),
            subscription_id=sub.id if sub else None,
            chat_id=sub.chat_id if sub else None,
            quote_start=start,
            passage_id=pid,
            version=index.version,
        )


def _cap(text: str, start: int, end: int, limit: int = MAX_QUOTE_CHARS) -> tuple[int, int]:
    """Shorten a too-long sentence at a word boundary (it stays a verbatim substring)."""
    if end - start <= limit:
        return start, end
    cut = text.rfind(" ", start, start + limit)
    end = cut if cut > start + limit // 2 else start + limit
    return start, len(text[:end].rstrip())


@dataclass(slots=True)
class ProcessReport:
    """What one pass over the change log did."""

    cursor_before: str | None
    cursor_after: str | None
    versions: list[str] = field(default_factory=list)
    new_articles: list[str] = field(default_factory=list)
    matches: list[Alert] = field(default_factory=list)
    queued: int = 0
    waiting_for_index: bool = False


def _when(stamp: str) -> datetime | None:
    try:
        return datetime.fromisoformat(stamp)
    except (TypeError, ValueError):
        return None


def new_articles(changes: Sequence[Change], index: LoadedIndex) -> dict[str, Change]:
    """Articles genuinely new in these versions and still in ``index``: doc id -> its change.

    Full rebuilds add nothing; changed articles and duplicates of known content are
    not in ``added`` to begin with (the re-index decides that).
    """
    out: dict[str, Change] = {}
    for change in changes:
        if change.full_rebuild:
            continue
        for doc in change.added:
            if doc in index.articles and doc not in out:
                out[doc] = change
    return out


def pending_changes(
    changes: Sequence[Change], cursor: str | None, upto: str | None = None
) -> list[Change]:
    """The change-log entries after ``cursor``, up to and including version ``upto``.

    ``upto`` is the version of the index in memory: later entries name articles
    it does not hold yet, so they wait for the next call. A cursor missing from
    the log (the index was deleted and rebuilt) resumes after the log's last full
    rebuild; a cursor of None (first run) starts at the beginning.
    """
    versions = [c.version for c in changes]
    if cursor is None:
        start = 0
    elif cursor in versions:
        start = versions.index(cursor) + 1
    else:
        rebuilds = [i for i, c in enumerate(changes) if c.full_rebuild]
        start = rebuilds[-1] if rebuilds else 0
    end = len(changes)
    if upto is not None:
        if upto not in versions:
            return []
        end = versions.index(upto) + 1
    return list(changes[start:end])


def process_new_versions(
    store: SubscriptionStore,
    index_dir: Path,
    index: LoadedIndex,
    matcher: AlertMatcher,
    *,
    changes: Sequence[Change] | None = None,
) -> ProcessReport:
    """Match the articles added since the store's cursor and queue their alerts.

    Only versions up to ``index.version`` are processed (later ones wait until the
    caller has loaded them). A topic is only alerted for versions made after it was
    subscribed. Alerts (one per chat and article: the best-scoring topic) and the
    new cursor are written in one transaction; if another process moved the cursor
    meanwhile, nothing is written and ``AlertStateError`` is raised.
    """
    changes = read_changes(index_dir) if changes is None else changes
    cursor = store.cursor()
    todo = pending_changes(changes, cursor, upto=index.version)
    report = ProcessReport(cursor, cursor)
    versions = [c.version for c in changes]
    report.waiting_for_index = bool(versions) and index.version != versions[-1]
    if not todo:
        return report
    report.versions = [c.version for c in todo]
    report.cursor_after = todo[-1].version
    fresh = new_articles(todo, index)
    report.new_articles = list(fresh)
    subs = store.active() if fresh else []
    matches = matcher.match(subs, list(fresh), index) if subs else []
    created = {s.id: _when(s.created_at) for s in subs}
    best: dict[tuple[int, str], Alert] = {}
    for m in matches:
        assert m.chat_id is not None and m.subscription_id is not None
        since = created.get(m.subscription_id)
        made = _when(fresh[m.doc_id].created_at)
        if since is not None and made is not None and made < since.replace(microsecond=0):
            continue  # the article was indexed before the topic was subscribed
        key = (m.chat_id, m.doc_id)
        if key not in best or m.score > best[key].score:
            best[key] = replace(m, version=fresh[m.doc_id].version)
    report.matches = sorted(best.values(), key=lambda m: (m.chat_id or 0, -m.score, m.doc_id))
    report.queued = store.enqueue(
        report.matches, expected_cursor=cursor, new_cursor=report.cursor_after
    )
    log.info(
        "Alerts: versions %s..%s, %d new articles, %d matches, %d queued",
        report.versions[0],
        report.versions[-1],
        len(fresh),
        len(report.matches),
        report.queued,
    )
    return report
