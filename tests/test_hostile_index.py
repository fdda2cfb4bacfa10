"""A hostile index folder: a full disk, a read-only folder, same-size garbage in the index
files, a file truncated under a running reader, a torn change log (issue #10, faults 4, 5, 7).

Tests run as root in CI, where permission bits stop nothing: a full disk and a read-only
folder are simulated by making the writes fail the way the kernel does (ENOSPC, EROFS);
a genuine ``chmod`` test runs too when the tests do not run as root.
"""

from __future__ import annotations

import builtins
import errno
import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from index.build import reindex
from index.embedders.hashing import HashingEmbedder
from index.errors import IndexCorruptError, IndexWriteError, NewsdeskError
from index.retriever import Retriever
from index.store import current_version_path, load_index, read_changes
from tests.conftest import REPO, ArticleWriter

LEASE_QUESTION = "when does the base lease end?"


def finds_the_lease(index) -> bool:
    """Dense, lexical and hybrid search all put the lease article first."""
    retriever = Retriever(index, HashingEmbedder(256))
    return all(
        retriever.search(LEASE_QUESTION, k=3, mode=mode)[0].passage.doc_id == "tca/base.txt"
        for mode in ("dense", "bm25", "hybrid")
    )


def _inside(path: object, root: Path) -> bool:
    try:
        return Path(os.fspath(path)).resolve().is_relative_to(root.resolve())  # type: ignore[arg-type]
    except TypeError:
        return False  # a file descriptor


def _writes(mode: str) -> bool:
    return any(c in mode for c in "wax+")


