"""Load test: many chats asking the real bot at once, through the local Bot API server.

    .venv/bin/python scripts/load_bot.py                       # sample corpus, real model
    .venv/bin/python scripts/load_bot.py --corpus shared       # ../shared/corpus, dev questions
    .venv/bin/python scripts/load_bot.py --model hashing       # the fake embedder, no torch

The fake Telegram server (tests/botapi/server.py) runs as a child process, so this process
holds only the bot (as in production) and a light driver. Each of ``--chats`` users asks
its share of ``--questions`` one after the other, waiting for each reply (a person waits
for the answer before asking again); all chats run concurrently. Latency is from the
moment the question reaches the server to the moment the bot's reply does.

The index is built in ``--data-dir`` on first use (the shared corpus takes minutes with
the real model) and reused afterwards. Not a test: it prints figures, it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402

from bot.app import build_application, running  # noqa: E402
from bot.context import get_services  # noqa: E402
from bot.handlers import APOLOGY  # noqa: E402
from newsdesk.settings import SAMPLE_CORPUS, BotSettings  # noqa: E402

TOKEN = "123:TEST"
SHARED = REPO.parent / "shared"
SAMPLE_QUESTIONS = [
    "when does the base lease end?",
    "how many russian troops are stationed in tajikistan",
    "who is tajikistan's defence minister?",
    "where did shoigu and rahmon meet?",
    "how long did the talks between Shoigu and Rahmon last?",
    "who heads the russian FSB?",
    "what did rahmon call military cooperation with russia?",
    "who won the 2018 world cup?",  # not in the archive
    "what is the population of Canada?",  # not in the archive
    "when was the lease agreement signed?",
]


@dataclass
class Result:
    latency: float | None
    kind: str  # answered, declined, other, error, timeout


@dataclass
class Run:
    results: list[Result] = field(default_factory=list)


def load_questions(corpus: str, path: Path | None) -> list[str]:
    if path is not None:
        lines = path.read_text(encoding="utf-8").splitlines()
        return [json.loads(x)["q"] if x.lstrip().startswith("{") else x for x in lines if x.strip()]
    if corpus == "shared":
        rows = (SHARED / "eval" / "dev.jsonl").read_text(encoding="utf-8").splitlines()
        return [json.loads(row)["q"] for row in rows if row.strip()]
    return SAMPLE_QUESTIONS


def corpus_dirs(corpus: str) -> list[Path]:
    if corpus == "sample":
        return [SAMPLE_CORPUS]
    if corpus == "shared":
        root = SHARED / "corpus"
        if not root.is_dir():
            raise SystemExit(f"load_bot: {root} not found (the shared data sits beside the repo)")
        return [root]
    return [Path(corpus)]


def classify(reply: dict[str, Any]) -> str:
    text = reply.get("text", "")
    if text == APOLOGY:
        return "error"
    if any(e.get("type") == "blockquote" for e in reply.get("entities", [])):
        return "answered"
    if text.startswith("I couldn't find"):
        return "declined"
    return "other"


def start_server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.botapi.server", "--port", "0", "--token", TOKEN],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise SystemExit(f"load_bot: the test server did not start: {line!r}")
    url = line.split("listening on ", 1)[1].split()[0]
    return proc, url


async def chat(
    http: aiohttp.ClientSession,
    url: str,
    chat_id: int,
    questions: list[str],
    run: Run,
    timeout: float,
) -> None:
    for question in questions:
        started = time.perf_counter()
        async with http.post(
            f"{url}/_test/user_sends",
            json={"text": question, "chat_id": chat_id, "user_id": chat_id},
        ) as sent:
            sent.raise_for_status()
        async with http.post(
            f"{url}/_test/wait_for_message", json={"chat_id": chat_id, "timeout": timeout}
        ) as response:
            if response.status == 408:
                run.results.append(Result(None, "timeout"))
                continue
            reply = await response.json()
        run.results.append(Result(time.perf_counter() - started, classify(reply)))


def percentile(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


async def main_async(args: argparse.Namespace) -> int:
    questions = load_questions(args.corpus, args.questions_file)
    data_dir = (
        args.data_dir or REPO / ".cache" / "load_bot" / f"{Path(args.corpus).name}-{args.model}"
    )
    proc, url = start_server()
    try:
        settings = BotSettings(  # type: ignore[call-arg]
            _env_file=None,
            telegram_token=TOKEN,
            telegram_base_url=f"{url}/bot",
            data_dir=data_dir,
            corpus_dirs=corpus_dirs(args.corpus),
            embedding_model=args.model,
            bot_rate_limit=1_000_000,
            bot_workers=args.workers,
        )
        app = build_application(settings, flood_limit=not args.no_flood_limit)
        started = time.perf_counter()
        async with running(app, poll_timeout=10):
            manifest = get_services(app).engine.index.manifest
            print(
                f"bot ready in {time.perf_counter() - started:.1f} s: {args.corpus} corpus, "
                f"{manifest.articles:,} articles, {manifest.passages:,} passages, model "
                f"{manifest.model_name}, {args.workers} worker threads, Telegram flood limiter "
                f"{'off' if args.no_flood_limit else 'on'}; machine: {os.cpu_count()} CPUs",
                flush=True,
            )
            per_chat: list[list[str]] = [[] for _ in range(args.chats)]
            for i in range(args.questions):
                per_chat[i % args.chats].append(questions[i % len(questions)])
            run = Run()
            connector = aiohttp.TCPConnector(limit=args.chats * 2)
            async with aiohttp.ClientSession(connector=connector) as http:
                began = time.perf_counter()
                await asyncio.gather(
                    *(
                        chat(http, url, 10_000 + n, qs, run, args.timeout)
                        for n, qs in enumerate(per_chat)
                    )
                )
                wall = time.perf_counter() - began
                async with http.get(f"{url}/_test/calls") as response:
                    calls = await response.json()
    finally:
        proc.terminate()
        proc.wait(10)

    kinds = Counter(r.kind for r in run.results)
    latencies = sorted(r.latency for r in run.results if r.latency is not None)
    api_errors = Counter(
        f"{c['method']} {c['status']}"
        for c in calls
        if c["status"] != 200 and c["method"] != "getUpdates"
    )
    replies = len(latencies)
    print(
        f"{args.questions} questions from {args.chats} chat{'s' if args.chats != 1 else ''}: "
        f"{replies} replies in {wall:.1f} s "
        f"({replies / wall:.1f} replies/s)"
    )
    print(
        f"answered {kinds['answered']}, declined {kinds['declined']}, other {kinds['other']}, "
        f"errors {kinds['error'] + kinds['timeout']} (apologies {kinds['error']}, "
        f"timeouts {kinds['timeout']})"
    )
    if latencies:
        p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
        print(f"latency p50 {p50:.2f} s, p95 {p95:.2f} s, max {latencies[-1]:.2f} s")
    print(f"Bot API error responses: {dict(api_errors) or 'none'}")
    return 0 if kinds["error"] + kinds["timeout"] == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--corpus", default="sample", help="sample, shared or a folder")
    parser.add_argument("--questions-file", type=Path, help="JSONL with 'q', or one per line")
    parser.add_argument("--questions", type=int, default=500)
    parser.add_argument("--chats", type=int, default=50)
    parser.add_argument("--model", default="all-MiniLM-L6-v2", help="or 'hashing'")
    parser.add_argument("--workers", type=int, default=2, help="NEWSDESK_BOT_WORKERS")
    parser.add_argument("--data-dir", type=Path, help="default .cache/load_bot/<corpus>-<model>")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait per reply")
    parser.add_argument(
        "--no-flood-limit", action="store_true", help="drop PTB's AIORateLimiter (30 req/s)"
    )
    args = parser.parse_args()
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
