"""Re-index: incremental embedding, change log, atomic swap, manifest checks, the lock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from index.build import reindex
from index.embedders.hashing import HashingEmbedder
from index.errors import IndexBusyError, IndexCorruptError, IndexMismatchError, IndexMissingError
from index.sentences import sentence_spans
from index.store import IndexDir, current_version_path, load_index, read_changes
from newsdesk.messages import error_message
from tests.conftest import ArticleWriter


def test_full_build_writes_manifest_and_loads(small_corpus: Path, tmp_path: Path, fake_embedder):
    report = reindex([small_corpus], tmp_path / "idx", fake_embedder)
    assert report.full_rebuild and report.wrote_new_version
    assert len(report.added) == 3 and report.embedded == report.passages > 0
    index = load_index(tmp_path / "idx", expect_model=("hashing", fake_embedder.fingerprint))
    manifest = json.loads((index.path / "manifest.json").read_text())
    assert manifest["format_version"] == 1
    assert manifest["model_name"] == "hashing"
    assert manifest["model_fingerprint"] == fake_embedder.fingerprint
    assert manifest["dimension"] == 256
    assert manifest["articles"] == 3 and manifest["passages"] == len(index.passages)
    assert manifest["created_at"]
    for passage in index.passages:
        text = index.article_text(passage.doc_id)
        assert text[passage.start : passage.start + len(passage.text)] == passage.text


def test_changing_one_article_embeds_only_its_passages(
    small_corpus: Path, tmp_path: Path, write_article: ArticleWriter
):
    embedder = HashingEmbedder(256)
    first = reindex([small_corpus], tmp_path / "idx", embedder)
    write_article(
        "tech/chip.txt",
        "Cell chip to power PlayStation 3",
        "The Cell processor could do 16 trillion calculations a second in servers, IBM said.",
        headers={"Source": "BBC"},
    )
    embedder.texts_embedded = 0
    second = reindex([small_corpus], tmp_path / "idx", embedder)
    assert second.changed == ["tech/chip.txt"]
    assert second.added == [] and second.removed == [] and second.unchanged == 2
    chip_passages = [
        p for p in load_index(tmp_path / "idx").passages if p.doc_id == "tech/chip.txt"
    ]
    assert second.embedded == len(chip_passages)
    chip_sentences = sum(len(sentence_spans(p.text)) for p in chip_passages)
    assert second.sentences_embedded == chip_sentences
    assert embedder.texts_embedded == second.embedded + chip_sentences
    assert second.reused == first.passages - 1
    assert second.version != first.version


def test_unchanged_reindex_embeds_nothing_and_keeps_version(small_corpus, tmp_path, fake_embedder):
    first = reindex([small_corpus], tmp_path / "idx", fake_embedder)
    fake_embedder.texts_embedded = 0
    again = reindex([small_corpus], tmp_path / "idx", fake_embedder)
    assert fake_embedder.texts_embedded == 0
    assert again.version == first.version and not again.wrote_new_version
    assert len(read_changes(tmp_path / "idx")) == 1


def test_removed_article_leaves_the_index(small_corpus: Path, tmp_path: Path, fake_embedder):
    reindex([small_corpus], tmp_path / "idx", fake_embedder)
    (small_corpus / "sport" / "match.txt").unlink()
    report = reindex([small_corpus], tmp_path / "idx", fake_embedder)
    assert report.removed == ["sport/match.txt"]
    index = load_index(tmp_path / "idx")
    assert "sport/match.txt" not in index.articles
    assert all(p.doc_id != "sport/match.txt" for p in index.passages)


def test_change_log_lists_only_genuinely_new_articles(
    small_corpus: Path, tmp_path: Path, write_article: ArticleWriter, fake_embedder
):
    reindex([small_corpus], tmp_path / "idx", fake_embedder)
    write_article("world/new.txt", "Floods in the valley", "Rivers burst their banks on Friday.")
    copy = (small_corpus / "tech" / "chip.txt").read_text()
    (small_corpus / "tech" / "chip-copy.txt").write_text(copy)
    reindex([small_corpus], tmp_path / "idx", fake_embedder)
    changes = read_changes(tmp_path / "idx")
    assert changes[0].full_rebuild and changes[0].added == []
    assert changes[1].added == ["world/new.txt"]


def test_failing_build_leaves_previous_index_serving(small_corpus, tmp_path, write_article):
    class Exploding(HashingEmbedder):
        def embed(self, texts, *, batch_size=32):
            raise RuntimeError("power cut")

    good = reindex([small_corpus], tmp_path / "idx", HashingEmbedder(256))
    write_article("world/new.txt", "Floods in the valley", "Rivers burst their banks on Friday.")
    with pytest.raises(RuntimeError):
        reindex([small_corpus], tmp_path / "idx", Exploding(256))
    index = load_index(tmp_path / "idx")
    assert index.version == good.version and "world/new.txt" not in index.articles
    assert [c.version for c in read_changes(tmp_path / "idx")] == [good.version]


def test_interrupted_write_leaves_no_half_version(small_corpus, tmp_path, monkeypatch):
    import index.store as store

    good = reindex([small_corpus], tmp_path / "idx", HashingEmbedder(256))
    (small_corpus / "tech" / "chip.txt").write_text("Changed\n\nA different body now.\n")

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(store.LexicalIndex, "save", crash)
    with pytest.raises(OSError):
        reindex([small_corpus], tmp_path / "idx", HashingEmbedder(256))
    assert load_index(tmp_path / "idx").version == good.version
    monkeypatch.undo()
    report = reindex([small_corpus], tmp_path / "idx", HashingEmbedder(256))
    assert report.changed == ["tech/chip.txt"]
    assert not list((tmp_path / "idx" / "versions").glob(".tmp-*"))


def test_index_built_with_another_model_is_refused(small_corpus, tmp_path, fake_embedder):
    reindex([small_corpus], tmp_path / "idx", fake_embedder)
    other = HashingEmbedder(128)
    with pytest.raises(IndexMismatchError, match="model") as caught:
        load_index(tmp_path / "idx", expect_model=(other.name, other.fingerprint))
    assert caught.value.index_dir == tmp_path / "idx"
    assert "newsdesk reindex" in error_message(caught.value)
    # A re-index with the other model rebuilds everything, with the reason in the report.
    report = reindex([small_corpus], tmp_path / "idx", other)
    assert report.full_rebuild and "model" in report.reason


def test_corrupt_and_missing_indexes_are_named(small_corpus, tmp_path, fake_embedder):
    with pytest.raises(IndexMissingError, match="No index") as caught:
        load_index(tmp_path / "nothing")
    assert caught.value.index_dir == tmp_path / "nothing"
    assert "newsdesk reindex" in error_message(caught.value)
    reindex([small_corpus], tmp_path / "idx", fake_embedder)
    version = current_version_path(tmp_path / "idx")
    assert version is not None
    passages = version / "passages.jsonl"
    passages.write_text(passages.read_text()[:-40])
    with pytest.raises(IndexCorruptError, match=r"passages\.jsonl"):
        load_index(tmp_path / "idx")
    (version / "manifest.json").write_text("{not json")
    with pytest.raises(IndexCorruptError, match="manifest"):
        load_index(tmp_path / "idx")


def test_second_reindex_is_refused_while_one_runs(small_corpus, tmp_path, fake_embedder):
    with IndexDir(tmp_path / "idx").lock(), pytest.raises(IndexBusyError, match="Another re-index"):
        reindex([small_corpus], tmp_path / "idx", fake_embedder)


class CountingEmbedder(HashingEmbedder):
    """Records every text it embeds and each batch it is given."""

    def __init__(self) -> None:
        super().__init__(32)
        self.seen: list[str] = []
        self.batches: list[list[str]] = []

    def embed(self, texts, *, batch_size: int = 32):
        self.seen.extend(texts)
        self.batches.append(list(texts))
        return super().embed(texts, batch_size=batch_size)


def test_each_distinct_text_is_embedded_once_longest_first(monkeypatch) -> None:
    import numpy as np

    from index import build

    monkeypatch.setattr(build, "EMBED_CHUNK", 3)
    texts = ["b", "a much longer text", "b", "medium text", "a much longer text", "c", "dd"]
    embedder = CountingEmbedder()
    steps: list[tuple[int, int]] = []
    vectors = build.embed_texts(embedder, texts, progress=lambda d, t: steps.append((d, t)))
    assert sorted(embedder.seen) == sorted(set(texts))  # duplicates embedded once
    assert [len(t) for t in embedder.seen] == sorted((len(t) for t in set(texts)), reverse=True)
    assert [len(c) for c in embedder.batches] == [3, 2]
    assert np.allclose(vectors, HashingEmbedder(32).embed(texts))  # rows follow the input
    assert steps == [(0, 5), (3, 5), (5, 5)]
    assert build.embed_texts(embedder, []).shape == (0, 32)


def test_a_pooled_build_matches_an_in_process_one(small_corpus: Path, tmp_path: Path) -> None:
    import numpy as np

    from index.store import load_vectors
    from tests.conftest import hashing_pool

    pool = hashing_pool(tmp_path, 256)
    local = pool.local
    reindex([small_corpus], tmp_path / "pooled", pool)
    reindex([small_corpus], tmp_path / "local", local)
    assert pool.pool_runs == 1
    a, b = (load_index(tmp_path / name) for name in ("pooled", "local"))
    assert np.array_equal(load_vectors(a.path), load_vectors(b.path))
    assert a.sentences is not None and b.sentences is not None
    assert np.array_equal(a.sentences.vectors, b.sentences.vectors)
