"""Several bot instances serving one bot, end to end: three real ``newsdesk bot`` processes
in webhook mode on one PostgreSQL database and one shared index folder, behind a
round-robin load balancer (tests/botapi/balancer.py, nginx's stand-in) to which the local
Bot API server (tests/botapi/server.py) posts every update.

Shown here: questions from 50 chats spread over the three are all answered; a "More
sources" press lands on another instance than the answer's and works; the rate limit holds
across instances; a non-admin is refused the admin commands on every instance; every
instance hot-reloads a new index version; and every subscriber gets each new article's
alert exactly once while the instance delivering them is killed with SIGKILL between two
sends (the other instances send the rest once its lease ends).

The one window this cannot close is a kill after Telegram accepted a message and before
the instance recorded it as sent: that alert goes out again (see bot/delivery.py). The
test kills between sends: the killed instance's last call is held by the Bot API server
and never carried out.

The hashing embedder keeps the processes fast to start; each checks for a new index
version every 0.3 s; the alerts' lease is 2 s (``ALERTS`` below is the plugin the bot
processes load instead of the default one).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.__main__ import webhook_url_problem
from bot.alerts import alerts_plugin
from index.store import current_version_path
from tests.botapi.balancer import Balancer
from tests.botapi.server import BotApiServer, BotMessage
from tests.conftest import REPO, ArticleWriter, run_cli, wait_until
from tests.servers import free_port

TOKEN = "123:TEST"
SECRET = "multi-instance-secret_1"
ADMIN = 1001
INSTANCES = 3
LEASE = 2.0  # seconds: the wait before a live instance sends what a dead one held
LEASE_Q = "when does the base lease end?"
TOPIC = "Russian troops in Central Asia"
DRILLS_TITLE = "Russian troops start drills in Tajikistan"
PATROL_TITLE = "Russian troops join patrols on the Kyrgyz border"
DRILLS_Q = "how many Russian troops take part in the drills near the Afghan border?"
REFUSED = {
    "/reindex": "only the bot's admins can re-index",
    "/sources": "only the bot's admins can manage news sources",
}

# The alerts plugin of the bot processes (NEWSDESK_BOT_PLUGINS names it; it replaces the
# default one): the hashing embedder's threshold, a short lease and quick retries.
ALERTS = alerts_plugin(threshold=0.15, retry_interval=0.3, lease=LEASE)


def is_sent(message: BotMessage) -> bool:
    return message.event == "sent"


def is_alert(message: BotMessage) -> bool:
    return message.event == "sent" and message.text.startswith(("New article", "2 new"))


class Cluster:
    """Three ``newsdesk bot`` processes on one database and one data folder."""

    def __init__(
        self,
        server: BotApiServer,
        balancer: Balancer,
        ports: list[int],
        data_dir: Path,
        corpus: Path,
        database_url: str,
    ) -> None:
        self.server = server
        self.balancer = balancer
        self.ports = ports
        self.data_dir = data_dir
        self.corpus = corpus
        self.database_url = database_url
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * len(ports)
        self.logs = [data_dir.parent / f"bot-i{i}.log" for i in range(len(ports))]

    def env(self, i: int | None = None) -> dict[str, str]:
        env = {
            **os.environ,
            "NEWSDESK_HOME": str(self.data_dir.parent),  # no stray .env
            "NEWSDESK_DATA_DIR": str(self.data_dir),
            "NEWSDESK_CORPUS_DIRS": str(self.corpus),
            "NEWSDESK_EMBEDDING_MODEL": "hashing",
            "NEWSDESK_DATABASE_URL": self.database_url,
        }
        if i is not None:
            env |= {
                "NEWSDESK_TELEGRAM_TOKEN": TOKEN,
                "NEWSDESK_TELEGRAM_BASE_URL": self.server.base_url_for(f"i{i}"),
                "NEWSDESK_TELEGRAM_WEBHOOK_URL": f"{self.balancer.url}/telegram",
                "NEWSDESK_TELEGRAM_WEBHOOK_SECRET": SECRET,
                "NEWSDESK_TELEGRAM_WEBHOOK_LISTEN": "127.0.0.1",
                "NEWSDESK_TELEGRAM_WEBHOOK_PORT": str(self.ports[i]),
                "NEWSDESK_INSTANCE_NAME": f"i{i}",
                "NEWSDESK_ADMIN_IDS": str(ADMIN),
                "NEWSDESK_BOT_RELOAD_INTERVAL": "0.3",
                "NEWSDESK_BOT_RATE_LIMIT": "3",
                "NEWSDESK_BOT_RATE_WINDOW": "60",
                "NEWSDESK_BOT_PLUGINS": f"{__name__}:ALERTS",
                "NEWSDESK_LOG_LEVEL": "INFO",
            }
        return env

    async def reindex(self) -> str:
        """``newsdesk reindex`` in the shared folder, as an operator would run it; returns
        the version it made current."""
        done = await asyncio.to_thread(run_cli, "reindex", "--quiet", env=self.env(), timeout=120)
        assert done.returncode == 0, done.stderr.decode()
        current = current_version_path(self.data_dir / "index")
        assert current is not None
        return current.name

    def start(self, i: int) -> None:
        with self.logs[i].open("ab") as log:
            self.procs[i] = subprocess.Popen(
                [sys.executable, "-m", "newsdesk.cli", "bot"],
                cwd=REPO,
                env=self.env(i),
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def log(self, i: int) -> str:
        return self.logs[i].read_text(encoding="utf-8", errors="replace")

    def ready(self, i: int) -> bool:
        proc = self.procs[i]
        assert proc is not None
        if proc.poll() is not None:
            raise AssertionError(f"instance i{i} exited {proc.returncode}:\n{self.log(i)}")
        return any(c.tag == f"i{i}" for c in self.server.calls("setWebhook"))

    async def start_all(self, timeout: float = 60.0) -> None:
        for i in range(len(self.ports)):
            self.start(i)
        await wait_until(
            lambda: all(self.ready(i) for i in range(len(self.ports))), timeout, "instances up"
        )

    def kill(self, i: int) -> None:
        proc = self.procs[i]
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                proc.terminate()
        for i, proc in enumerate(self.procs):
            if proc is None:
                continue
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill(i)

    # -- the user's side --------------------------------------------------------------------

    async def say(
        self, text: str, chat_id: int, *, to: int | None = None, user_id: int | None = None
    ) -> BotMessage:
        """Send as a user (through backend ``to`` when given); the bot's next message."""
        if to is not None:
            self.balancer.route_next(to)
        self.server.user_sends(text, chat_id=chat_id, user_id=user_id or chat_id)
        return await self.server.wait_for_message(chat_id, is_sent, timeout=30)

    def sender_of(self, message: BotMessage) -> str:
        """The instance (its tag) whose sendMessage made ``message``."""
        for call in self.server.calls("sendMessage"):
            result = call.response.get("result") or {}
            if (
                result.get("message_id") == message.message_id
                and result.get("chat", {}).get("id") == message.chat_id
            ):
                return call.tag
        raise AssertionError(f"no sendMessage made message {message.message_id}")


