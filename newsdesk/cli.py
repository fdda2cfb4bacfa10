"""The ``newsdesk`` command: ask, reindex, eval, sources, fetch, bot. Errors become messages
here, at the edge.

Every error ends the command with one line on stderr and the documented exit code (0 ok,
1 an error, 2 a bad question, bad usage (a bad source URL or name too) or an invalid
setting, 3 another re-index or fetch round is running), never a traceback:
``NEWSDESK_LOG_LEVEL=DEBUG`` logs the traceback of an unexpected one.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError

from corpus.feeds.errors import BadSourceError, RoundBusyError
from index.errors import BadQuestionError, IndexBusyError, NewsdeskError
from index.types import Answer, Hit
from newsdesk import __version__
from newsdesk.messages import error_message
from newsdesk.settings import Settings, home, settings_problems

log = logging.getLogger("newsdesk")

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_BUSY = 3


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error in one line (exit 2) instead of the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="newsdesk",
        description="Answer questions about a news archive with verbatim quotes and sources.",
    )
    parser.add_argument("--version", action="version", version=f"newsdesk {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    sub = parser.add_subparsers(dest="command", required=True)

    ask = sub.add_parser("ask", help="answer a question (or one per line from stdin)")
    ask.add_argument("question", nargs="*", help="the question; none: read lines from stdin")
    ask.add_argument("--index", type=Path, help="index directory (NEWSDESK_INDEX_DIR)")
    ask.add_argument("-k", type=int, default=5, help="how many passages to list (default 5)")
    ask.add_argument("--json", action="store_true", help="print one JSON object per answer")

    re = sub.add_parser("reindex", help="index new and changed articles from corpus folders")
    re.add_argument(
        "--corpus",
        type=Path,
        action="append",
        help="a corpus folder (repeatable; NEWSDESK_CORPUS_DIRS)",
    )
    re.add_argument("--index", type=Path, help="index directory (NEWSDESK_INDEX_DIR)")
    re.add_argument("--quiet", action="store_true", help="no progress bar")
    re.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="embed on the Ray cluster at ADDRESS (HOST:PORT of its head node; default "
        "NEWSDESK_RAY_ADDRESS, else auto). With NEWSDESK_RAY_ADDRESS set, reindex embeds "
        "on Ray even without --ray. Needs pip install 'newsdesk[cluster]'",
    )

    ev = sub.add_parser("eval", help="evaluate bm25, dense and hybrid on a question file")
    ev.add_argument("file", type=Path, help="JSONL with q, answer (span or null), doc")
    ev.add_argument("--index", type=Path, help="index directory (NEWSDESK_INDEX_DIR)")
    ev.add_argument("--details", type=Path, help="write per-question results (JSONL) here")

    src = sub.add_parser("sources", help="the news sources (feeds, sitemaps) followed")
    src_sub = src.add_subparsers(dest="action", required=True, metavar="add|list|remove")
    add = src_sub.add_parser("add", help="follow a feed, a sitemap or a page with a feed")
    add.add_argument("url", help="the feed's URL (or a page that links to its feed)")
    add.add_argument("--name", help="a short name (default: from the URL's host)")
    src_sub.add_parser("list", help="each source's last fetch, status and article count")
    rm = src_sub.add_parser("remove", help="stop following a source (its articles stay)")
    rm.add_argument("source", metavar="NAME|URL", help="the source's name or URL")

    fetch = sub.add_parser("fetch", help="fetch every source once, then re-index what changed")
    fetch.add_argument("--index", type=Path, help="index directory (NEWSDESK_INDEX_DIR)")
    fetch.add_argument("--quiet", action="store_true", help="no progress bar")

    sub.add_parser("bot", help="run the Telegram bot (needs NEWSDESK_TELEGRAM_TOKEN)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "bot":
            return run_bot(verbose=args.verbose)
        overrides: dict[str, Any] = {}
        # options are relative to the current directory; settings are relative to home()
        if getattr(args, "index", None):
            overrides["index_dir"] = args.index.expanduser().absolute()
        if getattr(args, "corpus", None):
            overrides["corpus_dirs"] = [d.expanduser().absolute() for d in args.corpus]
        settings = Settings(**overrides)
        setup_logging(settings.log_level, verbose=args.verbose)
        log.info(
            "newsdesk %s: home %s, data dir %s, index %s",
            __version__,
            home(),
            settings.data_dir,
            settings.index_path,
        )
        if args.command == "ask":
            return cmd_ask(settings, args)
        if args.command == "reindex":
            return cmd_reindex(settings, quiet=args.quiet, ray=args.ray)
        if args.command == "eval":
            return cmd_eval(settings, args.file, args.details)
        if args.command == "sources":
            return cmd_sources(settings, args)
        if args.command == "fetch":
            return cmd_fetch(settings, quiet=args.quiet)
    except (IndexBusyError, RoundBusyError) as exc:
        return fail(str(exc), EXIT_BUSY)
    except (BadQuestionError, BadSourceError) as exc:
        return fail(str(exc), EXIT_USAGE)
    except NewsdeskError as exc:
        return fail(error_message(exc), EXIT_ERROR)
    except ValidationError as exc:  # an invalid setting, worded as the bot words it
        return fail("; ".join(settings_problems(exc)), EXIT_USAGE)
    except KeyboardInterrupt:
        return fail("interrupted", 130)
    except BrokenPipeError:  # the reader went away (`newsdesk ask ... | head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:  # a path that can't be read or written: name it, in one line
        return fail(os_problem(exc), EXIT_ERROR)
    except Exception as exc:  # a bug: one line here, the traceback at NEWSDESK_LOG_LEVEL=DEBUG
        return fail(unexpected(exc), EXIT_ERROR)
    return EXIT_USAGE


def fail(message: str, code: int) -> int:
    print(f"newsdesk: {message}", file=sys.stderr)
    return code


def os_problem(exc: OSError) -> str:
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{exc.strerror or exc}"


def unexpected(exc: BaseException) -> str:
    log.debug("unexpected error", exc_info=exc)
    text = " ".join(str(exc).split())
    return (
        f"unexpected error: {type(exc).__name__}{': ' + text if text else ''} "
        "(NEWSDESK_LOG_LEVEL=DEBUG logs where it happened)"
    )


def setup_logging(level: str, *, verbose: bool = False) -> None:
    """Log at ``level`` (NEWSDESK_LOG_LEVEL); ``-v`` lowers it to at least INFO."""
    numeric = logging.getLevelName(level) if isinstance(level, str) else level
    numeric = numeric if isinstance(numeric, int) else logging.WARNING
    if verbose:
        numeric = min(numeric, logging.INFO)
    logging.basicConfig(level=numeric, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(numeric)


# ---- bot -------------------------------------------------------------------------------


def run_bot(*, verbose: bool = False) -> int:
    """``newsdesk bot``: bot/__main__ checks the settings and runs it; the CLI sets up
    logging first (NEWSDESK_LOG_LEVEL, -v) and turns anything it doesn't word into a line."""
    from newsdesk.settings import BotSettings

    secrets: list[str] = []
    try:
        settings = BotSettings()  # type: ignore[call-arg]  # the token comes from the env
    except ValidationError:  # the bot words it
        level = "WARNING"
    else:
        level = settings.log_level
        secrets.append(settings.telegram_token.get_secret_value().strip())
    # before bot.logs adds its filters (which drop the tracebacks of errors that end
    # start-up: main() reports those in one line) to the handlers configured here
    setup_logging(level, verbose=verbose)

    from bot.__main__ import main as bot_main

    try:
        return bot_main()
    except (KeyboardInterrupt, BrokenPipeError):
        raise
    except Exception as exc:  # one the bot does not word: one line, without the token
        message = unexpected(exc)
        for secret in (s for s in secrets if len(s) >= 4):  # in whatever letter case
            message = re.sub(re.escape(secret), "[redacted]", message, flags=re.IGNORECASE)
        print(f"newsdesk bot: {message}", file=sys.stderr)
        return EXIT_ERROR


