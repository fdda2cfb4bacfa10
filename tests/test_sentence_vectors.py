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


# ---- late chunking: sentence vectors pooled from their passage's one pass ----------------------


def _manifest(index_dir: Path) -> dict:
    import json

    return json.loads((index_dir / "current" / "manifest.json").read_text())


def test_pooling_maps_character_spans_onto_tokens():
    from index.embedders.late import pool_spans

    # "[CLS] Rain fell . Then sun [SEP]" over "Rain fell. Then sun"
    offsets = [(0, 0), (0, 4), (5, 9), (9, 10), (11, 15), (16, 19), (0, 0)]
    tokens = np.eye(7, dtype=np.float32) * np.arange(1, 8, dtype=np.float32)[:, None]
    vectors, pooled = pool_spans(tokens, offsets, [(0, 10), (11, 19), (3, 3)])
    assert pooled.tolist() == [True, True, False]  # an empty span holds no token
    first = np.zeros(7, np.float32)
    first[[1, 2, 3]] = [2, 3, 4]  # tokens 1-3, never the special ones
    assert np.allclose(vectors[0], first / np.linalg.norm(first))
    second = np.zeros(7, np.float32)
    second[[4, 5]] = [5, 6]
    assert np.allclose(vectors[1], second / np.linalg.norm(second))
    # the text cut after "Then": a span no seen token follows may be cut off, not pooled
    cut_vectors, cut = pool_spans(tokens[:5], offsets[:5], [(0, 10), (11, 19)], truncated=True)
    assert cut.tolist() == [True, False] and np.allclose(cut_vectors[0], vectors[0])
    # not cut: a span ending in what yields no token (a hashing embedder's ".") is whole
    _, whole = pool_spans(tokens[:3], offsets[:3], [(0, 10)])
    assert whole.tolist() == [True]


def test_late_sentence_vectors_are_pooled_from_the_right_words(small_corpus, tmp_path):
    # The hashing embedder's token outputs are context-free, so a sentence pooled inside its
    # passage (title first) must equal the same sentence pooled on its own: any offset slip
    # (the title, the newline, stripped spaces) would pool other words.
    embedder = HashingEmbedder(256)
    report = reindex([small_corpus], tmp_path / "idx", embedder, sentence_vectors="late")
    assert report.sentences_pooled == report.sentences_embedded > 0
    index = load_index(tmp_path / "idx")
    assert index.sentences is not None
    checked = 0
    for passage in index.passages:
        assert passage.title  # the title shifts every span
        for start, end, stored in index.sentences.of_passage(passage.passage_id):
            sentence = passage.text[start:end]
            alone = embedder.embed_late([(sentence, [(0, len(sentence))])]).spans[0]
            assert np.allclose(stored, alone, atol=2e-3)  # stored as float16
            checked += 1
    assert checked == len(index.sentences.spans)
    # passage vectors are what ``embed`` gives, as with separate sentence vectors
    vectors = np.asarray(index.vector_matrix())
    expected = embedder.embed([p.embedding_text() for p in index.passages])
    assert np.allclose(vectors, expected, atol=1e-6)


def test_sentences_cut_off_by_the_model_are_embedded_on_their_own(write_article, tmp_path):
    corpus = write_article("x/storm.txt", "Storm", "Rain fell. Wind blew hard. Trees fell.").parent
    embedder = HashingEmbedder(256, max_tokens=5)  # sees "Storm Rain fell Wind blew"
    report = reindex([corpus], tmp_path / "idx", embedder, sentence_vectors="late")
    assert (report.sentences_embedded, report.sentences_pooled) == (3, 1)
    index = load_index(tmp_path / "idx")
    assert index.sentences is not None
    rows = index.sentences.of_passage(0)
    text = index.passages[0].text
    pooled = embedder.embed_late([("Rain fell.", [(0, 10)])]).spans[0]
    assert np.allclose(rows[0][2], pooled, atol=2e-3)  # wholly seen, with a token after it
    for start, end, stored in rows[1:]:  # cut off: embedded on their own
        assert np.allclose(stored, embedder.embed([text[start:end]])[0], atol=2e-3)


def test_the_manifest_records_how_sentence_vectors_were_made(small_corpus, tmp_path):
    reindex([small_corpus], tmp_path / "sep", HashingEmbedder(256))
    reindex([small_corpus], tmp_path / "late", HashingEmbedder(256), sentence_vectors="late")
    assert _manifest(tmp_path / "sep")["sentence_vectors"] == "separate"
    assert _manifest(tmp_path / "late")["sentence_vectors"] == "late"
    assert load_index(tmp_path / "late").manifest.sentence_vectors == "late"


def test_a_method_change_makes_every_sentence_vector_again(small_corpus, tmp_path):
    embedder = HashingEmbedder(256)
    first = reindex([small_corpus], tmp_path / "idx", embedder)
    # same corpus, another method: not "up to date"; passage vectors reused, sentences remade
    embedder.texts_embedded = 0
    report = reindex([small_corpus], tmp_path / "idx", embedder, sentence_vectors="late")
    assert report.wrote_new_version and report.embedded == 0 and report.reused == first.passages
    assert report.sentences_embedded == first.sentences_embedded
    assert report.sentences_pooled == report.sentences_embedded
    assert report.sentence_method_changed == "separate"
    assert "made again (late)" in report.summary(tmp_path / "idx")
    assert _manifest(tmp_path / "idx")["sentence_vectors"] == "late"
    # again with the same method: up to date, nothing embedded
    again = reindex([small_corpus], tmp_path / "idx", embedder, sentence_vectors="late")
    assert not again.wrote_new_version
    # and back: every sentence embedded separately again, none pooled
    back = reindex([small_corpus], tmp_path / "idx", embedder)
    assert back.sentences_embedded == first.sentences_embedded and back.sentences_pooled == 0
    index = load_index(tmp_path / "idx")
    assert index.manifest.sentence_vectors == "separate" and index.sentences is not None
    for passage in index.passages:
        for start, end, stored in index.sentences.of_passage(passage.passage_id):
            expected = embedder.embed([passage.text[start:end]])[0]
            assert np.allclose(stored, expected, atol=2e-3)


def test_late_incremental_reindex_embeds_only_new_passages(small_corpus, tmp_path, write_article):
    embedder = HashingEmbedder(256)
    reindex([small_corpus], tmp_path / "idx", embedder, sentence_vectors="late")
    write_article("world/new.txt", "Floods in the valley", "Rivers burst their banks on Friday.")
    embedder.texts_embedded = 0
    report = reindex([small_corpus], tmp_path / "idx", embedder, sentence_vectors="late")
    assert report.added == ["world/new.txt"] and report.embedded == 1
    assert report.sentences_embedded == report.sentences_pooled == 1
    assert embedder.texts_embedded == 1  # the new passage, once: no pass for its sentence


def test_an_unknown_sentence_method_is_refused(small_corpus, tmp_path):
    import pytest

    from index.errors import NewsdeskError

    with pytest.raises(NewsdeskError, match="separate or late"):
        reindex([small_corpus], tmp_path / "idx", HashingEmbedder(64), sentence_vectors="x")
