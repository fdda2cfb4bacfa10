"""The newsdesk command, run in a child process as a user would (hashing embedder)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from index.store import current_version_path
from index.types import Answer, Hit, Passage
from tests.conftest import run_cli


@pytest.fixture
def env(small_corpus: Path, tmp_path: Path) -> dict[str, str]:
    return {
        "NEWSDESK_EMBEDDING_MODEL": "hashing",
        "NEWSDESK_HOME": str(tmp_path),  # no .env from the checkout
        "NEWSDESK_DATA_DIR": str(tmp_path / "data"),  # the default index: data/index
        "NEWSDESK_CORPUS_DIRS": str(small_corpus),
    }


def test_ask_builds_the_index_on_first_use_and_quotes_the_source(env):
    result = run_cli("ask", "when does the base lease end?", env=env)
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    assert "until 2042" in out
    assert "The Times of Central Asia" in out and "https://example.org/tca/1" in out
    assert "building it" in result.stderr.decode()


def test_ask_json_shape(env):
    result = run_cli("ask", "--json", "-k", "3", "when does the base lease end?", env=env)
    assert result.returncode == 0, result.stderr.decode()
    data = json.loads(result.stdout)
    expected = {"question", "answered", "quote", "doc_id", "title", "source", "url", "date"}
    assert expected <= set(data)
    assert data["answered"] is True and "2042" in data["quote"]
    assert data["doc_id"] == "tca/base.txt" and data["source"] == "The Times of Central Asia"
    assert 1 <= len(data["passages"]) <= 3
    for passage in data["passages"]:
        assert set(passage) == {"doc_id", "title", "source", "url", "date", "text", "score"}
    scores = [p["score"] for p in data["passages"]]
    assert scores == sorted(scores, reverse=True)


def test_ask_reads_questions_from_stdin_one_json_per_line(env):
    stdin = (
        b"when does the base lease end?\n\nwho scored for rangers at celtic park?\n\xff\xfe bad\n"
    )
    result = run_cli("ask", env=env, stdin=stdin)
    assert result.returncode == 0, result.stderr.decode()
    lines = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert len(lines) == 3
    assert lines[0]["question"] == "when does the base lease end?" and "passages" in lines[0]
    assert lines[1]["question"].startswith("who scored")
    assert lines[2]["answered"] is False and "not valid UTF-8" in lines[2]["error"]


@pytest.mark.parametrize(
    ("question", "message"),
    [("   ", "Please type a question"), ("x" * 10_000, "10,000 characters"), ("?!", "no words")],
)
def test_bad_questions_get_a_clear_message(env, question, message):
    result = run_cli("ask", question, env=env)
    assert result.returncode == 2
    assert message in result.stderr.decode()
    assert "Traceback" not in result.stderr.decode()


def test_non_utf8_argument_gets_a_clear_message(env):
    result = run_cli("ask", "when does the lease end \udcff?", env=env)
    assert result.returncode == 2
    assert "not UTF-8" in result.stderr.decode()


def test_reindex_prints_a_summary_and_reports_skipped_files(env, small_corpus: Path):
    (small_corpus / "broken.jsonl").write_text('{"id": "x", "title": "ok", "text": "fine"}\nnope\n')
    result = run_cli("reindex", "--quiet", env=env)
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    assert "full build" in out and "added 4" in out
    assert "broken.jsonl:2" in out
    again = run_cli("reindex", "--quiet", env=env)
    assert "up to date" in again.stdout.decode() and "unchanged 4" in again.stdout.decode()


def test_reindex_of_an_empty_folder_fails_and_keeps_the_index(env, tmp_path: Path):
    assert run_cli("reindex", "--quiet", env=env).returncode == 0
    before = current_version_path(tmp_path / "data" / "index")
    (tmp_path / "empty").mkdir()
    result = run_cli("reindex", "--quiet", "--corpus", str(tmp_path / "empty"), env=env)
    assert result.returncode == 1 and "No articles found" in result.stderr.decode()
    assert current_version_path(tmp_path / "data" / "index") == before


def test_corrupt_index_is_named_with_how_to_rebuild(env, tmp_path: Path):
    assert run_cli("reindex", "--quiet", env=env).returncode == 0
    version = current_version_path(tmp_path / "data" / "index")
    assert version is not None
    (version / "dense.faiss").write_bytes(b"garbage")
    result = run_cli("ask", "when does the base lease end?", env=env)
    assert result.returncode == 1
    err = result.stderr.decode()
    assert "dense.faiss" in err and "newsdesk reindex" in err and "Traceback" not in err


def test_eval_prints_the_three_modes_side_by_side(env, tmp_path: Path):
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        json.dumps({"q": "when does the base lease end?", "answer": "2042", "doc": "tca/base.txt"})
        + "\n"
        + json.dumps({"q": "who won the 2005 fa cup final", "answer": None, "doc": None})
        + "\n"
    )
    assert run_cli("reindex", "--quiet", env=env).returncode == 0
    result = run_cli("eval", str(questions), env=env)
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    for word in ("bm25", "dense", "hybrid", "top-1", "top-5", "quote contains span", "declined"):
        assert word in out


def test_a_reader_that_stops_early_gets_no_traceback(env):
    """`newsdesk ask ... | head -1`: the closed pipe ends the command quietly."""
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    run_cli("reindex", "--quiet", env=env)
    read, write = os.pipe()
    os.close(read)  # the reader is gone before anything is written
    with os.fdopen(write, "wb") as stdout:
        proc = subprocess.run(
            [sys.executable, "-m", "newsdesk.cli", "ask", "when does the base lease end?"],
            stdout=stdout,
            stderr=subprocess.PIPE,
            env={**os.environ, **env},
            cwd=REPO,
            timeout=120,
            check=False,
        )
    assert proc.returncode == 141
    assert b"Traceback" not in proc.stderr


def test_the_short_answer_leads_and_is_bold_only_on_a_terminal():
    from newsdesk.cli import BOLD, PLAIN, answer_json, format_answer

    quote = "The base will stay until 2042."
    p = Passage(0, "a.txt", "Base lease", quote, 0, 0, source="TCA")
    answer = Answer(
        "when does the lease end?",
        True,
        quote=quote,
        highlight="2042",
        answer_span=(25, 29),
        short_answer="2042",
        passage=p,
        confidence=0.8,
        hits=[Hit(p, 1.0, 1)],
    )
    plain = format_answer(answer)
    assert plain.splitlines()[0] == "2042"
    assert f"“{quote}”" in plain and BOLD not in plain
    assert f"until {BOLD}2042{PLAIN}." in format_answer(answer, bold=True)
    data = answer_json(answer)
    assert data["answer_span"] == [25, 29] and data["short_answer"] == "2042"
    assert data["quote"][25:29] == "2042"
