"""IndexDir: one index directory as an object, and the phases of a re-index."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from index.build import Job, diff_articles, embed_new, load_previous, reindex
from index.embedders.hashing import HashingEmbedder
from index.errors import IndexBusyError, IndexCorruptError, IndexMissingError
from index.store import IndexDir, current_version_path, load_index, read_changes
from tests.conftest import ArticleWriter


def test_an_empty_directory_has_no_current_version_and_no_changes(tmp_path: Path):
    index = IndexDir(tmp_path / "idx")
    assert index.current() is None
    assert index.changes() == []
    assert index.next_version() == "v000001"
    with pytest.raises(IndexMissingError) as caught:
        index.load()
    assert caught.value.index_dir == tmp_path / "idx"
    assert "newsdesk" not in str(caught.value)  # the engine spells no command


def test_the_object_and_the_shortcuts_agree(small_corpus: Path, tmp_path: Path):
    report = reindex([small_corpus], IndexDir(tmp_path / "idx"), HashingEmbedder(256))
    index = IndexDir(tmp_path / "idx")
    assert index.current() == current_version_path(tmp_path / "idx")
    assert index.current() == index.versions / str(report.version)
    assert index.load().version == load_index(tmp_path / "idx").version == report.version
    assert index.changes() == read_changes(tmp_path / "idx")
    assert index.next_version() == "v000002"
    assert os.fspath(index) == str(tmp_path / "idx") and IndexDir(index) == index


def test_its_errors_carry_the_directory(small_corpus: Path, tmp_path: Path):
    index = IndexDir(tmp_path / "idx")
    reindex([small_corpus], index, HashingEmbedder(256))
    version = index.current()
    assert version is not None
    (version / "manifest.json").write_text("{not json")
    with pytest.raises(IndexCorruptError, match="manifest") as caught:
        index.load()
    assert caught.value.index_dir == index.path


def test_the_lock_is_held_by_one_at_a_time(tmp_path: Path):
    index = IndexDir(tmp_path / "idx")
    with index.lock(), pytest.raises(IndexBusyError, match="Another re-index"), index.lock():
        pass
    with index.lock():  # released: taken again
        pass


def test_swap_and_collect_garbage_keep_the_current_version(small_corpus: Path, tmp_path: Path):
    index = IndexDir(tmp_path / "idx")
    embedder = HashingEmbedder(256)
    first = index.versions / str(reindex([small_corpus], index, embedder).version)
    for i in range(4):
        (small_corpus / "tech" / "chip.txt").write_text(f"Changed {i}\n\nA new body {i}.\n")
        reindex([small_corpus], index, embedder)
    assert sorted(p.name for p in index.versions.iterdir()) == ["v000003", "v000004", "v000005"]
    assert not first.exists()
    index.swap(index.versions / "v000003")
    index.collect_garbage(keep=1)
    assert index.current() == index.versions / "v000003"
    assert sorted(p.name for p in index.versions.iterdir()) == ["v000003", "v000005"]


def test_the_phases_diff_and_embed_only_what_changed(
    small_corpus: Path, tmp_path: Path, write_article: ArticleWriter
):
    from corpus.loaders import load_corpus

    embedder = HashingEmbedder(256)
    index = IndexDir(tmp_path / "idx")
    reindex([small_corpus], index, embedder)
    write_article("world/new.txt", "Floods in the valley", "Rivers burst their banks on Friday.")
    (small_corpus / "sport" / "match.txt").unlink()
    job = Job(index, embedder)
    previous = load_previous(job)
    assert not previous.empty and previous.version == "v000001" and not previous.reason
    diff = diff_articles(load_corpus([small_corpus]).articles, previous)
    assert diff.added == diff.new == ["world/new.txt"]
    assert diff.removed == ["sport/match.txt"] and not diff.changed and diff.unchanged == 2
    assert [p.passage_id for p in diff.passages] == list(range(len(diff.passages)))
    embedded = embed_new(job, diff.passages, previous)
    assert {p.doc_id for p in embedded.passages} == {"world/new.txt"}
    assert len(embedded.sentence_vectors) == len(embedded.plan.todo) > 0


def test_a_previous_version_built_with_another_model_is_a_full_rebuild(
    small_corpus: Path, tmp_path: Path
):
    index = IndexDir(tmp_path / "idx")
    reindex([small_corpus], index, HashingEmbedder(256))
    previous = load_previous(Job(index, HashingEmbedder(128)))
    assert previous.empty and previous.version is None and "model" in previous.reason
