"""Passage splitting: paragraph-based, short ones merged, long ones split at sentences."""

from __future__ import annotations

from corpus.article import Article
from index.passages import MAX_CHARS, MIN_CHARS, passage_hash, passage_spans


def article_of(*paragraphs: str) -> Article:
    text = "\n\n".join(paragraphs)
    return Article(doc_id="a", title="T", text=text, paragraphs=tuple(paragraphs))


def sentence(i: int, words: int = 12) -> str:
    return f"Sentence number {i} says " + " ".join(["something"] * words) + "."


def test_each_ordinary_paragraph_is_one_passage():
    paragraphs = [" ".join(sentence(i * 10 + j) for j in range(3)) for i in range(3)]
    assert all(MIN_CHARS <= len(p) <= MAX_CHARS for p in paragraphs)
    article = article_of(*paragraphs)
    spans = passage_spans(article)
    assert [article.text[s.start : s.end] for s in spans] == paragraphs


def test_short_paragraphs_are_merged_with_a_neighbour():
    long = " ".join(sentence(j) for j in range(3))
    article = article_of("DUSHANBE (TCA) — Short lead.", long, "Tiny tail.")
    spans = passage_spans(article)
    texts = [article.text[s.start : s.end] for s in spans]
    assert len(texts) == 1
    assert texts[0].startswith("DUSHANBE") and texts[0].endswith("Tiny tail.")


def test_long_paragraph_is_split_at_sentence_boundaries():
    huge = " ".join(sentence(j, words=20) for j in range(30))
    article = article_of(huge)
    spans = passage_spans(article)
    assert len(spans) > 1
    for span in spans:
        piece = article.text[span.start : span.end]
        assert len(piece) <= MAX_CHARS
        assert piece.startswith("Sentence number") and piece.endswith(".")
    covered = "".join(article.text[s.start : s.end] for s in spans).replace(" ", "")
    assert covered == huge.replace(" ", "")


def test_passages_are_exact_substrings_in_order():
    paragraphs = ["Alpha.", sentence(1) * 3, "Beta gamma.", sentence(2, words=300)]
    article = article_of(*paragraphs)
    last = -1
    for span in passage_spans(article):
        assert span.start > last
        assert article.text[span.start : span.end].strip() == article.text[span.start : span.end]
        last = span.start


def test_passage_hash_changes_with_title_or_text():
    assert passage_hash("A", "x") == passage_hash("A", "x")
    assert passage_hash("A", "x") != passage_hash("B", "x")
    assert passage_hash("A", "x") != passage_hash("A", "y")
