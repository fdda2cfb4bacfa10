"""Hostile corpus input: no file, line, name or link may stop a re-index or leak out of it.

Each test puts one bad item beside a good article and checks that the bad item is reported
(``LoadResult.skipped``, with a reason) and the good one is still loaded. Cases that hung or
ran out of memory before they were fixed run in a child process with a timeout and a memory
limit, so a regression fails the test instead of stopping the suite or the machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from corpus.article import Skipped
from corpus.loaders import MAX_FOLDER_DEPTH, MAX_TITLE_CHARS, LoadOptions, load_corpus
from index.build import reindex
from index.store import load_index
from newsdesk.services import run_reindex
from newsdesk.settings import Settings

REPO = Path(__file__).resolve().parents[1]
GOOD = "Good title\n\nA good body about the harbour reopening on Monday.\n"


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    root.mkdir()
    (root / "good.txt").write_text(GOOD, encoding="utf-8")
    return root


def reasons(result) -> dict[str, str]:
    return {s.path: s.reason for s in result.skipped}


def ids(result) -> list[str]:
    return [a.doc_id for a in result.articles]


def load_in_child(root: Path, *, timeout: float = 60, **options: object) -> dict:
    """``load_corpus([root])`` in a child process limited to 1 GiB of memory and
    ``timeout`` seconds; returns the doc ids and the skipped items."""
    code = (
        "import json, resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
        "from corpus.loaders import LoadOptions, load_corpus\n"
        "result = load_corpus([sys.argv[1]], LoadOptions(**json.loads(sys.argv[2])))\n"
        "print(json.dumps({'ids': [a.doc_id for a in result.articles],\n"
        "                  'skipped': {s.path: s.reason for s in result.skipped}}))\n"
    )
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, str(root), json.dumps(options)],
            capture_output=True,
            cwd=REPO,
            env=env,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"loading {root} did not finish within {timeout} s")
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return json.loads(done.stdout)


# --------------------------------------------------------------------------- 1. bad items


def test_lone_surrogate_in_json_skips_the_line(corpus: Path) -> None:
    feed = corpus / "feed.jsonl"
    feed.write_text(
        '{"id": "cut", "title": "Emoji cut in half", "text": "Fans cheered \\ud83d loudly."}\n'
        '{"id": "whole", "title": "Whole emoji", "text": "Fans cheered \\ud83d\\ude00 loudly."}\n',
        encoding="utf-8",
    )
    result = load_corpus([corpus])
    assert ids(result) == ["whole", "good.txt"]
    assert "lone surrogate" in reasons(result)[f"{feed}:1"]


def test_lone_surrogate_in_id_or_metadata_is_caught_too(corpus: Path) -> None:
    feed = corpus / "feed.jsonl"
    feed.write_text(
        '{"id": "a\\udc00", "title": "T1", "text": "Body one."}\n'
        '{"title": "T2", "text": "Body two.", "source": "\\ud800"}\n',
        encoding="utf-8",
    )
    result = load_corpus([corpus])
    assert ids(result) == ["good.txt"]
    assert set(reasons(result)) == {f"{feed}:1", f"{feed}:2"}


def test_latin1_file_and_folder_names_are_skipped_with_a_printable_reason(
    corpus: Path,
) -> None:
    base = os.fsencode(corpus)
    with open(base + b"/caf\xe9.txt", "wb") as handle:
        handle.write(b"Cafe story\n\nThe cafe opened.\n")
    os.mkdir(base + b"/r\xe9sum\xe9s")
    with open(base + b"/r\xe9sum\xe9s/one.txt", "wb") as handle:
        handle.write(b"Resume story\n\nThe resume.\n")
    result = load_corpus([corpus])
    assert ids(result) == ["good.txt"]
    assert len(result.skipped) == 2
    for item in result.skipped:
        item.path.encode("utf-8")  # printable: no surrogates
        assert "not valid UTF-8" in item.reason
    assert {Path(s.path).name for s in result.skipped} == {"caf\\xe9.txt", "r\\xe9sum\\xe9s"}


def test_json_nested_100000_deep_is_one_skipped_line(corpus: Path) -> None:
    feed = corpus / "feed.jsonl"
    feed.write_text(
        "[" * 100_000 + "\n" + '{"title": "Deep", "text": "x", "n": ' + "9" * 5000 + "}\n"
        '{"id": "fine", "title": "Fine", "text": "A fine body."}\n',
        encoding="utf-8",
    )
    result = load_corpus([corpus])
    assert ids(result) == ["fine", "good.txt"]
    skipped = reasons(result)
    assert "nested too deeply" in skipped[f"{feed}:1"]
    assert "invalid JSON" in skipped[f"{feed}:2"]  # a 5,000-digit number


def remove_deep_tree(top: Path) -> None:
    """Remove a tree too deep for shutil.rmtree (recursive: RecursionError)."""
    folders = [top]
    while (folders[-1] / "d").is_dir():
        folders.append(folders[-1] / "d")
    for folder in reversed(folders):
        for entry in folder.iterdir():
            if not entry.is_dir():
                entry.unlink()
        folder.rmdir()


def test_1100_nested_folders_are_cut_at_the_depth_limit(corpus: Path) -> None:
    folder = corpus
    try:
        for depth in range(1, 1101):
            folder = folder / "d"
            os.mkdir(folder)
            if depth in (3, 1100):
                (folder / f"at{depth}.txt").write_text(
                    f"Story at depth {depth}\n\nBody at depth {depth}.\n", encoding="utf-8"
                )
        result = load_corpus([corpus])
    finally:
        remove_deep_tree(corpus / "d")
    assert ids(result) == ["d/d/d/at3.txt", "good.txt"]
    [(path, reason)] = reasons(result).items()
    assert len(Path(path).relative_to(corpus).parts) == MAX_FOLDER_DEPTH + 1
    assert f"deeper than {MAX_FOLDER_DEPTH} folders" in reason


def test_pathological_lines_do_not_hang_the_boilerplate_rules(corpus: Path) -> None:
    # Each of these made a regular expression backtrack quadratically (minutes per file).
    spaces = " " * 200_000
    (corpus / "view.txt").write_text(
        f"View title\n\nBody one.\n\nview more {spaces}x\n", encoding="utf-8"
    )
    (corpus / "name.txt").write_text(
        f"Name title\n\nBody two.\n\nview more from a{spaces}b\n", encoding="utf-8"
    )
    (corpus / "digits.txt").write_text(
        f"Digit title\n\nBody three.\n{'1' * 200_000}\n", encoding="utf-8"
    )
    (corpus / "header.txt").write_text(
        f"Header title\nURL: a{spaces}b\n\nBody four.\n", encoding="utf-8"
    )
    loaded = load_in_child(corpus, timeout=30)
    assert sorted(loaded["ids"]) == ["digits.txt", "good.txt", "header.txt", "name.txt", "view.txt"]


def test_reindex_of_a_hostile_corpus_indexes_the_rest(corpus: Path, fake_embedder) -> None:
    (corpus / "feed.jsonl").write_text(
        '{"title": "Cut", "text": "\\ud800"}\n' + "[" * 100_000 + "\n", encoding="utf-8"
    )
    with open(os.fsencode(corpus) + b"/caf\xe9.txt", "wb") as handle:
        handle.write(b"Cafe\n\nBody.\n")
    index_dir = corpus.parent / "index"
    report = reindex([corpus], index_dir, fake_embedder)
    report.summary(index_dir).encode("utf-8")
    assert report.added == ["good.txt"]
    assert len(report.skipped) == 3
    assert list(load_index(index_dir).articles) == ["good.txt"]
    again = reindex([corpus], index_dir, fake_embedder)  # and every later run, too
    assert again.version == report.version


# --------------------------------------------------------------------------- 2. non-regular


def test_fifo_named_txt_is_skipped_not_waited_on(corpus: Path) -> None:
    os.mkfifo(corpus / "pipe.txt")
    os.mkfifo(corpus / "pipe.jsonl")
    loaded = load_in_child(corpus, timeout=30)
    assert loaded["ids"] == ["good.txt"]
    assert loaded["skipped"] == {
        str(corpus / "pipe.jsonl"): "not a regular file (a FIFO)",
        str(corpus / "pipe.txt"): "not a regular file (a FIFO)",
    }


def test_link_to_dev_zero_is_not_read(corpus: Path) -> None:
    (corpus / "zero.txt").symlink_to("/dev/zero")
    loaded = load_in_child(corpus, timeout=30, follow_links_out=True)
    assert loaded["ids"] == ["good.txt"]
    assert loaded["skipped"] == {str(corpus / "zero.txt"): "not a regular file (a device)"}
    loaded = load_in_child(corpus, timeout=30)
    assert "outside the corpus folder" in loaded["skipped"][str(corpus / "zero.txt")]


def test_files_over_the_size_cap_are_skipped(corpus: Path) -> None:
    (corpus / "big.txt").write_text("Big\n\n" + "word " * 1000, encoding="utf-8")
    (corpus / "big.jsonl").write_text(
        json.dumps({"title": "Big feed", "text": "line " * 1000}) + "\n", encoding="utf-8"
    )
    result = load_corpus([corpus], LoadOptions(max_file_bytes=1000))
    assert ids(result) == ["good.txt"]
    skipped = reasons(result)
    assert sorted(skipped) == [str(corpus / "big.jsonl"), str(corpus / "big.txt")]
    for reason in skipped.values():
        assert reason.startswith("larger than the size cap (")
    assert len(load_corpus([corpus]).articles) == 3  # the default cap is far larger


def test_settings_reach_the_loader(
    corpus: Path, tmp_path: Path, fake_embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("Outside story\n\nKept elsewhere.\n", encoding="utf-8")
    (corpus / "linked.txt").symlink_to(outside)
    (corpus / "big.txt").write_text("Big\n\n" + "word " * 300_000, encoding="utf-8")
    monkeypatch.setenv("NEWSDESK_CORPUS_MAX_FILE_MB", "1")
    monkeypatch.setenv("NEWSDESK_CORPUS_FOLLOW_LINKS_OUT", "true")
    settings = Settings(_env_file=None, data_dir=tmp_path / "var", corpus_dirs=[corpus])
    assert (settings.corpus_max_file_mb, settings.corpus_follow_links_out) == (1, True)
    report = run_reindex(settings, fake_embedder)
    assert sorted(report.added) == ["good.txt", "linked.txt"]
    assert [s.reason.split(" (")[0] for s in report.skipped] == ["larger than the size cap"]
    monkeypatch.delenv("NEWSDESK_CORPUS_MAX_FILE_MB")
    monkeypatch.delenv("NEWSDESK_CORPUS_FOLLOW_LINKS_OUT")
    defaults = Settings(_env_file=None)
    assert (defaults.corpus_max_file_mb, defaults.corpus_follow_links_out) == (100, False)


# --------------------------------------------------------------------------- 3. links out


def test_link_out_of_the_corpus_is_not_followed(corpus: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0\n\nroot:/root:/bin/bash\n", encoding="utf-8")
    (corpus / "p.txt").symlink_to(secret)
    (corpus / "passwd.txt").symlink_to("/etc/passwd")
    (corpus / "inside.txt").symlink_to(corpus / "good.txt")  # inside: read (a duplicate)
    result = load_corpus([corpus])
    assert ids(result) == ["good.txt"]
    skipped = reasons(result)
    assert "outside the corpus folder" in skipped[str(corpus / "p.txt")]
    assert "outside the corpus folder" in skipped[str(corpus / "passwd.txt")]
    assert result.duplicates == [Skipped(str(corpus / "inside.txt"), "duplicate of good.txt")]

    allowed = load_corpus([corpus], LoadOptions(follow_links_out=True))
    assert "p.txt" in ids(allowed)


def test_linked_folders_out_of_the_corpus(corpus: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "far.txt").write_text("Far story\n\nFrom far away.\n", encoding="utf-8")
    (outside / "loop").symlink_to(outside)  # a loop once links are followed
    (corpus / "linked").symlink_to(outside)
    (corpus / "again").symlink_to(corpus)  # a folder link inside: not walked twice
    result = load_corpus([corpus])
    assert ids(result) == ["good.txt"]
    skipped = reasons(result)
    assert "outside the corpus folder" in skipped[str(corpus / "linked")]
    assert "link to a folder inside the corpus" in skipped[str(corpus / "again")]

    allowed = load_corpus([corpus], LoadOptions(follow_links_out=True))
    assert ids(allowed) == ["good.txt", "linked/far.txt"]
    assert "already read" in reasons(allowed)[str(corpus / "linked" / "loop")]


# --------------------------------------------------------------------------- 9. smaller ones


def test_unreadable_subfolder_is_reported(corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (corpus / "locked").mkdir()
    (corpus / "locked" / "a.txt").write_text("Locked\n\nBody.\n", encoding="utf-8")
    real_scandir = os.scandir

    def scandir(path=".", *args, **kwargs):
        if os.fspath(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path, *args, **kwargs)

    monkeypatch.setattr(os, "scandir", scandir)
    result = load_corpus([corpus])
    assert ids(result) == ["good.txt"]
    assert reasons(result) == {str(corpus / "locked"): "cannot read folder: Permission denied"}


def test_jsonl_id_cannot_take_over_a_file(corpus: Path) -> None:
    (corpus / "a.jsonl").write_text(
        json.dumps({"id": "good.txt", "title": "Impostor", "text": "Not the good story."}) + "\n",
        encoding="utf-8",
    )
    result = load_corpus([corpus])
    by_id = {a.doc_id: a for a in result.articles}
    assert by_id["good.txt"].title == "Good title"
    assert by_id["a.jsonl#good.txt"].title == "Impostor"
    assert not result.skipped


def test_jsonl_ids_claimed_by_two_files_are_qualified_by_file(corpus: Path) -> None:
    (corpus / "voa").mkdir()
    (corpus / "voa" / "voa.jsonl").write_text(
        json.dumps({"id": "voa/n1", "title": "Real", "text": "The real story."})
        + "\n"
        + json.dumps({"id": "voa/n2", "title": "Other", "text": "Another story."})
        + "\n"
        + json.dumps({"id": "voa/n2", "title": "Again", "text": "Same id, same file."})
        + "\n",
        encoding="utf-8",
    )
    (corpus / "a.jsonl").write_text(
        json.dumps({"id": "voa/n1", "title": "Fake", "text": "A fake story."}) + "\n",
        encoding="utf-8",
    )
    result = load_corpus([corpus])
    titles = {a.doc_id: a.title for a in result.articles}
    assert titles == {
        "a.jsonl#voa/n1": "Fake",
        "good.txt": "Good title",
        "voa/voa.jsonl#voa/n1": "Real",
        "voa/n2": "Other",
    }
    # A repeated id within one file: the first line keeps it, as before.
    voa = corpus / "voa" / "voa.jsonl"
    assert result.skipped == [Skipped(f"{voa}:3", f"doc_id voa/n2 already loaded from {voa}")]
    # Walk order is kept.
    assert ids(result)[0] == "a.jsonl#voa/n1"


def test_same_file_name_in_two_corpus_folders(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    for root, body in ((one, "First"), (two, "Second")):
        root.mkdir()
        (root / "story.txt").write_text(f"{body} story\n\n{body} body.\n", encoding="utf-8")
    result = load_corpus([one, two])
    assert ids(result) == ["story.txt", "two/story.txt"]
    assert not result.skipped


def test_raw_line_separator_in_a_json_string_stays_in_its_line(corpus: Path) -> None:
    text = "First sentence.\u2028Still the first paragraph.\x85And here.\nSecond paragraph."
    (corpus / "feed.jsonl").write_text(
        json.dumps({"id": "ls", "title": "Line\u2029separators", "text": text}, ensure_ascii=False)
        + "\r\n",
        encoding="utf-8",
    )
    result = load_corpus([corpus])
    assert not result.skipped
    article = result.articles[0]
    assert article.doc_id == "ls"
    assert article.paragraphs == (
        "First sentence.\u2028Still the first paragraph.\x85And here.",
        "Second paragraph.",
    )


def test_titles_are_capped_at_load(corpus: Path) -> None:
    huge = "Headline " * 12_500  # about 110 KB
    (corpus / "long.txt").write_text(f"{huge}\nSource: {'S' * 5000}\n\nBody.\n", encoding="utf-8")
    (corpus / "feed.jsonl").write_text(
        json.dumps({"id": "j", "title": huge, "text": "Other body.", "url": "u" * 10_000}) + "\n",
        encoding="utf-8",
    )
    result = load_corpus([corpus])
    for article in result.articles:
        assert len(article.title) <= MAX_TITLE_CHARS
        assert len(article.source) <= MAX_TITLE_CHARS
    by_id = {a.doc_id: a for a in result.articles}
    assert by_id["long.txt"].title.startswith("Headline Headline")
    assert by_id["long.txt"].title.endswith("Headline…")
    assert by_id["j"].url == ""  # a URL cut short would be a wrong link
