"""The newsdesk command under hostile input and newcomer mistakes (hashing embedder).

Every error is one line on stderr with the documented exit code (README: 0 ok, 1 an error,
2 a bad question or bad usage, 3 another re-index is running), never a traceback.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from newsdesk import __version__
from newsdesk.settings import Settings
from tests.conftest import REPO
from tests.servers import free_port

EXIT_ERROR = 1
EXIT_USAGE = 2
QUESTION = "when does the base lease end?"
TOKEN = "123456789:AAE3xyZ-abc_DEF0123456789abcdefghij"


def _environ(env: dict[str, str]) -> dict[str, str]:
    """The parent's environment without its NEWSDESK_ settings, plus ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NEWSDESK_")}
    return {**clean, "PYTHONPATH": str(REPO), **env}  # this checkout, from any directory


def cli(
    *args: str, env: dict[str, str], cwd: Path | None = None, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "newsdesk.cli", *args],
        input=stdin,
        capture_output=True,
        env=_environ(env),
        cwd=cwd or REPO,
        timeout=300,
        check=False,
    )


def one_line_error(result: subprocess.CompletedProcess[bytes], code: int) -> str:
    err = result.stderr.decode()
    assert result.returncode == code, err
    assert "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    return err


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """NEWSDESK_HOME: where .env, the default data dir and relative settings live."""
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def env(
    small_corpus: Path, tmp_path: Path, home: Path, heuristic_model_file: Path
) -> dict[str, str]:
    return {
        "NEWSDESK_HOME": str(home),
        "NEWSDESK_ANSWER_MODEL": str(heuristic_model_file),  # see tests/conftest.py
        "NEWSDESK_EMBEDDING_MODEL": "hashing",
        "NEWSDESK_DATA_DIR": str(tmp_path / "data"),
        "NEWSDESK_CORPUS_DIRS": str(small_corpus),
    }


@pytest.fixture
def questions(tmp_path: Path) -> Path:
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"q": QUESTION, "answer": "2042", "doc": "tca/base.txt"}) + "\n")
    return path


# ---- fault 10: one line, the documented exit code ----------------------------------------


@pytest.mark.parametrize("command", ["ask", "reindex", "eval"])
def test_an_index_path_that_is_a_file_is_one_line(env, tmp_path: Path, questions, command):
    afile = tmp_path / "not-an-index"
    afile.write_text("hello\n")
    args = {"ask": [QUESTION], "reindex": ["--quiet"], "eval": [str(questions)]}[command]
    err = one_line_error(cli(command, "--index", str(afile), *args, env=env), EXIT_ERROR)
    assert str(afile) in err and "not a directory" in err
    assert afile.read_text() == "hello\n"


@pytest.mark.parametrize("command", ["ask", "reindex", "eval"])
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("NEWSDESK_MAX_QUESTION_CHARS", "5"),
        ("NEWSDESK_EMBEDDING_BACKEND", "foo"),
        ("NEWSDESK_LOG_LEVEL", "chatty"),
    ],
)
def test_an_invalid_setting_is_one_line_naming_it(env, questions, command, name, value):
    args = {"ask": [QUESTION], "reindex": ["--quiet"], "eval": [str(questions)]}[command]
    err = one_line_error(cli(command, *args, env={**env, name: value}), EXIT_USAGE)
    assert err.startswith(f"newsdesk: {name}:"), err


def test_settings_problems_word_each_variable(monkeypatch: pytest.MonkeyPatch):
    from newsdesk.settings import settings_problems

    monkeypatch.setenv("NEWSDESK_MAX_QUESTION_CHARS", "5")
    monkeypatch.setenv("NEWSDESK_EMBEDDING_BACKEND", "foo")
    with pytest.raises(ValidationError) as bad:
        Settings(_env_file=None)
    problems = dict(line.split(": ", 1) for line in settings_problems(bad.value))
    assert set(problems) == {"NEWSDESK_MAX_QUESTION_CHARS", "NEWSDESK_EMBEDDING_BACKEND"}
    assert "20" in problems["NEWSDESK_MAX_QUESTION_CHARS"]
    assert "onnx" in problems["NEWSDESK_EMBEDDING_BACKEND"]


@pytest.mark.parametrize("kind", ["missing", "directory", "binary"])
def test_a_bad_eval_file_is_one_line_naming_it(env, tmp_path: Path, kind):
    path = tmp_path / "questions.jsonl"
    if kind == "directory":
        path.mkdir()
    elif kind == "binary":
        path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe" * 8)
    err = one_line_error(cli("eval", str(path), env=env), EXIT_ERROR)
    assert str(path) in err


def test_a_usage_error_is_one_line(env):
    err = one_line_error(cli("ask", "-k", "many", QUESTION, env=env), EXIT_USAGE)
    assert "-k" in err and "--help" in err


def test_an_unreachable_bot_api_is_one_line(env):
    """Nobody listens at the base URL: one line, exit 1 (python-telegram-bot logged about
    108 traceback lines before it)."""
    assert cli("reindex", "--quiet", env=env).returncode == 0
    base = f"http://127.0.0.1:{free_port()}/bot"
    bot_env = {**env, "NEWSDESK_TELEGRAM_TOKEN": TOKEN, "NEWSDESK_TELEGRAM_BASE_URL": base}
    err = one_line_error(cli("bot", env=bot_env), EXIT_ERROR)
    assert "Cannot reach the Bot API" in err and base in err
    assert TOKEN not in err