@pytest.fixture
async def cluster(
    write_article: ArticleWriter, small_corpus: Path, tmp_path: Path, pg_database_url: str
) -> AsyncIterator[Cluster]:
    ports = [free_port() for _ in range(INSTANCES)]
    async with (
        BotApiServer(TOKEN) as server,
        Balancer([f"http://127.0.0.1:{p}" for p in ports]) as balancer,
    ):
        cluster = Cluster(server, balancer, ports, tmp_path / "data", small_corpus, pg_database_url)
        try:
            await cluster.reindex()  # one build before the instances start
            await cluster.start_all()
            yield cluster
        finally:
            server.release()
            cluster.stop_all()
            for i in range(INSTANCES):  # shown when the test fails
                print(f"---- instance i{i} ----\n{cluster.log(i)[-3000:]}")


def test_http_webhook_url_only_with_a_local_bot_api_server() -> None:
    telegram, local = "https://api.telegram.org/bot", "http://127.0.0.1:8081/bot"
    assert webhook_url_problem("https://bot.example.org/hook", telegram) is None
    assert "only to https://" in (webhook_url_problem("http://10.0.0.5/hook", telegram) or "")
    assert webhook_url_problem("http://10.0.0.5:8080/hook", local) is None
    assert webhook_url_problem("https://bot.example.org/hook", local) is None
    assert "https:// or http://" in (webhook_url_problem("ftp://10.0.0.5/hook", local) or "")
    assert "an https:// URL" in (webhook_url_problem("bot.example.org", telegram) or "")