# ---- ask -------------------------------------------------------------------------------


def answer_json(answer: Answer) -> dict[str, Any]:
    passage = answer.passage
    return {
        "question": answer.question,
        "answered": answer.answered,
        "quote": answer.quote if answer.answered else None,
        "highlight": answer.highlight or None,
        "answer_span": list(answer.answer_span) if answer.answer_span else None,
        "short_answer": answer.short_answer or None,
        "confidence": round(answer.confidence, 4),
        "doc_id": passage.doc_id if passage and answer.answered else None,
        "title": passage.title if passage and answer.answered else None,
        "source": passage.source if passage and answer.answered else None,
        "url": (passage.url or None) if passage and answer.answered else None,
        "date": (passage.date or None) if passage and answer.answered else None,
        "passages": [hit_json(hit) for hit in answer.hits],
    }


def hit_json(hit: Hit) -> dict[str, Any]:
    p = hit.passage
    return {
        "doc_id": p.doc_id,
        "title": p.title,
        "source": p.source,
        "url": p.url or None,
        "date": p.date or None,
        "text": p.text,
        "score": round(hit.score, 6),
    }


def _source_line(title: str, source: str, date: str, url: str) -> str:
    parts = [f"“{title}”"] + [part for part in (source, date) if part]
    line = " — ".join([*parts[:1], ", ".join(parts[1:])]) if len(parts) > 1 else parts[0]
    return f"{line}\n  {url}" if url else line


