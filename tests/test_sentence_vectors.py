"""Sentence vectors stored at index time: answering embeds only the question."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from index.build import reindex
from index.embedders.hashing import HashingEmbedder
from index.engine import Engine
from index.sentences import sentence_spans
from index.store import load_index


def test_every_passage_sentence_has_its_vector(small_corpus: Path, tmp_path: Path):
    embedder = HashingEmbedder(256)
    reindex([small_corpus], tmp_path / "idx", embedder)
    index = load_index(tmp_path / "idx")
    assert index.sentences is not None
    for passage in index.passages:
        for start, end in sentence_spans(passage.text):
            stored = index.sentences.get(passage.passage_id, start, end)
            assert stored is not None
            expected = embedder.embed([passage.text[start:end]])[0]
            assert np.allclose(stored, expected, atol=2e-3)  # stored as float16


def test_asking_embeds_only_the_question(small_corpus: Path, tmp_path: Path):
    embedder = HashingEmbedder(256)
    reindex([small_corpus], tmp_path / "idx", embedder)
    engine = Engine.create(load_index(tmp_path / "idx"), embedder, threshold=0.0)
    embedder.texts_embedded = 0
    answer = engine.ask("when does the base lease end?")
    assert answer.answered and "2042" in answer.quote
    assert embedder.texts_embedded == 1


def test_stored_and_fresh_sentence_vectors_give_the_same_answer(small_corpus, tmp_path):
    embedder = HashingEmbedder(256)
    reindex([small_corpus], tmp_path / "idx", embedder)
    index = load_index(tmp_path / "idx")
    engine = Engine.create(index, embedder, threshold=0.0)
    question = "how many troops from russia are stationed in tajikistan?"
    hits = engine.retriever.search(question, k=10)
    vector = embedder.embed([question])[0]
    stored = engine.extractor.extract(
        question, hits, index.article_text, query_vector=vector, sentence_vectors=index.sentences
    )
    fresh = engine.extractor.extract(question, hits, index.article_text)
    assert stored.answered and fresh.answered
    assert stored.quote == fresh.quote and "7,000" in stored.quote
    assert abs(stored.confidence - fresh.confidence) < 0.01


def test_unchanged_passages_keep_their_sentence_vectors(small_corpus, tmp_path, write_article):
    embedder = HashingEmbedder(256)
    reindex([small_corpus], tmp_path / "idx", embedder)
    write_article("world/new.txt", "Floods in the valley", "Rivers burst their banks on Friday.")
    embedder.texts_embedded = 0
    report = reindex([small_corpus], tmp_path / "idx", embedder)
    assert report.added == ["world/new.txt"]
    assert report.sentences_embedded == 1 and embedder.texts_embedded == 2
    index = load_index(tmp_path / "idx")
    assert index.sentences is not None
    assert len(index.sentences.spans) == sum(len(sentence_spans(p.text)) for p in index.passages)
