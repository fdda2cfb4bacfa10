"""Cutting articles into passages: paragraph-based, short ones merged, long ones split."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from corpus.article import Article
from index.sentences import sentence_spans

MIN_CHARS = 200
MAX_CHARS = 900


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int


def _paragraph_spans(article: Article) -> list[Span]:
    spans: list[Span] = []
    cursor = 0
    for paragraph in article.paragraphs or (article.text,):
        start = article.text.find(paragraph, cursor)
        if start < 0 or not paragraph.strip():
            continue
        spans.append(Span(start, start + len(paragraph)))
        cursor = start + len(paragraph)
    return spans


def _split_long(text: str, span: Span) -> list[Span]:
    """Split a long paragraph at sentence boundaries into pieces of at most MAX_CHARS."""
    sentences = [
        Span(span.start + s, span.start + e) for s, e in sentence_spans(text[span.start : span.end])
    ]
    if not sentences:
        return [span]
    pieces: list[Span] = []
    current = sentences[0]
    for sentence in sentences[1:]:
        if sentence.end - current.start > MAX_CHARS:
            pieces.append(current)
            current = sentence
        else:
            current = Span(current.start, sentence.end)
    pieces.append(current)
    return pieces


def passage_spans(article: Article) -> list[Span]:
    """Character spans of an article's passages, in order, covering its paragraphs."""
    pieces: list[Span] = []
    for span in _paragraph_spans(article):
        if span.end - span.start > MAX_CHARS:
            pieces.extend(_split_long(article.text, span))
        else:
            pieces.append(span)
    merged: list[Span] = []
    for piece in pieces:
        if merged and (
            (merged[-1].end - merged[-1].start) < MIN_CHARS or (piece.end - piece.start) < MIN_CHARS
        ):
            candidate = Span(merged[-1].start, piece.end)
            if candidate.end - candidate.start <= MAX_CHARS:
                merged[-1] = candidate
                continue
        merged.append(piece)
    return merged


def passage_hash(title: str, text: str) -> str:
    """Identity of a passage's embedding input: unchanged hash, unchanged vector."""
    return hashlib.sha256(f"{title}\n{text}".encode()).hexdigest()[:32]
