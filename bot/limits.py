"""A per-asker sliding-window rate limit for questions (Telegram's own limits are PTB's job).

``RateLimiter`` counts in memory, per process (the default); ``DatabaseRateLimiter`` counts
in the shared state database, so that the limit holds across bot instances (used when a
PostgreSQL database is configured).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from index.database import Database


@dataclass(frozen=True, slots=True)
class Verdict:
    """``wait``: seconds until the key may ask again (0.0: go ahead). ``notify``: tell the
    asker (only the first refusal of a window is worth a message)."""

    wait: float
    notify: bool = False

    @property
    def allowed(self) -> bool:
        return self.wait == 0.0


class RateLimiter:
    """At most ``limit`` events per ``window`` seconds per key.

    ``check(key)`` records an event and allows it, or refuses it (recording nothing) with
    how many seconds to wait, asking to notify only the first refusal until the key may
    ask again: a flood of refused messages costs one "please wait", not one each (in a
    group, each costs one of the group's 20 messages a minute). Not thread-safe: use it
    from the event loop only.
    """

    def __init__(
        self, limit: int, window: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("limit must be >= 1 and window > 0")
        self.limit = limit
        self.window = window
        self._clock = clock
        self._events: dict[int, deque[float]] = {}
        self._told_until: dict[int, float] = {}  # key -> end of the wait it was told about

    def check(self, key: int) -> Verdict:
        now = self._clock()
        events = self._events.setdefault(key, deque())
        while events and events[0] <= now - self.window:
            events.popleft()
        if len(events) >= self.limit:
            wait = events[0] + self.window - now
            told = self._told_until.get(key)
            if told is not None and told > now:
                return Verdict(wait)
            self._told_until[key] = now + wait
            return Verdict(wait, notify=True)
        events.append(now)
        self._told_until.pop(key, None)
        if len(self._events) > 10_000:
            self._forget_idle(now)
        return Verdict(0.0)

    def hit(self, key: int) -> float:
        """``check`` for callers that only need the wait (0.0: allowed)."""
        return self.check(key).wait

    async def check_async(self, key: int) -> Verdict:
        """``check`` for the event loop (in memory: no wait, so it runs in place)."""
        return self.check(key)

    def _forget_idle(self, now: float) -> None:
        idle = [k for k, ev in self._events.items() if not ev or ev[-1] <= now - self.window]
        for key in idle:
            del self._events[key]
            self._told_until.pop(key, None)


_LIMIT_MIGRATIONS = (
    {
        "sqlite": """
        CREATE TABLE rate_events (key INTEGER NOT NULL, at REAL NOT NULL);
        CREATE INDEX rate_events_key ON rate_events (key, at);
        CREATE TABLE rate_told (key INTEGER PRIMARY KEY, until REAL NOT NULL)
        """,
        "postgres": """
        CREATE TABLE rate_events (key BIGINT NOT NULL, at DOUBLE PRECISION NOT NULL);
        CREATE INDEX rate_events_key ON rate_events (key, at);
        CREATE TABLE rate_told (key BIGINT PRIMARY KEY, until DOUBLE PRECISION NOT NULL)
        """,
    },
)
LIMITS_STORE = "rate_limits"


class DatabaseRateLimiter:
    """``RateLimiter``'s contract, kept in the state database so that it holds across bot
    instances: at most ``limit`` events per ``window`` seconds per key, wherever they were
    asked, and only the first refusal of a window is notified (by whichever instance).

    Each ``check`` is one write transaction holding a lock on its key (PostgreSQL: an
    advisory transaction lock; SQLite: ``BEGIN IMMEDIATE``), so concurrent checks of one
    key count one at a time. The clock is wall time (``time.time``): the instances'
    clocks must agree (NTP) to a small part of the window. Thread-safe; blocking (one
    round trip to the database).
    """

    def __init__(
        self,
        database: Database,
        limit: int,
        window: float,
        *,
        clock: Callable[[], float] = time.time,
        sweep_every: int = 1000,
    ) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("limit must be >= 1 and window > 0")
        self.database = database
        self.limit = limit
        self.window = window
        self._clock = clock
        self._sweep_every = sweep_every
        self._checks = 0
        database.migrate(LIMITS_STORE, _LIMIT_MIGRATIONS)

    def check(self, key: int) -> Verdict:
        now = self._clock()
        self._checks += 1
        with self.database.write() as conn:
            conn.lock(f"rate:{key}")
            conn.execute(
                "DELETE FROM rate_events WHERE key = ? AND at <= ?", (key, now - self.window)
            )
            count, first = conn.execute(
                "SELECT COUNT(*), MIN(at) FROM rate_events WHERE key = ?", (key,)
            ).fetchone()
            if count >= self.limit:
                wait = max(float(first) + self.window - now, 1e-6)
                told = conn.execute("SELECT until FROM rate_told WHERE key = ?", (key,)).fetchone()
                if told is not None and told[0] > now:
                    return Verdict(wait)
                conn.execute(
                    "INSERT INTO rate_told (key, until) VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET until = excluded.until",
                    (key, now + wait),
                )
                return Verdict(wait, notify=True)
            conn.execute("INSERT INTO rate_events (key, at) VALUES (?, ?)", (key, now))
            conn.execute("DELETE FROM rate_told WHERE key = ?", (key,))
            if self._checks % self._sweep_every == 0:  # keys not seen for a window
                conn.execute("DELETE FROM rate_events WHERE at <= ?", (now - self.window,))
                conn.execute("DELETE FROM rate_told WHERE until <= ?", (now,))
        return Verdict(0.0)

    def hit(self, key: int) -> float:
        """``check`` for callers that only need the wait (0.0: allowed)."""
        return self.check(key).wait

    async def check_async(self, key: int) -> Verdict:
        """``check`` off the event loop (it waits for the database)."""
        return await asyncio.to_thread(self.check, key)


Limiter = RateLimiter | DatabaseRateLimiter
