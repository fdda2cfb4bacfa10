"""A local Ray cluster for the tests: a head node and a second node on this machine, one CPU
each, on 127.0.0.1, in a temporary folder; stopped at the end of the session.

Both nodes are started with the virtualenv's own ``ray`` in a new session (process group)
of their own; every Ray process they start (GCS, raylets, agents, workers) stays in that
group, so stopping the cluster signals that group only, never another Ray on the machine
(``ray stop`` would stop every Ray process of the user).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import unavailable

REPO = Path(__file__).resolve().parents[2]
RAY = Path(sys.executable).parent / "ray"
NODES = 2
START_TIMEOUT = 120.0
OBJECT_STORE_BYTES = 100_000_000  # Ray's minimum is 75 MB


def free_port() -> int:
    """A free TCP port above Ray's worker port range (10002-19999)."""
    for _ in range(50):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port > 20000:
            return port
    raise RuntimeError("no free port above 20000")


def ray_env() -> dict[str, str]:
    """The environment of the nodes (their workers inherit it): no usage reports, and this
    repository importable (the tests' own helpers too, not only the installed packages)."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": path}


def _nodes_alive(address: str) -> int:
    """How many live nodes the cluster reports, asked by a separate driver."""
    probe = (
        f"import ray; ray.init(address={address!r}, logging_level='ERROR', "
        "log_to_driver=False); print(sum(1 for n in ray.nodes() if n['Alive']))"
    )
    try:
        out = subprocess.run(
            [sys.executable, "-c", probe],
            capture_output=True,
            text=True,
            env=ray_env(),
            timeout=60,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return 0
    lines = out.stdout.strip().splitlines()
    return int(lines[-1]) if lines and lines[-1].isdigit() else 0


class LocalRayCluster:
    """``ray start`` twice (head, then a node joining it); ``stop`` ends both."""

    def __init__(self) -> None:
        self.temp_dir = Path(tempfile.mkdtemp(prefix="ndray-", dir="/tmp"))  # short: sockets
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.groups: list[int] = []  # process groups of our nodes
        self.log = self.temp_dir / "start.log"

    def _start(self, *args: str) -> None:
        common = [
            "--node-ip-address=127.0.0.1",
            "--num-cpus=1",
            "--disable-usage-stats",
            f"--object-store-memory={OBJECT_STORE_BYTES}",
        ]
        with self.log.open("ab") as log:
            proc = subprocess.Popen(
                [str(RAY), "start", *args, *common],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=ray_env(),
                cwd=self.temp_dir,
                start_new_session=True,  # the daemons it leaves stay in this group
            )
        self.groups.append(proc.pid)
        code = proc.wait(timeout=START_TIMEOUT)
        if code != 0:
            raise RuntimeError(f"ray start {args[0]} exited {code}: {self.tail()}")

    def start(self) -> None:
        self._start(
            "--head",
            f"--port={self.port}",
            "--include-dashboard=false",
            f"--temp-dir={self.temp_dir}",
        )
        self._start(f"--address={self.address}")
        deadline = time.monotonic() + START_TIMEOUT
        while (alive := _nodes_alive(self.address)) < NODES:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cluster reports {alive} live nodes, not {NODES}")
            time.sleep(1)

    def tail(self, lines: int = 5) -> str:
        with contextlib.suppress(OSError):
            return " | ".join(self.log.read_text(errors="replace").strip().splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        """SIGTERM to our process groups, SIGKILL to what is left after a grace period."""
        for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 0.0)):
            for group in self.groups:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(group, sig)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and any(map(_group_alive, self.groups)):
                time.sleep(0.2)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _group_alive(group: int) -> bool:
    """True while a process (not a zombie) of the group lives."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if fields[0] != "Z" and int(fields[2]) == group:
                return True
    return False


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    """The address (HOST:PORT) of a running two-node local Ray cluster."""
    if not RAY.is_file():
        unavailable(f"Ray is not installed in this virtualenv ({RAY} is missing)")
    cluster = LocalRayCluster()
    try:
        cluster.start()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        cluster.stop()
        unavailable(f"cannot start a local Ray cluster: {exc}")
    try:
        yield cluster.address
    finally:
        cluster.stop()
