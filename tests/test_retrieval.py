"""Retrieval: BM25, dense and reciprocal-rank fusion over a small index."""

from __future__ import annotations

from pathlib import Path

import pytest

from index.build import reindex
from index.lexical import LexicalIndex, tokenize
from index.retriever import Retriever
from index.store import load_index


@pytest.fixture
def retriever(small_corpus: Path, tmp_path: Path, fake_embedder) -> Retriever:
    reindex([small_corpus], tmp_path / "idx", fake_embedder)
    return Retriever(load_index(tmp_path / "idx"), fake_embedder)


def test_tokenizer_stems_and_drops_stopwords():
    assert tokenize("When does the base lease end?") == ["base", "leas", "end"]
    assert tokenize("Troops’ stationed") == ["troop", "station"]


def test_bm25_finds_the_passage_with_the_rare_words(retriever: Retriever):
    hits = retriever.search("calculations a second in servers", k=3, mode="bm25")
    assert hits[0].passage.doc_id == "tech/chip.txt"
    assert hits[0].lexical_score and hits[0].dense_score is None


def test_dense_ranks_by_cosine(retriever: Retriever):
    hits = retriever.search("Nacho Novo scored for Rangers", k=3, mode="dense")
    assert hits[0].passage.doc_id == "sport/match.txt"
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    assert hits == sorted(hits, key=lambda h: -h.score)


def test_hybrid_fuses_both_rankings(retriever: Retriever):
    hits = retriever.search("when does the base lease end", k=5, mode="hybrid")
    assert hits[0].passage.doc_id == "tca/base.txt"
    top = hits[0]
    assert top.dense_score is not None and top.lexical_score is not None
    assert top.score <= 2 / (retriever.rrf_k + 1) + 1e-9


def test_query_with_only_unknown_words_returns_no_lexical_hits():
    lexical = LexicalIndex.build(["alpha beta", "gamma delta"])
    assert lexical.search("zzzz qqqq", 5) == []
    assert lexical.search("gamma", 5)[0][0] == 1


def test_lexical_index_round_trips(tmp_path: Path):
    lexical = LexicalIndex.build(["alpha beta", "gamma delta", "beta gamma"])
    lexical.save(tmp_path)
    again = LexicalIndex.load(tmp_path)
    assert again.search("beta", 5) == lexical.search("beta", 5)


def test_ask_prefers_the_article_a_reply_is_about(small_corpus: Path, tmp_path: Path):
    from index.embedders.hashing import HashingEmbedder
    from index.engine import Engine

    embedder = HashingEmbedder(256)
    reindex([small_corpus], tmp_path / "idx", embedder)
    engine = Engine.create(load_index(tmp_path / "idx"), embedder)
    within = engine.retriever.within("how many troops", "tca/base.txt", k=5)
    assert within and {h.passage.doc_id for h in within} == {"tca/base.txt"}
    answer = engine.ask("how many troops are stationed there?", prefer_doc_ids=["tca/base.txt"])
    assert answer.answered and "7,000" in answer.quote
    assert answer.passage is not None and answer.passage.doc_id == "tca/base.txt"
    ids = [h.passage.passage_id for h in answer.hits]
    assert len(ids) == len(set(ids))


def test_a_digest_reply_reads_all_its_articles_and_falls_back_to_the_archive(
    small_corpus: Path, tmp_path: Path
):
    from index.embedders.hashing import HashingEmbedder
    from index.engine import Engine

    embedder = HashingEmbedder(256)
    reindex([small_corpus], tmp_path / "idx", embedder)
    engine = Engine.create(load_index(tmp_path / "idx"), embedder)
    both = ["sport/match.txt", "tca/base.txt"]
    answer = engine.ask("how many troops are stationed there?", prefer_doc_ids=both)
    assert answer.passage is not None and answer.passage.doc_id == "tca/base.txt"
    # Preferred articles that say nothing about it: the archive answers.
    elsewhere = engine.ask("when does the base lease end?", prefer_doc_ids=["tech/chip.txt"])
    assert elsewhere.answered and "2042" in elsewhere.quote