class FullDisk:
    """Every write under ``root`` fails with ENOSPC once ``budget`` bytes are written there
    (Python file writes, directory creation; FAISS's own C writes are tested apart)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, root: Path, budget: int = 0) -> None:
        self.root, self.budget, self.written = root, budget, 0
        real_open = io.open
        disk = self

        class Filling(io.RawIOBase):
            def __init__(self, raw) -> None:
                self.raw = raw

            def writable(self) -> bool:
                return True

            def write(self, data) -> int:
                size = len(memoryview(data).cast("B"))
                room = disk.budget - disk.written
                if room <= 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                done = self.raw.write(memoryview(data).cast("B")[: min(size, room)])
                disk.written += done
                return done

            def close(self) -> None:
                self.raw.close()
                super().close()

            def fileno(self) -> int:
                return self.raw.fileno()

        def filling_open(file, mode="r", buffering=-1, *args, **kwargs):
            if not (_writes(mode) and _inside(file, root)):
                return real_open(file, mode, buffering, *args, **kwargs)
            raw = real_open(file, mode.replace("t", "") + ("b" if "b" not in mode else ""), 0)
            buffered = io.BufferedWriter(Filling(raw))
            if "b" in mode:
                return buffered
            return io.TextIOWrapper(buffered, *args, **kwargs)

        monkeypatch.setattr(io, "open", filling_open)
        monkeypatch.setattr(builtins, "open", filling_open)


def read_only(monkeypatch: pytest.MonkeyPatch, root: Path, code: int = errno.EROFS) -> None:
    """Make ``root`` behave like a read-only mount (or, with EACCES, an unwritable folder)."""
    real_open, real_os_open = io.open, os.open

    def fail(path: object) -> None:
        raise OSError(code, os.strerror(code), os.fspath(path))  # type: ignore[arg-type]

    def guarded_open(file, mode="r", *args, **kwargs):
        if _writes(mode) and _inside(file, root):
            fail(file)
        return real_open(file, mode, *args, **kwargs)

    def guarded_os_open(path, flags, *args, **kwargs):
        writing = flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC)
        if writing and _inside(path, root):
            fail(path)
        return real_os_open(path, flags, *args, **kwargs)

    def guard(name: str) -> None:
        real = getattr(os, name)

        def guarded(path, *args, **kwargs):
            if _inside(path, root):
                fail(path)
            return real(path, *args, **kwargs)

        monkeypatch.setattr(os, name, guarded)

    monkeypatch.setattr(io, "open", guarded_open)
    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(os, "open", guarded_os_open)
    for name in ("mkdir", "rename", "replace", "symlink", "unlink", "rmdir"):
        guard(name)


def garble(path: Path, *, keep_mtime: bool = False) -> None:
    """Overwrite the middle of ``path`` in place with other bytes: same size, other content."""
    before = path.stat()
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    for i in range(middle, min(len(data), middle + 64)):
        data[i] ^= 0x5A
    with path.open("r+b") as fh:
        fh.write(data)
    assert path.stat().st_size == before.st_size
    if keep_mtime:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def build(corpus: Path, index_dir: Path, embedder: HashingEmbedder | None = None):
    return reindex([corpus], index_dir, embedder or HashingEmbedder(256))


# ---- 4. full disk, read-only folder ------------------------------------------------------


@pytest.mark.parametrize("budget", [0, 3_000, 9_000])
def test_full_disk_says_so_in_one_line_and_leaves_nothing_behind(
    small_corpus: Path, tmp_path: Path, write_article: ArticleWriter, monkeypatch, budget: int
):
    index_dir = tmp_path / "idx"
    good = build(small_corpus, index_dir)
    write_article("world/new.txt", "Floods in the valley", "Rivers burst their banks on Friday.")
    FullDisk(monkeypatch, index_dir / "versions", budget)
    with pytest.raises(IndexWriteError, match="disk full") as caught:
        build(small_corpus, index_dir)
    assert "\n" not in str(caught.value) and str(index_dir) in str(caught.value)
    monkeypatch.undo()
    assert sorted(p.name for p in (index_dir / "versions").iterdir()) == [good.version]
    assert load_index(index_dir).version == good.version
    assert [c.version for c in read_changes(index_dir)] == [good.version]
    report = build(small_corpus, index_dir)  # once there is room again, it simply works
    assert report.added == ["world/new.txt"]


def test_temporary_versions_of_a_killed_run_are_removed_at_the_next_start(
    small_corpus: Path, tmp_path: Path
):
    index_dir = tmp_path / "idx"
    good = build(small_corpus, index_dir)
    leftover = index_dir / "versions" / ".tmp-v000002-99999"
    leftover.mkdir()
    (leftover / "vectors.npy").write_bytes(b"\0" * 100_000)
    (index_dir / ".current-99999").symlink_to("versions/" + good.version)
    report = build(small_corpus, index_dir)  # nothing changed: no version is written...
    assert not report.wrote_new_version
    assert not leftover.exists()  # ... but the space is given back
    assert not (index_dir / ".current-99999").is_symlink()


def test_faiss_write_on_a_full_disk_is_an_oserror_with_its_errno(tmp_path: Path):
    from index.ann import FaissStore

    store = FaissStore.flat(8)
    store.add(np.arange(100, dtype=np.int64), np.ones((100, 8), dtype=np.float32))
    (tmp_path / "dense.faiss").symlink_to("/dev/full")  # a real ENOSPC from the kernel
    with pytest.raises(OSError) as caught:
        store.save(tmp_path)
    assert caught.value.errno == errno.ENOSPC


def test_full_disk_while_writing_the_faiss_file_says_disk_full(
    small_corpus: Path, tmp_path: Path, write_article: ArticleWriter, monkeypatch
):
    from index.ann import FaissStore

    index_dir = tmp_path / "idx"
    good = build(small_corpus, index_dir)
    write_article("world/new.txt", "Floods in the valley", "Rivers burst their banks on Friday.")
    real_save = FaissStore.save

    def save_to_full_disk(self, directory: Path) -> None:
        (directory / self.FILENAME).symlink_to("/dev/full")
        real_save(self, directory)

    monkeypatch.setattr(FaissStore, "save", save_to_full_disk)
    with pytest.raises(IndexWriteError, match="disk full"):
        build(small_corpus, index_dir)
    assert sorted(p.name for p in (index_dir / "versions").iterdir()) == [good.version]


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES])
def test_read_only_index_folder_says_read_only_and_still_answers(
    small_corpus: Path, tmp_path: Path, write_article: ArticleWriter, monkeypatch, code: int
):
    index_dir = tmp_path / "idx"
    good = build(small_corpus, index_dir)
    stamp = current_version_path(index_dir) / "verified.json"  # type: ignore[operator]
    if stamp.exists():
        stamp.unlink()  # a load then verifies the files and cannot record it: still loads
    write_article("world/new.txt", "Floods in the valley", "Rivers burst their banks on Friday.")
    read_only(monkeypatch, index_dir, code)
    with pytest.raises(IndexWriteError, match="read-only") as caught:
        build(small_corpus, index_dir)
    assert "\n" not in str(caught.value)
    index = load_index(index_dir)
    assert index.version == good.version
    assert finds_the_lease(index)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_index_folder_by_permissions(small_corpus: Path, tmp_path: Path):
    index_dir = tmp_path / "idx"
    build(small_corpus, index_dir)
    (small_corpus / "tech" / "chip.txt").write_text("Changed\n\nA different body now.\n")
    modes = {p: p.stat().st_mode for p in [index_dir, *index_dir.rglob("*")]}
    try:
        for path in modes:
            if not path.is_symlink():
                path.chmod(0o555 if path.is_dir() else 0o444)
        with pytest.raises(IndexWriteError, match="read-only"):
            build(small_corpus, index_dir)
    finally:
        for path, mode in modes.items():
            if not path.is_symlink():
                path.chmod(mode)


def test_cli_reindex_on_a_full_disk_is_one_line(
    small_corpus: Path, tmp_path: Path, write_article: ArticleWriter, monkeypatch, capsys
):
    from newsdesk import cli

    index_dir = tmp_path / "idx"
    build(small_corpus, index_dir)
    write_article("world/new.txt", "Floods in the valley", "Rivers burst their banks on Friday.")
    monkeypatch.setenv("NEWSDESK_EMBEDDING_MODEL", "hashing")
    monkeypatch.setenv("NEWSDESK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("NEWSDESK_INDEX_DIR", str(index_dir))
    monkeypatch.setenv("NEWSDESK_CORPUS_DIRS", str(small_corpus))
    FullDisk(monkeypatch, index_dir / "versions")
    code = cli.main(["reindex", "--quiet"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_ERROR
    assert err.count("\n") == 1 and "disk full" in err and "Traceback" not in err


# ---- 5. integrity: checksums, repair, no SIGBUS -----------------------------------------

DAMAGEABLE = [
    "vectors.npy",
    "dense.faiss",
    "sentence_vectors.npy",
    "sentence_spans.npy",
    "bm25/data.csc.index.npy",
    "bm25/indices.csc.index.npy",
    "bm25/newsdesk_vocab.json",
    "passages.jsonl",
    "articles.jsonl",
]


def test_the_manifest_records_a_checksum_of_every_file(small_corpus: Path, tmp_path: Path):
    build(small_corpus, tmp_path / "idx")
    version = current_version_path(tmp_path / "idx")
    assert version is not None
    manifest = json.loads((version / "manifest.json").read_text())
    assert manifest["format_version"] == 1  # an additive field: older readers still load it
    assert set(manifest["checksums"]) == set(manifest["files"]) >= set(DAMAGEABLE)
    assert all(value.startswith("sha256:") for value in manifest["checksums"].values())


@pytest.mark.parametrize("name", DAMAGEABLE)
def test_same_size_garbage_is_refused_at_load_and_repaired_by_reindex(
    small_corpus: Path, tmp_path: Path, name: str
):
    index_dir = tmp_path / "idx"
    embedder = HashingEmbedder(256)
    good = build(small_corpus, index_dir, embedder)
    version = current_version_path(index_dir)
    assert version is not None
    load_index(index_dir)  # loaded once (verified) before the damage: no free pass after it
    original = {p.relative_to(version): p.read_bytes() for p in version.rglob("*") if p.is_file()}
    garble(version / name, keep_mtime=True)
    with pytest.raises(IndexCorruptError, match=name.split("/")[-1].replace(".", r"\.")):
        load_index(index_dir)

    embedder.texts_embedded = 0
    report = build(small_corpus, index_dir, embedder)
    assert report.wrote_new_version, "a damaged index must not be reported as up to date"
    assert name in report.summary(index_dir)
    repaired = load_index(index_dir)
    assert repaired.version != good.version
    for relative, data in original.items():
        if relative.name not in ("manifest.json", "verified.json"):
            assert (repaired.path / relative).read_bytes() == data, relative
    # Only what the damaged file held is embedded again.
    if name in ("dense.faiss", "bm25/data.csc.index.npy", "bm25/indices.csc.index.npy"):
        assert embedder.texts_embedded == 0
    if name == "bm25/newsdesk_vocab.json":
        assert embedder.texts_embedded == 0
    if name == "vectors.npy":
        assert report.embedded == report.passages and report.sentences_embedded == 0
    if name.startswith("sentence_"):
        assert report.embedded == 0 and report.sentences_embedded > 0
    assert finds_the_lease(repaired)
    changes = read_changes(index_dir)
    assert changes[-1].added == [] and not changes[-1].changed  # no alerts for a repair


def test_verdict_is_cached_per_version_and_damage_still_seen(
    small_corpus: Path, tmp_path: Path, monkeypatch
):
    import index.store as store

    index_dir = tmp_path / "idx"
    build(small_corpus, index_dir)
    hashed: list[str] = []
    real = store.file_checksum

    def counting(path: Path) -> str:
        hashed.append(path.name)
        return real(path)

    monkeypatch.setattr(store, "file_checksum", counting)
    load_index(index_dir)
    load_index(index_dir)
    assert hashed == []  # verified when written: loads only compare sizes and times
    version = current_version_path(index_dir)
    assert version is not None
    garble(version / "vectors.npy", keep_mtime=True)
    with pytest.raises(IndexCorruptError, match=r"vectors\.npy"):
        load_index(index_dir)
    assert "vectors.npy" in hashed


def test_manifest_without_checksums_still_loads_and_reindex_adds_them(
    small_corpus: Path, tmp_path: Path
):
    index_dir = tmp_path / "idx"
    embedder = HashingEmbedder(256)
    good = build(small_corpus, index_dir, embedder)
    version = current_version_path(index_dir)
    assert version is not None
    manifest = json.loads((version / "manifest.json").read_text())
    del manifest["checksums"]
    (version / "manifest.json").write_text(json.dumps(manifest, indent=2))
    (version / "verified.json").unlink(missing_ok=True)
    assert load_index(index_dir).version == good.version  # as an older Newsdesk wrote it
    embedder.texts_embedded = 0
    report = build(small_corpus, index_dir, embedder)
    assert report.wrote_new_version and embedder.texts_embedded == 0
    assert "checksums" in report.summary(index_dir)
    manifest = json.loads((load_index(index_dir).path / "manifest.json").read_text())
    assert set(manifest["checksums"]) == set(manifest["files"])
    again = build(small_corpus, index_dir, embedder)
    assert not again.wrote_new_version


def test_truncating_a_loaded_index_file_does_not_kill_the_reader(
    small_corpus: Path, tmp_path: Path, write_article: ArticleWriter
):
    """The bot keeps a loaded version in memory; an operator truncates its files in place."""
    for i in range(12):  # files of several memory pages
        write_article(f"more/{i}.txt", f"Story {i}", *(f"Paragraph {j} of {i}." for j in range(8)))
    index_dir = tmp_path / "idx"
    build(small_corpus, index_dir)
    script = textwrap.dedent(
        f"""
        import os
        import numpy as np
        from pathlib import Path
        from index.store import load_index
        index = load_index(Path({str(index_dir)!r}))
        matrix = index.vector_matrix()
        sentences = index.sentences.vectors
        for name in ("vectors.npy", "sentence_vectors.npy"):
            os.truncate(index.path / name, 128)
        print(float(np.asarray(matrix, dtype=np.float64).sum()))
        print(float(np.asarray(sentences, dtype=np.float64).sum()))
        print("alive")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, timeout=120, check=False
    )
    assert result.returncode == 0, (result.returncode, result.stderr.decode()[-2000:])
    assert result.stdout.decode().strip().endswith("alive")


