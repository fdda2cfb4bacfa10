"""A per-asker sliding-window rate limit for questions (Telegram's own limits are PTB's job)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


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

    def _forget_idle(self, now: float) -> None:
        idle = [k for k, ev in self._events.items() if not ev or ev[-1] <= now - self.window]
        for key in idle:
            del self._events[key]
            self._told_until.pop(key, None)
