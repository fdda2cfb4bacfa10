"""Load test: many chats asking the real bot at once, through the local Bot API server.

    .venv/bin/python scripts/load_bot.py                       # sample corpus, real model
    .venv/bin/python scripts/load_bot.py --corpus shared       # ../shared/corpus, dev questions
    .venv/bin/python scripts/load_bot.py --model hashing       # the fake embedder, no torch
    .venv/bin/python scripts/load_bot.py --instances 1                 # webhook, SQLite state
    .venv/bin/python scripts/load_bot.py --instances 1 --postgres      # PostgreSQL state
    .venv/bin/python scripts/load_bot.py --instances 3 --postgres      # 3 behind a balancer
    .venv/bin/python scripts/load_bot.py --instances 3 --database-url postgresql://...

The fake Telegram server (tests/botapi/server.py) runs as a child process, so this process
holds only the bot (as in production) and a light driver. Each of ``--chats`` users asks
its share of ``--questions`` one after the other, waiting for each reply (a person waits
for the answer before asking again); all chats run concurrently. Latency is from the
moment the question reaches the server to the moment the bot's reply does.

Without ``--instances`` the bot runs in this process and long-polls. With
``--instances N`` it is N bot processes in webhook mode (the Application ``newsdesk bot``
builds, run by this script so that ``--no-flood-limit`` reaches them; no alert or feed
plugin), each on its own port behind a round-robin balancer (tests/botapi/balancer.py,
nginx's stand-in, also a child process) to which the server posts every update. Their
state is SQLite files in the data dir, or PostgreSQL: ``--database-url`` names a
database, ``--postgres`` starts a throwaway cluster (tests/servers/postgres.py's code) in a
temporary folder and removes it afterwards. The last line printed is one row: setup,
replies/s, p50, p95, errors.

The index is built in ``--data-dir`` on first use (the shared corpus takes minutes with
the real model) and reused afterwards. Not a test: it prints figures, it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
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
from tests.servers import free_port  # noqa: E402

TOKEN = "123:TEST"
SECRET = "load-bot-secret"
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


def start_listener(module: str, *args: str) -> tuple[subprocess.Popen[str], str]:
    """A test server module as a child process; its URL, from the line it prints."""
    proc = subprocess.Popen(
        [sys.executable, "-m", module, "--port", "0", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise SystemExit(f"load_bot: {module} did not start: {line!r}")
    url = line.split("listening on ", 1)[1].split()[0]
    return proc, url


def start_server() -> tuple[subprocess.Popen[str], str]:
    return start_listener("tests.botapi.server", "--token", TOKEN)


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str]:
    """A PostgreSQL cluster in a temporary folder (as the tests start it); a database URL."""
    from tests.servers.postgres import PG_BIN, throwaway_cluster

    if not (PG_BIN / "initdb").exists():
        raise SystemExit(f"load_bot: PostgreSQL is not installed ({PG_BIN}/initdb not found)")
    import psycopg

    with throwaway_cluster("newsdesk-load-pg-") as server:
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE load_bot")
        yield server.url_for("load_bot")


def instance_env(args: argparse.Namespace, data_dir: Path) -> dict[str, str]:
    """The settings every bot process shares (NEWSDESK_* variables)."""
    env = {
        **os.environ,
        "NEWSDESK_TELEGRAM_TOKEN": TOKEN,
        "NEWSDESK_DATA_DIR": str(data_dir),
        "NEWSDESK_CORPUS_DIRS": os.pathsep.join(str(d) for d in corpus_dirs(args.corpus)),
        "NEWSDESK_EMBEDDING_MODEL": args.model,
        "NEWSDESK_BOT_RATE_LIMIT": "1000000",
        "NEWSDESK_BOT_WORKERS": str(args.workers),
        "NEWSDESK_TELEGRAM_WEBHOOK_SECRET": SECRET,
        "NEWSDESK_TELEGRAM_WEBHOOK_LISTEN": "127.0.0.1",
        "NEWSDESK_LOG_LEVEL": "WARNING",
    }
    env.pop("NEWSDESK_DATABASE_URL", None)
    if args.database_url:
        env["NEWSDESK_DATABASE_URL"] = args.database_url
    return env


class Instances:
    """N bot processes in webhook mode behind the balancer (all child processes)."""

    def __init__(self, args: argparse.Namespace, url: str, data_dir: Path) -> None:
        self.args = args
        self.url = url
        self.env = instance_env(args, data_dir)
        self.ports = [free_port() for _ in range(args.instances)]
        self.procs: list[subprocess.Popen[bytes]] = []
        self.balancer: subprocess.Popen[str] | None = None
        self.logs = Path(tempfile.mkdtemp(prefix="newsdesk-load-logs-"))

    def start(self) -> None:
        # the index once, before N processes would each try to build it
        done = subprocess.run(
            [sys.executable, "-m", "newsdesk.cli", "reindex", "--quiet"],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"load_bot: reindex failed: {done.stderr}")
        backends = [arg for p in self.ports for arg in ("--backend", f"http://127.0.0.1:{p}")]
        self.balancer, balancer_url = start_listener("tests.botapi.balancer", *backends)
        for i, port in enumerate(self.ports):
            env = {
                **self.env,
                "NEWSDESK_TELEGRAM_BASE_URL": f"{self.url}/tag/i{i}/bot",
                "NEWSDESK_TELEGRAM_WEBHOOK_URL": f"{balancer_url}/telegram",
                "NEWSDESK_TELEGRAM_WEBHOOK_PORT": str(port),
                "NEWSDESK_INSTANCE_NAME": f"load-{i}",
            }
            command = [sys.executable, str(Path(__file__).resolve()), "--serve-instance"]
            if self.args.no_flood_limit:
                command.append("--no-flood-limit")
            with (self.logs / f"i{i}.log").open("wb") as log:
                self.procs.append(
                    subprocess.Popen(
                        command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
                    )
                )

    async def ready(self, http: aiohttp.ClientSession, timeout: float = 600) -> None:
        """Wait until every instance has registered the webhook (its server is up)."""
        deadline = time.monotonic() + timeout
        while True:
            for i, proc in enumerate(self.procs):
                if proc.poll() is not None:
                    log = (self.logs / f"i{i}.log").read_text(errors="replace")
                    raise SystemExit(f"load_bot: instance {i} exited:\n{log[-3000:]}")
            async with http.get(f"{self.url}/_test/calls?method=setWebhook") as response:
                tags = {c["tag"] for c in await response.json()}
            if tags >= {f"i{i}" for i in range(len(self.procs))}:
                return
            if time.monotonic() > deadline:
                raise SystemExit("load_bot: the instances did not start in time")
            await asyncio.sleep(0.2)

    def stop(self) -> None:
        for proc in [*self.procs, self.balancer]:
            if proc is not None and proc.poll() is None:
                proc.terminate()
        for proc in [*self.procs, self.balancer]:
            if proc is None:
                continue
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(self.logs, ignore_errors=True)


def serve_instance(no_flood_limit: bool) -> int:
    """One bot process of ``--instances``: the settings from NEWSDESK_*, webhook mode."""
    from bot.app import webhook_options
    from bot.logs import setup_logging

    settings = BotSettings()  # type: ignore[call-arg]
    setup_logging(settings.log_level, [settings.telegram_token.get_secret_value(), SECRET])
    app = build_application(settings, flood_limit=not no_flood_limit)
    app.run_webhook(**webhook_options(settings, SECRET))
    return 0


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


async def drive(args: argparse.Namespace, url: str, questions: list[str]) -> tuple[Run, float]:
    """Every chat asks its share; the run and its wall time."""
    per_chat: list[list[str]] = [[] for _ in range(args.chats)]
    for i in range(args.questions):
        per_chat[i % args.chats].append(questions[i % len(questions)])
    run = Run()
    connector = aiohttp.TCPConnector(limit=args.chats * 2)
    async with aiohttp.ClientSession(connector=connector) as http:
        began = time.perf_counter()
        await asyncio.gather(
            *(chat(http, url, 10_000 + n, qs, run, args.timeout) for n, qs in enumerate(per_chat))
        )
        return run, time.perf_counter() - began


async def get_calls(url: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/_test/calls") as response:
        return list(await response.json())


def cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"


async def run_in_process(
    args: argparse.Namespace, url: str, data_dir: Path, questions: list[str]
) -> tuple[Run, float]:
    settings = BotSettings(  # type: ignore[call-arg]
        _env_file=None,
        telegram_token=TOKEN,
        telegram_base_url=f"{url}/bot",
        data_dir=data_dir,
        corpus_dirs=corpus_dirs(args.corpus),
        embedding_model=args.model,
        bot_rate_limit=1_000_000,
        bot_workers=args.workers,
        database_url=args.database_url or None,
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
        return await drive(args, url, questions)


async def run_instances(
    args: argparse.Namespace, url: str, data_dir: Path, questions: list[str]
) -> tuple[Run, float]:
    instances = Instances(args, url, data_dir)
    try:
        started = time.perf_counter()
        await asyncio.to_thread(instances.start)
        async with aiohttp.ClientSession() as http:
            await instances.ready(http)
        print(
            f"{args.instances} bot instance(s) ready in {time.perf_counter() - started:.1f} s "
            f"(webhook mode behind a round-robin balancer), state in "
            f"{'PostgreSQL' if args.database_url else 'SQLite'}: {args.corpus} corpus, model "
            f"{args.model}, {args.workers} worker threads each, Telegram flood limiter "
            f"{'off' if args.no_flood_limit else 'on'}; machine: {os.cpu_count()} CPUs",
            flush=True,
        )
        return await drive(args, url, questions)
    finally:
        await asyncio.to_thread(instances.stop)


async def main_async(args: argparse.Namespace) -> int:
    questions = load_questions(args.corpus, args.questions_file)
    data_dir = (
        args.data_dir or REPO / ".cache" / "load_bot" / f"{Path(args.corpus).name}-{args.model}"
    )
    with contextlib.ExitStack() as stack:
        if args.postgres:
            args.database_url = stack.enter_context(throwaway_postgres())
        proc, url = start_server()
        try:
            if args.instances:
                run, wall = await run_instances(args, url, data_dir, questions)
            else:
                run, wall = await run_in_process(args, url, data_dir, questions)
            calls = await get_calls(url)
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
    senders = Counter(c.get("tag") or "in-process" for c in calls if c["method"] == "sendMessage")
    if args.instances:
        print(f"replies per instance: {dict(sorted(senders.items()))}")
    errors = kinds["error"] + kinds["timeout"]
    setup = (
        f"{max(args.instances, 1)} instance{'s' if args.instances > 1 else ''}, "
        f"{'PostgreSQL' if args.database_url else 'SQLite'}"
        f"{'' if args.instances else ' (in-process, polling)'}"
    )
    p50 = f"{percentile(latencies, 50):.2f} s" if latencies else "-"
    p95 = f"{percentile(latencies, 95):.2f} s" if latencies else "-"
    print(
        f"| {setup} | {replies / wall:.1f} | {p50} | {p95} | {errors} |  "
        f"<- {args.model}, {args.questions} questions / {args.chats} chats, {cpu_name()}"
    )
    return 0 if errors == 0 else 1


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
    parser.add_argument(
        "--instances",
        type=int,
        default=0,
        help="N bot processes in webhook mode behind a balancer (0: one, in this process)",
    )
    parser.add_argument("--database-url", help="PostgreSQL for the bots' state (default SQLite)")
    parser.add_argument(
        "--postgres", action="store_true", help="start a throwaway PostgreSQL cluster for it"
    )
    parser.add_argument("--serve-instance", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_instance:
        return serve_instance(args.no_flood_limit)
    if args.postgres and args.database_url:
        parser.error("--postgres starts its own database: leave out --database-url")
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