BOLD, PLAIN = "\033[1m", "\033[0m"


def format_answer(answer: Answer, *, bold: bool = False) -> str:
    """The short answer on a line of its own when confident, then the quote (the answer
    span in bold on a terminal), its source and related articles."""
    lines: list[str] = []
    if answer.answered and answer.passage:
        p = answer.passage
        quote = answer.quote
        if bold and answer.answer_span:
            start, end = answer.answer_span
            quote = f"{quote[:start]}{BOLD}{quote[start:end]}{PLAIN}{quote[end:]}"
        if answer.short_answer:
            lines += [answer.short_answer, ""]
        lines.append(f"“{quote}”")
        lines.append("")
        lines.append("Source: " + _source_line(p.title, p.source, p.date, p.url))
        others = [h for h in answer.hits if h.passage.doc_id != p.doc_id]
        heading = "See also:"
    else:
        lines.append("The archive has no answer to that question.")
        others = answer.hits
        heading = "Closest articles:"
    seen: set[str] = set()
    listed = []
    for hit in others:
        if hit.passage.doc_id in seen:
            continue
        seen.add(hit.passage.doc_id)
        h = hit.passage
        listed.append("  - " + _source_line(h.title, h.source, h.date, h.url).replace("\n", "\n  "))
        if len(listed) == 3:
            break
    if listed:
        lines += ["", heading, *listed]
    return "\n".join(lines)


def _stdin_questions() -> Iterator[tuple[int, str | None, str | None]]:
    """(line number, question, error) for each non-blank stdin line, as soon as it arrives."""
    for lineno, raw in enumerate(sys.stdin.buffer, 1):  # readline: no waiting for the end
        try:
            text = raw.rstrip(b"\r\n").decode("utf-8")
        except UnicodeDecodeError:
            yield lineno, None, f"line {lineno} is not valid UTF-8 text"
            continue
        if text.strip():
            yield lineno, text, None


def _open_for_questions(settings: Settings):  # -> Engine (imported lazily: cold start)
    """The engine; the default index is built on first use (only that one)."""
    from newsdesk.services import open_engine

    return open_engine(settings, build_if_missing=True)


def cmd_ask(settings: Settings, args: argparse.Namespace) -> int:
    from index.engine import clean_question

    k = max(1, min(args.k, 50))
    if args.question:
        question = clean_question(" ".join(args.question), settings.max_question_chars)
        engine = _open_for_questions(settings)
        answer = engine.ask(question, k=k)
        print(
            json.dumps(answer_json(answer), ensure_ascii=False)
            if args.json
            else format_answer(answer, bold=sys.stdout.isatty())
        )
        return 0
    if sys.stdin.isatty():
        print("One question per line; Ctrl+D ends.", file=sys.stderr)
    engine = None  # opened at the first question: an empty stdin loads nothing
    rows = failures = 0
    for _lineno, question, error in _stdin_questions():
        rows += 1
        try:
            if error:
                raise BadQuestionError(error)
            assert question is not None
            if engine is None:
                engine = _open_for_questions(settings)
            out: dict[str, Any] = answer_json(engine.ask(question, k=k))
        except BadQuestionError as exc:
            failures += 1
            out = {"question": question, "answered": False, "error": str(exc)}
        print(json.dumps(out, ensure_ascii=False), flush=True)
    if not rows:
        raise BadQuestionError(
            "No question given: pass one as an argument or one per line on stdin."
        )
    return 0 if failures < rows else EXIT_USAGE


