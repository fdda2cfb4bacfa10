"""A small round-robin HTTP load balancer for tests: the stand-in for nginx in front of
several ``newsdesk bot`` instances in webhook mode (docs/scaling.md shows the nginx
configuration production uses).

Each request goes, unchanged (method, path, query, body, the headers that matter), to the
next backend in turn; a backend that refuses the connection is skipped for the next one,
as nginx's ``proxy_next_upstream error`` does; when none answers the request gets 502 (and
Telegram, or the test Bot API server, posts the update again later). Tests can force
which backend gets the next request (:meth:`Balancer.route_next`) and read which served
what (:attr:`Balancer.served`).

Usage from an async test::

    async with Balancer(["http://127.0.0.1:8441", "http://127.0.0.1:8442"]) as balancer:
        webhook_url = f"{balancer.url}/telegram"

Standalone process (``/_balancer/next`` and ``/_balancer/stats`` drive and read it)::

    python -m tests.botapi.balancer --port 0 --backend http://127.0.0.1:8441 ...
"""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter
from collections.abc import Sequence

import aiohttp
from aiohttp import web

from tests.botapi.server import serve_until_signalled

__all__ = ["Balancer"]

# Headers passed on to the backend (the Bot API's secret header among them).
FORWARDED = ("Content-Type", "X-Telegram-Bot-Api-Secret-Token", "User-Agent")
CONTROL = "/_balancer"


class Balancer:
    """Round-robin reverse proxy on ``host``:``port`` (0: a free port) over ``backends``
    (root URLs such as ``http://127.0.0.1:8441``)."""

    def __init__(
        self,
        backends: Sequence[str],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        timeout: float = 30.0,
    ) -> None:
        if not backends:
            raise ValueError("a balancer needs at least one backend")
        self.backends = [b.rstrip("/") for b in backends]
        self.host = host
        self._requested_port = port
        self.timeout = timeout
        self.served: list[int] = []  # backend index of each request answered, in order
        self.failed: Counter[int] = Counter()  # connection failures per backend
        self._next = 0
        self._forced: list[int] = []
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self._port: int | None = None

    @property
    def url(self) -> str:
        if self._port is None:
            raise RuntimeError("Balancer is not running")
        return f"http://{self.host}:{self._port}"

    @property
    def counts(self) -> Counter[int]:
        """Requests answered per backend index."""
        return Counter(self.served)

    def route_next(self, *indexes: int) -> None:
        """Send the next requests to these backends (one request each, in this order)."""
        for index in indexes:
            if not 0 <= index < len(self.backends):
                raise IndexError(f"no backend {index}: there are {len(self.backends)}")
        self._forced.extend(indexes)

    def _order(self) -> list[int]:
        """The backends to try for the next request: its own first, then the others."""
        n = len(self.backends)
        if self._forced:
            first = self._forced.pop(0)
        else:
            first = self._next
            self._next = (self._next + 1) % n
        return [(first + i) % n for i in range(n)]

    async def _proxy(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith(CONTROL):
            return await self._control(request)
        assert self._http is not None
        body = await request.read()
        headers = {k: request.headers[k] for k in FORWARDED if k in request.headers}
        for index in self._order():
            url = f"{self.backends[index]}{request.path_qs}"
            try:
                async with self._http.request(
                    request.method, url, data=body, headers=headers
                ) as answer:
                    payload = await answer.read()
                    status = answer.status
                    content_type = answer.headers.get("Content-Type")
            except (aiohttp.ClientConnectionError, TimeoutError):
                self.failed[index] += 1
                continue
            self.served.append(index)
            response = web.Response(status=status, body=payload)
            if content_type:
                response.headers["Content-Type"] = content_type
            return response
        return web.Response(status=502, text="no backend answered")

    async def _control(self, request: web.Request) -> web.Response:
        if request.path == f"{CONTROL}/next" and request.method == "POST":
            body = await request.json()
            try:
                self.route_next(*[int(i) for i in body["backends"]])
            except (KeyError, TypeError, ValueError, IndexError) as exc:
                return web.json_response({"error": repr(exc)}, status=400)
            return web.json_response({"ok": True})
        if request.path == f"{CONTROL}/stats":
            counts = self.counts
            return web.json_response(
                {
                    "backends": self.backends,
                    "served": [counts[i] for i in range(len(self.backends))],
                    "failed": [self.failed[i] for i in range(len(self.backends))],
                }
            )
        return web.json_response({"error": "unknown control path"}, status=404)

    async def start(self) -> Balancer:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{path:.*}", self._proxy)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        await web.TCPSite(runner, self.host, self._requested_port).start()
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self._port = None

    async def __aenter__(self) -> Balancer:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


async def _serve_forever(balancer: Balancer) -> None:
    await serve_until_signalled(
        balancer, lambda: f"balancer listening on {balancer.url} over {balancer.backends}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Round-robin HTTP load balancer for tests")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--backend", action="append", required=True, help="root URL; repeat")
    args = parser.parse_args(argv)
    asyncio.run(_serve_forever(Balancer(args.backend, host=args.host, port=args.port)))


if __name__ == "__main__":
    main()