@pytest.mark.parametrize(
    "token",
    [
        f"NEWSDESK_TELEGRAM_TOKEN={TOKEN}",  # the line pasted twice into .env
        f"Use this token to access the HTTP API: {TOKEN}",  # BotFather's sentence pasted
        "x:y",
    ],
)
def test_a_malformed_token_is_called_malformed_not_a_placeholder(env, token):
    err = one_line_error(cli("bot", env={**env, "NEWSDESK_TELEGRAM_TOKEN": token}), EXIT_USAGE)
    assert "malformed" in err and "placeholder" not in err
    assert TOKEN not in err


# ---- fault 11: newcomer surprises -------------------------------------------------------


def test_ask_does_not_build_an_index_at_a_mistyped_path(env, tmp_path: Path):
    typo = tmp_path / "typo"
    err = one_line_error(cli("ask", "--index", str(typo), QUESTION, env=env), EXIT_ERROR)
    assert str(typo) in err and f"newsdesk reindex --index {typo}" in err
    assert not typo.exists()
    from_env = cli("ask", QUESTION, env={**env, "NEWSDESK_INDEX_DIR": str(typo)})
    assert str(typo) in one_line_error(from_env, EXIT_ERROR)
    assert not typo.exists()


def test_the_default_index_is_built_on_first_use(env, tmp_path: Path):
    result = cli("ask", QUESTION, env=env)
    assert result.returncode == 0, result.stderr.decode()
    assert "until 2042" in result.stdout.decode()
    assert (tmp_path / "data" / "index" / "current").is_symlink()


def test_data_dir_and_env_file_do_not_depend_on_the_current_directory(
    small_corpus: Path, tmp_path: Path, home: Path, heuristic_model_file: Path
):
    """.env is read from the home, the data dir defaults to <home>/var: a second directory
    finds the same index (no rebuild, no second model cache)."""
    (home / ".env").write_text(
        f"NEWSDESK_EMBEDDING_MODEL=hashing\nNEWSDESK_CORPUS_DIRS={small_corpus}\n"
        f"NEWSDESK_ANSWER_MODEL={heuristic_model_file}\n"
    )
    env = {"NEWSDESK_HOME": str(home)}
    first, second = tmp_path / "first", tmp_path / "second"
    for where in (first, second):
        where.mkdir()
        # a .env in the current directory is not read (this one would be refused)
        (where / ".env").write_text("NEWSDESK_MAX_QUESTION_CHARS=5\n")
    built = cli("reindex", "--quiet", env=env, cwd=first)
    assert built.returncode == 0, built.stderr.decode()
    assert "full build" in built.stdout.decode()
    again = cli("reindex", "--quiet", env=env, cwd=second)
    assert again.returncode == 0, again.stderr.decode()
    assert "up to date" in again.stdout.decode()
    asked = cli("ask", QUESTION, env=env, cwd=second)
    assert asked.returncode == 0 and "until 2042" in asked.stdout.decode()
    assert (home / "var" / "index" / "current").is_symlink()
    assert not (first / "var").exists() and not (second / "var").exists()


def test_relative_settings_are_relative_to_the_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, home: Path
):
    for name in [k for k in os.environ if k.startswith("NEWSDESK_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("NEWSDESK_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    default = Settings(_env_file=None)
    assert default.data_dir == home / "var" and default.index_path == home / "var" / "index"
    assert default.index_is_default
    monkeypatch.setenv("NEWSDESK_DATA_DIR", "data")
    monkeypatch.setenv("NEWSDESK_INDEX_DIR", "idx")
    monkeypatch.setenv("NEWSDESK_CORPUS_DIRS", "news,/abs/feeds")
    relative = Settings(_env_file=None)
    assert relative.data_dir == home / "data" and relative.index_path == home / "idx"
    assert relative.corpus_dirs == [home / "news", Path("/abs/feeds")]
    assert not relative.index_is_default


def test_the_project_root_is_the_home_of_a_checkout(monkeypatch: pytest.MonkeyPatch):
    from newsdesk.settings import home

    monkeypatch.delenv("NEWSDESK_HOME", raising=False)
    assert home() == REPO


def test_stdin_questions_are_answered_line_by_line(env):
    """Each answer is written (and flushed) before the next line arrives."""
    assert cli("reindex", "--quiet", env=env).returncode == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "newsdesk.cli", "ask"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_environ(env),
        cwd=REPO,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(QUESTION.encode() + b"\n")
        proc.stdin.flush()
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, "no answer before the end of input"
        first = json.loads(proc.stdout.readline())
        assert first["question"] == QUESTION and "2042" in first["quote"]
        proc.stdin.write(b"who scored for rangers at celtic park?\n")
        proc.stdin.close()
        second = json.loads(proc.stdout.readline())
        assert second["question"].startswith("who scored")
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        assert proc.stderr is not None
        proc.stderr.close()


def test_empty_stdin_is_a_bad_question(env):
    err = one_line_error(cli("ask", env=env, stdin=b"\n  \n"), EXIT_USAGE)
    assert "No question given" in err


def test_log_level_is_honoured(env):
    quiet = cli("reindex", "--quiet", env=env)
    assert quiet.returncode == 0 and b" INFO " not in quiet.stderr
    chatty = cli("reindex", "--quiet", env={**env, "NEWSDESK_LOG_LEVEL": "info"})
    assert chatty.returncode == 0, chatty.stderr.decode()
    err = chatty.stderr.decode()
    assert " INFO newsdesk: " in err and "data dir" in err


def test_version():
    result = cli("--version", env={})
    assert result.returncode == 0
    assert result.stdout.decode().strip() == f"newsdesk {__version__}"
