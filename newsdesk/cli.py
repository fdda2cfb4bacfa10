"""The ``newsdesk`` command: ask, reindex, eval, bot. Errors become messages here, at the edge."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from index.errors import BadQuestionError, IndexBusyError, NewsdeskError
from index.types import Answer, Hit
from newsdesk.settings import Settings

log = logging.getLogger("newsdesk")

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_BUSY = 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="newsdesk",
        description="Answer questions about a news archive with verbatim quotes and sources.",
    )
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

    ev = sub.add_parser("eval", help="evaluate bm25, dense and hybrid on a question file")
    ev.add_argument("file", type=Path, help="JSONL with q, answer (span or null), doc")
    ev.add_argument("--index", type=Path, help="index directory (NEWSDESK_INDEX_DIR)")
    ev.add_argument("--details", type=Path, help="write per-question results (JSONL) here")

    sub.add_parser("bot", help="run the Telegram bot (needs NEWSDESK_TELEGRAM_TOKEN)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "bot":
            from bot.__main__ import main as bot_main

            return bot_main()
        overrides: dict[str, Any] = {}
        if getattr(args, "index", None):
            overrides["index_dir"] = args.index
        if getattr(args, "corpus", None):
            overrides["corpus_dirs"] = args.corpus
        settings = Settings(**overrides)
        if args.command == "ask":
            return cmd_ask(settings, args)
        if args.command == "reindex":
            return cmd_reindex(settings, quiet=args.quiet)
        if args.command == "eval":
            return cmd_eval(settings, args.file, args.details)
    except IndexBusyError as exc:
        print(f"newsdesk: {exc}", file=sys.stderr)
        return EXIT_BUSY
    except BadQuestionError as exc:
        print(f"newsdesk: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except NewsdeskError as exc:
        print(f"newsdesk: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("newsdesk: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`newsdesk ask ... | head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    return EXIT_USAGE


# ---- ask -------------------------------------------------------------------------------


def answer_json(answer: Answer) -> dict[str, Any]:
    passage = answer.passage
    return {
        "question": answer.question,
        "answered": answer.answered,
        "quote": answer.quote if answer.answered else None,
        "highlight": answer.highlight or None,
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


def format_answer(answer: Answer) -> str:
    lines: list[str] = []
    if answer.answered and answer.passage:
        p = answer.passage
        lines.append(f"“{answer.quote}”")
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


def _stdin_questions() -> list[tuple[int, str | None, str | None]]:
    """(line number, question, error) for every non-blank stdin line."""
    rows = []
    for lineno, raw in enumerate(sys.stdin.buffer.read().splitlines(), 1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            rows.append((lineno, None, f"line {lineno} is not valid UTF-8 text"))
            continue
        if text.strip():
            rows.append((lineno, text, None))
    return rows


def cmd_ask(settings: Settings, args: argparse.Namespace) -> int:
    from index.engine import clean_question
    from newsdesk.services import open_engine

    k = max(1, min(args.k, 50))
    if args.question:
        question = clean_question(" ".join(args.question), settings.max_question_chars)
        engine = open_engine(settings, build_if_missing=True)
        answer = engine.ask(question, k=k)
        print(
            json.dumps(answer_json(answer), ensure_ascii=False)
            if args.json
            else format_answer(answer)
        )
        return 0
    rows = _stdin_questions()
    if not rows:
        raise BadQuestionError(
            "No question given: pass one as an argument or one per line on stdin."
        )
    engine = open_engine(settings, build_if_missing=True)
    failures = 0
    for _lineno, question, error in rows:
        try:
            if error:
                raise BadQuestionError(error)
            assert question is not None
            out: dict[str, Any] = answer_json(engine.ask(question, k=k))
        except BadQuestionError as exc:
            failures += 1
            out = {"question": question, "answered": False, "error": str(exc)}
        print(json.dumps(out, ensure_ascii=False), flush=True)
    return 0 if failures < len(rows) else EXIT_USAGE


# ---- reindex ---------------------------------------------------------------------------


def cmd_reindex(settings: Settings, *, quiet: bool = False) -> int:
    from newsdesk.services import make_embedder, run_reindex

    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if quiet or not total:
            return
        if bar is None:
            from tqdm import tqdm

            # passages and their sentences, each distinct text once
            bar = tqdm(total=total, unit="text", desc="embedding", file=sys.stderr)
        bar.update(done - bar.n)

    embedder = make_embedder(settings, purpose="bulk")
    try:
        report = run_reindex(settings, embedder, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    print(report.summary(settings.index_path))
    return 0


# ---- eval ------------------------------------------------------------------------------


def cmd_eval(settings: Settings, file: Path, details: Path | None) -> int:
    from index.evaluation import evaluate, format_table, read_questions
    from newsdesk.services import open_engine

    questions = read_questions(file)
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