# ---- reindex ---------------------------------------------------------------------------


class _Progress:
    """The embedding progress bar of a re-index (stderr; none with --quiet)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        if self.quiet or not total:
            return
        if self.bar is None:
            from tqdm import tqdm

            # passages and their sentences, each distinct text once
            self.bar = tqdm(total=total, unit="text", desc="embedding", file=sys.stderr)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def cmd_reindex(settings: Settings, *, quiet: bool = False, ray: str | None = None) -> int:
    """``ray``: ``--ray``'s address (None: no --ray; "": --ray alone), see ``cluster``."""
    from newsdesk import cluster
    from newsdesk.feeds import reindex_fetched
    from newsdesk.services import make_embedder

    address = cluster.ray_address(settings, ray)
    if address is None:
        embedder = make_embedder(settings, purpose="bulk")
    else:
        embedder = cluster.make_ray_embedder(settings, address)
    progress = _Progress(quiet)
    try:
        report = reindex_fetched(settings, embedder, progress=progress)
    finally:
        progress.close()
        cluster.close(embedder)
    print(report.summary(settings.index_path))
    if (line := cluster.ray_summary(embedder)) is not None:
        print(line)
    return 0


# ---- sources and fetch -----------------------------------------------------------------


def cmd_sources(settings: Settings, args: argparse.Namespace) -> int:
    from newsdesk import feeds

    if args.action == "add":
        source = feeds.add_source(settings, args.url, args.name)
        print(f"Following {source.name}: {source.url}")
        print("Its articles arrive with the next round: newsdesk fetch (or the bot's schedule).")
    elif args.action == "list":
        sources = feeds.list_sources(settings)
        if not sources:
            print("No sources yet. Follow one with: newsdesk sources add URL [--name NAME]")
        for source in sources:
            print(source.describe())
    elif args.action == "remove":
        source = feeds.remove_source(settings, args.source)
        print(f"Stopped following {source.name}: {source.url}")
        if source.articles:
            print(
                f"Its {source.articles} article(s) stay in {feeds.archive_file(settings, source)}"
                " (delete that file and run newsdesk reindex to drop them)."
            )
    return 0


def cmd_fetch(settings: Settings, *, quiet: bool = False) -> int:
    from newsdesk import feeds

    if not feeds.list_sources(settings) and not feeds.reindex_pending(settings):
        print("No sources to fetch. Follow one with: newsdesk sources add URL [--name NAME]")
        return 0
    progress = _Progress(quiet)
    try:
        result = feeds.fetch_and_reindex(settings, progress=progress)
    finally:
        progress.close()
    print("\n".join(result.summary.lines()))
    if result.report is None:
        print("Nothing changed: the index is up to date.")
    else:
        print(result.report.summary(settings.index_path))
    return 0


# ---- eval ------------------------------------------------------------------------------


def _eval_questions(file: Path):  # -> list[EvalQuestion]
    """The question file, or a one-line error naming it (missing, a folder, not text)."""
    from index.evaluation import read_questions

    if not file.exists():
        raise NewsdeskError(f"No question file at {file}.")
    if not file.is_file():
        raise NewsdeskError(f"{file} is not a file: give a JSONL file with q, answer, doc.")
    try:
        return read_questions(file)
    except UnicodeDecodeError as exc:
        raise NewsdeskError(
            f"{file} is not UTF-8 text (byte {exc.start}): give a JSONL file with q, answer, doc."
        ) from exc


def cmd_eval(settings: Settings, file: Path, details: Path | None) -> int:
    from index.evaluation import evaluate, format_table
    from newsdesk.services import open_engine

    questions = _eval_questions(file)
    if details and details.is_dir():
        raise NewsdeskError(f"--details {details} is a directory: give a file name.")
    engine = open_engine(settings)
    results = evaluate(engine, questions)
    print(
        f"index {engine.index.version} ({engine.index.manifest.passages} passages), "
        f"model {engine.embedder.name}, threshold {engine.extractor.threshold}"
    )
    print(format_table(results))
    if details:
        with details.open("w", encoding="utf-8") as fh:
            for r in results:
                for row in r.details:
                    fh.write(json.dumps({"mode": r.mode, **row}, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
