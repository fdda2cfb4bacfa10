"""What the handlers use: the engine (hot-swapped), the question store, the rate limiter,
and the state database they live in (``database``: SQLite files by default, or the
PostgreSQL database every instance shares; its ``try_lock`` serves work that must run once
across instances).

Built once in post_init. Retrieval runs on a small thread pool so the event loop stays
free; each call takes the engine it starts with, so a swap never disturbs a question in
flight: it finishes on the old engine, and the next question gets the new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from bot.format import example_questions
from bot.limits import DatabaseRateLimiter, Limiter, RateLimiter
from bot.state import QuestionStore
from index.build import ReindexReport
from index.database import Database
from index.embedders import Embedder
from index.embedders.locked import LockedEmbedder
from index.engine import Engine
from index.errors import NewsdeskError
from index.store import IndexDir, current_version_path, instance_name
from index.subscriptions import SubscriptionStore
from index.types import Answer, Hit
from newsdesk.services import (
    STATE_FILE,
    make_embedder,
    open_engine,
    open_state_database,
    run_reindex,
)
from newsdesk.settings import BotSettings

log = logging.getLogger(__name__)


class InstanceNameTakenError(NewsdeskError):
    """Another running instance holds this ``NEWSDESK_INSTANCE_NAME``: two instances under
    one name would share alert leases (and could send an alert twice)."""

    def __init__(self, name: str, where: str) -> None:
        super().__init__(
            f"Another running instance is named {name!r} (NEWSDESK_INSTANCE_NAME, held in "
            f"{where}). Give each instance its own name."
        )
        self.name = name


T = TypeVar("T")
SwapHook = Callable[[Engine, Engine], Awaitable[None]]
MAX_HITS = 50


def pick_examples(engine: Engine, n: int = 3) -> list[str]:
    """Example questions from titles spread over the archive, newest first."""
    articles = sorted(
        engine.index.articles.values(), key=lambda a: (a.date or "", a.doc_id), reverse=True
    )
    step = max(1, len(articles) // 20)
    return example_questions([a.title for a in articles[::step]], n)


@dataclass
class BotServices:
    settings: BotSettings
    embedder: Embedder
    engine: Engine
    questions: QuestionStore
    limiter: Limiter
    executor: ThreadPoolExecutor
    examples: list[str] = field(default_factory=list)
    database: Database | None = None  # None: tests that build services by hand
    # This process's name in the index folder's reader records (index.store.note_reader),
    # which keep the version it serves from being cleaned up under it on shared storage.
    instance: str = ""
    loaded_at: float = field(default_factory=time.time)
    swap_hooks: list[SwapHook] = field(default_factory=list)
    _reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _reindex_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _failed: Path | None = None
    _held: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    @classmethod
    def open(cls, settings: BotSettings, embedder: Embedder | None = None) -> BotServices:
        """Load the model and the index (building it when there is none). Blocking."""
        # the state first: a damaged file or an unreachable database is reported before a
        # long index build
        database = open_state_database(settings, settings.data_dir / STATE_FILE)
        held = contextlib.ExitStack()
        try:
            name = settings.instance_name  # a chosen name must be unique among running ones
            if name and not held.enter_context(database.try_lock(f"instance:{name}")):
                raise InstanceNameTakenError(name, database.label)
            questions = QuestionStore(database, ttl=settings.bot_question_ttl_days * 86400)
            limiter: Limiter
            if settings.database_url is not None:  # shared by every instance
                limiter = DatabaseRateLimiter(
                    database, settings.bot_rate_limit, settings.bot_rate_window
                )
            else:
                limiter = RateLimiter(settings.bot_rate_limit, settings.bot_rate_window)
            embedder = LockedEmbedder(embedder or make_embedder(settings))
            engine = open_engine(settings, embedder, build_if_missing=True)
        except BaseException:
            held.close()
            database.close()
            raise
        services = cls(
            settings=settings,
            embedder=embedder,
            engine=engine,
            questions=questions,
            limiter=limiter,
            executor=ThreadPoolExecutor(settings.bot_workers, thread_name_prefix="newsdesk-ask"),
            examples=pick_examples(engine),
            database=database,
            instance=instance_name(settings.instance_name),
            _held=held,
        )
        services.note_reader()
        return services

    def note_reader(self) -> None:
        """Tell the index folder which version this instance serves (a heartbeat that keeps
        it from being cleaned up while in use). Blocking; never raises."""
        if self.instance:
            IndexDir(self.settings.index_path).note_reader(
                self.instance, self.engine.index.version, every=self.settings.bot_reload_interval
            )

    def subscription_store(self, **limits: int) -> SubscriptionStore:
        """The alert store: in the shared PostgreSQL database when one is configured, else
        its own SQLite file in the data folder (as always). Blocking."""
        if self.settings.database_url is not None and self.database is not None:
            return SubscriptionStore.on(self.database, **limits)
        return SubscriptionStore.in_data_dir(self.settings.data_dir, **limits)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run blocking engine work on the question threads, not on the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, partial(fn, *args, **kwargs))

    async def ask(self, question: str, k: int = 10, prefer_doc_ids: Sequence[str] = ()) -> Answer:
        engine = self.engine  # this question finishes on this engine, whatever happens
        return await self.run(engine.ask, question, k, prefer_doc_ids=tuple(prefer_doc_ids))

    async def search(self, question: str, k: int) -> list[Hit]:
        engine = self.engine
        return await self.run(engine.search, question, min(k, MAX_HITS))

    # ---- hot reload --------------------------------------------------------------------

    async def reload_if_changed(self) -> bool:
        """Load the index version ``current`` points at, if it is not the one serving."""
        async with self._reload_lock:
            # off the loop: on shared storage (NFS) a stat can hang
            target = await asyncio.to_thread(current_version_path, self.settings.index_path)
            if target is None or target == self.engine.index.path.resolve():
                return False
            if target == self._failed:
                return False
            try:
                new = await asyncio.to_thread(open_engine, self.settings, self.embedder)
            except Exception:
                self._failed = target
                log.exception(
                    "Could not load the new index version %s; still serving %s",
                    target,
                    self.engine.index.version,
                )
                return False
            old, self.engine = self.engine, new
            self._failed = None
            await asyncio.to_thread(self.note_reader)
            self.loaded_at = time.time()
            self.examples = pick_examples(new)
            log.warning(
                "Now serving index %s (%d articles, %d passages), was %s",
                new.index.version,
                new.index.manifest.articles,
                new.index.manifest.passages,
                old.index.version,
            )
        for hook in self.swap_hooks:
            try:
                await hook(old, new)
            except Exception:
                log.exception("An index-swap hook failed")
        return True

    @property
    def reloading(self) -> bool:
        return self._reload_lock.locked()

    async def check_for_new_version(self) -> None:
        """``reload_if_changed`` for the index watcher (a JobQueue job): never raises."""
        try:
            await self.reload_if_changed()
        except Exception:
            log.exception("Index reload check failed")
        await asyncio.to_thread(self.note_reader)

    # ---- re-index ----------------------------------------------------------------------

    @property
    def reindexing(self) -> bool:
        return self._reindex_lock.locked()

    async def reindex(self) -> ReindexReport:
        """Run the incremental re-index off the loop, then swap to its result at once."""
        async with self._reindex_lock:
            report = await asyncio.to_thread(
                run_reindex, self.settings, self.embedder, database=self.database
            )
        await self.reload_if_changed()
        return report

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        if self.instance:
            IndexDir(self.settings.index_path).drop_reader(self.instance)
        self.questions.close()
        self._held.close()
        if self.database is not None:
            self.database.close()
