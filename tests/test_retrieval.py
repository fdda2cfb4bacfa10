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


LEXICAL_TEXTS = [
    "Russian troops are stationed at the base in Tajikistan until 2042.",
    "The lease agreement for the military base was signed in October 2012.",
    "Troops, troops and more troops: the base holds 7,000 of them.",
    "Sony's Cell processor does 256 billion calculations a second.",
    "Tajik Defense Minister Sherali Mirzo met Shoigu in Dushanbe.",
    "",
]


def test_bm25_scores_are_bm25s_own_and_read_from_its_files(tmp_path: Path):
    """The query side scores with numpy alone: the same scores as bm25s, read from the files
    bm25s itself writes (indexes built before this change load unchanged)."""
    import json

    import bm25s
    import numpy as np
    from bm25s.tokenization import Tokenized

    from index.lexical import STOPWORDS_EN

    assert frozenset(bm25s.stopwords.STOPWORDS_EN) == STOPWORDS_EN
    lexical = LexicalIndex.build(LEXICAL_TEXTS)
    vocab = lexical._vocab
    ids = [[vocab[t] for t in tokenize(text)] or [0] for text in LEXICAL_TEXTS]
    model = bm25s.BM25()
    model.index(Tokenized(ids=ids, vocab=vocab), show_progress=False)
    (tmp_path / "bm25").mkdir()
    model.save(str(tmp_path / "bm25"), show_progress=False)
    (tmp_path / "bm25" / "newsdesk_vocab.json").write_text(json.dumps(vocab))
    from_bm25s_files = LexicalIndex.load(tmp_path)
    for query in ("troops base", "base base lease", "calculations", "Mirzo in Dushanbe"):
        token_ids = [vocab[t] for t in tokenize(query) if t in vocab]
        expected = model.get_scores(token_ids)
        assert np.array_equal(lexical.scores(token_ids), expected)
        assert np.array_equal(from_bm25s_files.scores(token_ids), expected)
        assert from_bm25s_files.search(query, 3) == lexical.search(query, 3)


def test_answering_imports_neither_bm25s_nor_scipy(small_corpus: Path, tmp_path: Path):
    import subprocess
    import sys

    from index.embedders.hashing import HashingEmbedder

    reindex([small_corpus], tmp_path / "idx", HashingEmbedder(256))
    code = (
        "import sys\n"
        "from index.embedders.hashing import HashingEmbedder\n"
        "from index.engine import Engine\n"
        "from index.store import load_index\n"
        f"engine = Engine.create(load_index({str(tmp_path / 'idx')!r}), HashingEmbedder(256),"
        " threshold=0.0)\n"
        "answer = engine.ask('how many troops are stationed there?')\n"
        "heavy = [m for m in ('bm25s', 'scipy', 'torch') if m in sys.modules]\n"
        "print(answer.answered, heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path.cwd()
    )
    assert out.stdout.strip().splitlines()[-1] == "True []"


def test_ask_prefers_the_article_a_reply_is_about(small_corpus: Path, tmp_path: Path):
    from index.embedders.hashing import HashingEmbedder
    from index.engine import Engine

    embedder = HashingEmbedder(256)
    reindex([small_corpus], tmp_path / "idx", embedder)
    engine = Engine.create(load_index(tmp_path / "idx"), embedder, threshold=0.0)
    within = engine.retriever.within("how many troops", "tca/base.txt", k=5)
    assert within and {h.passage.doc_id for h in within} == {"tca/base.txt"}
    answer = engine.ask("how many troops are stationed there?", prefer_doc_ids=["tca/base.txt"])
    assert answer.answered and "7,000" in answer.quote
    assert answer.passage is not None and answer.passage.doc_id == "tca/base.txt"
    ids = [h.passage.passage_id for h in answer.hits]
    assert len(ids) == len(set(ids))


def test_a_digest_reply_reads_all_its_articles_and_falls_back_to_the_archive(
    small_corpus: Path, tmp_path: Path, heuristic_model_file: Path
):
    from index.embedders.hashing import HashingEmbedder
    from index.engine import Engine

    embedder = HashingEmbedder(256)
    reindex([small_corpus], tmp_path / "idx", embedder)
    engine = Engine.create(load_index(tmp_path / "idx"), embedder, model_path=heuristic_model_file)
    both = ["sport/match.txt", "tca/base.txt"]
    answer = engine.ask("how many troops are stationed there?", prefer_doc_ids=both)
    assert answer.passage is not None and answer.passage.doc_id == "tca/base.txt"
    # Preferred articles that say nothing about it: the archive answers.
    elsewhere = engine.ask("when does the base lease end?", prefer_doc_ids=["tech/chip.txt"])
    assert elsewhere.answered and "2042" in elsewhere.quote
