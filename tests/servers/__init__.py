"""Real servers for tests: a PostgreSQL cluster and a local Ray cluster, started in temporary
folders on 127.0.0.1 and stopped after the session."""

from __future__ import annotations

import os
import socket

import pytest


def servers_required() -> bool:
    """Under CI (or NEWSDESK_REQUIRE_SERVERS=1) a missing server is a failure, not a skip."""
    return bool(os.environ.get("CI") or os.environ.get("NEWSDESK_REQUIRE_SERVERS"))


def unavailable(reason: str) -> None:
    """Skip the test for want of a server, or fail when servers are required."""
    if servers_required():
        pytest.fail(f"{reason} (servers are required here: CI or NEWSDESK_REQUIRE_SERVERS)")
    pytest.skip(reason)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