def test_damage_found_at_load_is_a_domain_error_not_a_crash(small_corpus: Path, tmp_path: Path):
    index_dir = tmp_path / "idx"
    build(small_corpus, index_dir)
    version = current_version_path(index_dir)
    assert version is not None
    (version / "verified.json").unlink(missing_ok=True)
    garble(version / "sentence_vectors.npy")
    with pytest.raises(NewsdeskError, match="checksum"):
        load_index(index_dir)


@pytest.mark.parametrize(
    "change",
    [{"files": 5}, {"checksums": ["x"]}, {"files": {"vectors.npy": "big"}}, {"version": None}],
)
def test_a_malformed_manifest_is_named_not_a_traceback(
    small_corpus: Path, tmp_path: Path, change: dict
):
    index_dir = tmp_path / "idx"
    build(small_corpus, index_dir)
    version = current_version_path(index_dir)
    assert version is not None
    manifest = json.loads((version / "manifest.json").read_text())
    manifest.update(change)
    if change == {"version": None}:
        del manifest["version"]
    (version / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexCorruptError, match="manifest"):
        load_index(index_dir)
    assert build(small_corpus, index_dir).full_rebuild  # and a re-index rebuilds it


# ---- 7. the change log -------------------------------------------------------------------


def test_torn_last_line_of_the_change_log_does_not_swallow_the_next_entry(
    small_corpus: Path, tmp_path: Path, write_article: ArticleWriter
):
    index_dir = tmp_path / "idx"
    good = build(small_corpus, index_dir)
    with (index_dir / "changes.jsonl").open("a") as fh:
        fh.write('{"version": "v000002", "created_at": "2026-')  # a crash in mid-append
    write_article("world/new.txt", "Floods in the valley", "Rivers burst their banks on Friday.")
    report = build(small_corpus, index_dir)
    changes = read_changes(index_dir)
    assert [c.version for c in changes] == [good.version, report.version]
    assert changes[-1].added == ["world/new.txt"]
    for line in (index_dir / "changes.jsonl").read_text().splitlines():
        json.loads(line)  # the torn tail is gone