async def test_three_instances_serve_one_bot(cluster: Cluster, write_article: ArticleWriter):
    server, balancer = cluster.server, cluster.balancer
    tags = {f"i{i}" for i in range(INSTANCES)}

    # 50 chats ask at once: every one is answered, by all three instances between them
    chats = range(5000, 5050)
    for chat in chats:
        server.user_sends(LEASE_Q, chat_id=chat, user_id=chat)
    replies = await asyncio.gather(
        *(server.wait_for_message(chat, is_sent, timeout=60) for chat in chats)
    )
    assert all("until 2042" in reply.text for reply in replies)
    assert sorted(balancer.counts) == [0, 1, 2] and min(balancer.counts.values()) >= 10
    assert {cluster.sender_of(reply) for reply in replies} == tags

    # "More sources" on instance 0's answer, pressed through instance 1
    user = 6001
    answer = await cluster.say(LEASE_Q, user, to=0)
    assert cluster.sender_of(answer) == "i0" and answer.callback_data
    balancer.route_next(1)
    server.user_clicks(user, user, answer.message_id, answer.callback_data[0])
    more = await server.wait_for_message(user, is_sent, timeout=30)
    assert more.text.startswith("More sources (1–"), more.text
    assert "Rangers win Old Firm derby" in more.text
    assert cluster.sender_of(more) == "i1"
    assert [c.tag for c in server.calls("answerCallbackQuery")] == ["i1"]

    # the rate limit (3 a minute) holds across instances: the 4th question is refused
    # (later ones are refused silently)
    limited_user = 6002
    for n, to in enumerate([0, 1, 2]):
        ok = await cluster.say(LEASE_Q, limited_user, to=to)
        assert "2042" in ok.text, f"question {n + 1} on i{to}: {ok.text}"
    refused = await cluster.say(LEASE_Q, limited_user, to=1)
    assert "asking faster than I can look things up" in refused.text, refused.text
    assert cluster.sender_of(refused) == "i1"

    # a non-admin is refused the admin commands on every instance; the admin is not
    for to in range(INSTANCES):
        for command, refusal in REFUSED.items():
            reply = await cluster.say(command, 6003, to=to)
            assert refusal in reply.text, f"{command} on i{to}: {reply.text}"
            assert cluster.sender_of(reply) == f"i{to}"

    # subscribers, spread over the instances
    subscribers = list(range(7001, 7005))
    for n, chat in enumerate(subscribers):
        confirmed = await cluster.say(f"/subscribe {TOPIC}", chat, to=n % INSTANCES)
        assert confirmed.text.startswith("Subscribed to"), confirmed.text

    # two new articles; the delivering instance is held on its second alert, then killed
    write_article(
        "asia/drills.txt",
        DRILLS_TITLE,
        "Russian troops based in Tajikistan began joint exercises with Central Asia allies "
        "on Monday, the defence ministry in Moscow said.",
        "The drills near the Afghan border involve about 2,000 Russian troops and will last "
        "a week, the ministry added. Central Asia has hosted several such exercises this year.",
        headers={"Source": "Asia Wire", "URL": "https://example.org/asia/drills"},
    )
    write_article(
        "asia/patrol.txt",
        PATROL_TITLE,
        "Russian troops stationed in Kyrgyzstan joined border patrols in Central Asia on "
        "Friday, officials in Bishkek said.",
        "The patrols will cover the mountain passes where Russian troops have trained since May.",
    )
    server.hold("sendMessage", after=1, chat_ids=subscribers)
    version = await cluster.reindex()
    held = await server.wait_held(timeout=30)
    victim = int(held.tag.removeprefix("i"))
    first_alerts = [m for chat in subscribers for m in server.sent(chat) if is_alert(m)]
    assert len(first_alerts) == 1 and cluster.sender_of(first_alerts[0]) == held.tag
    cluster.kill(victim)  # SIGKILL between two sends: the held one never happened
    await wait_until(lambda: held.abandoned, 10, "the killed instance's call dropped")
    server.release()

    def alerted() -> bool:
        return all(any(is_alert(m) for m in server.sent(chat)) for chat in subscribers)

    await wait_until(alerted, 30, "an alert to every subscriber")
    taken_over = min(
        c.time for c in server.calls("sendMessage") if c.tag != held.tag and c.time > held.time
    )
    assert taken_over - held.time >= LEASE - 0.5  # not before the dead one's lease ended
    await asyncio.sleep(LEASE + 1.0)  # long enough for a repeat to show up, if one would
    for chat in subscribers:
        alerts = [m for m in server.sent(chat) if is_alert(m)]
        assert len(alerts) == 1, f"chat {chat}: {[a.text[:60] for a in alerts]}"
        assert DRILLS_TITLE in alerts[0].text and PATROL_TITLE in alerts[0].text
    senders = {cluster.sender_of(m) for c in subscribers for m in server.sent(c) if is_alert(m)}
    assert held.tag in senders and len(senders) >= 2  # the rest came from the others

    # the new version was matched once, by one instance; the others skipped it (the lock),
    # so the cursor's compare-and-set never had to stop a second matching
    matched = [i for i in range(INSTANCES) if f"Alerts: versions {version}" in cluster.log(i)]
    assert len(matched) == 1, matched
    assert not any("Alert matching skipped" in cluster.log(i) for i in range(INSTANCES))

    # every instance hot-reloaded the new version (the killed one before it died), and the
    # live ones answer from it
    serving = f"Now serving index {version}"
    for i in range(INSTANCES):
        await wait_until(lambda i=i: serving in cluster.log(i), 10, f"i{i} reload")
    for to in sorted(set(range(INSTANCES)) - {victim}):
        reply = await cluster.say(DRILLS_Q, 6100 + to, to=to)
        assert "2,000 Russian troops" in reply.text, f"i{to}: {reply.text}"
        assert cluster.sender_of(reply) == f"i{to}"