def test_a_torn_line_glued_to_the_next_entry_is_recovered(tmp_path: Path):
    """A change log damaged by an older Newsdesk: the entry after the torn one is read."""
    entry = {
        "version": "v000003",
        "created_at": "2026-01-02T00:00:00+00:00",
        "added": ["world/new.txt"],
        "changed": [],
        "removed": [],
        "full_rebuild": False,
    }
    first = dict(entry, version="v000001", added=[], full_rebuild=True)
    (tmp_path / "changes.jsonl").write_text(
        json.dumps(first) + "\n" + '{"version": "v000002", "crea' + json.dumps(entry) + "\n"
    )
    changes = read_changes(tmp_path)
    assert [c.version for c in changes] == ["v000001", "v000003"]
    assert changes[-1].added == ["world/new.txt"]


def test_a_failed_change_log_write_leaves_the_log_and_the_index_as_they_were(
    small_corpus: Path, tmp_path: Path, write_article: ArticleWriter, monkeypatch
):
    index_dir = tmp_path / "idx"
    good = build(small_corpus, index_dir)
    log_before = (index_dir / "changes.jsonl").read_bytes()
    write_article("world/new.txt", "Floods in the valley", "Rivers burst their banks on Friday.")
    real_open = io.open

    def no_room_for_the_log(file, mode="r", *args, **kwargs):
        if _writes(mode) and Path(os.fspath(file)).name.startswith("changes.jsonl"):
            handle = real_open(file, mode, *args, **kwargs)
            handle.write('{"version": "v0')
            handle.flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(io, "open", no_room_for_the_log)
    monkeypatch.setattr(builtins, "open", no_room_for_the_log)
    with pytest.raises(IndexWriteError, match="disk full"):
        build(small_corpus, index_dir)
    monkeypatch.undo()
    assert (index_dir / "changes.jsonl").read_bytes() == log_before
    assert load_index(index_dir).version == good.version
    assert sorted(p.name for p in (index_dir / "versions").iterdir()) == [good.version]
    expected = [".lock", "changes.jsonl", "current", "versions"]
    assert sorted(p.name for p in index_dir.iterdir()) == expected
    report = build(small_corpus, index_dir)
    assert [c.version for c in read_changes(index_dir)] == [good.version, report.version]
