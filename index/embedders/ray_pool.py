"""Bulk embedding on a Ray cluster (``newsdesk reindex --ray``): the texts of a re-index are
cut into batches and handed to a pool of Ray actors, each of which loads the model once.

Only this module imports Ray, and only the callers that asked for a cluster import this
module: the default paths never load Ray.

Same vectors as a local build. Each actor loads the model exactly as a local worker process
does (``models.load_backend`` with the same name, data dir and ``purpose="bulk"``, one
thread per CPU it holds), from the model package installed in the same virtualenv on every
node: nothing is downloaded, and the actor refuses a model whose fingerprint differs from
the driver's. The backend is resolved once, here in the driver (``auto`` may mean torch
with bf16 autocast on a CPU with native bf16), and every actor uses that backend, so a node
of another CPU kind cannot make its share of the vectors differently. With the default
batch size (256 texts, ``index.build.EMBED_CHUNK``) each actor embeds exactly the chunks a
local worker would, in the same sub-batches.

A lost actor (its process or node died) loses its batches, not the job: each is handed to
a replacement actor, up to ``retries`` times per batch, after which the job stops with a
``ClusterError`` naming the batch and what happened. An error raised by the model itself
(a ``ModelError`` in an actor) is not retried: it would happen again.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from index.embedders.base import Embedder, LateItem, LateVectors, WrappedEmbedder
from index.embedders.models import choose_backend, is_hashing, load_backend, resolve_model
from index.embedders.pool import WorkerSpec
from index.errors import ModelError, NewsdeskError

log = logging.getLogger(__name__)

DEFAULT_BATCH = 256  # texts per task: index.build.EMBED_CHUNK, so batches match a local build's
DEFAULT_RETRIES = 3  # times one batch may be lost before the job stops
IN_FLIGHT = 2  # batches queued per actor: one embedding, the next one waiting
CONNECT_TIMEOUT = 5.0  # seconds to reach the head node's port before calling it unreachable
INSTALL_HINT = "pip install 'newsdesk[cluster]'"


class ClusterError(NewsdeskError):
    """The Ray cluster could not be used: Ray missing, the address unreachable, or a batch
    lost more often than it may be."""


Loader = Callable[[WorkerSpec], Embedder]


def load_spec(spec: WorkerSpec) -> Embedder:
    """What an actor embeds with: the backend a local bulk worker loads for ``spec``."""
    return load_backend(
        spec.name,
        Path(spec.data_dir),
        backend=spec.backend,
        threads=spec.threads,
        purpose="bulk",
    )


def ray_worker_spec(name: str, data_dir: Path, backend: str, fingerprint: str) -> WorkerSpec:
    """The actors' spec, with ``auto`` resolved here, for every actor alike: the backend a
    local bulk build on this machine uses."""
    data_dir = Path(data_dir).resolve()
    if not is_hashing(name):
        source, weights = resolve_model(name, data_dir)
        backend = choose_backend(backend, source, weights, data_dir, purpose="bulk")
    return WorkerSpec(name, str(data_dir), backend, 1, fingerprint)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ClusterError(f"Embedding on a Ray cluster needs Ray: {INSTALL_HINT}.") from exc
    return ray


def _check_reachable(address: str) -> None:
    """Fail fast, naming the address, when nothing listens at HOST:PORT (``ray.init`` would
    keep retrying for minutes). ``auto`` and ``ray://`` addresses are left to Ray."""
    if address == "auto" or "://" in address:
        return
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ClusterError(f"The Ray address {address!r} is not HOST:PORT (or auto).")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT):
            pass
    except OSError as exc:
        raise ClusterError(
            f"Cannot reach the Ray cluster at {address}: {exc.strerror or exc}. Start it "
            "with `ray start --head` there, or give the head node's HOST:PORT."
        ) from exc


class _EmbedActor:
    """One Ray actor: the model loaded once, then a batch per call. A failure to load is
    kept and raised by the first call, where its message reaches the driver."""

    def __init__(self, spec: WorkerSpec, load: Loader) -> None:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(spec.threads)
        import ray

        self.node = ray.get_runtime_context().get_node_id()
        self.embedder: Embedder | None = None
        self.error: Exception | None = None
        try:
            self.embedder = load(spec)
            if self.embedder.fingerprint != spec.fingerprint:
                raise ModelError(
                    f"A Ray actor on node {self.node} loaded {self.embedder.fingerprint!r}, "
                    f"not the announced {spec.fingerprint!r}: install the same model "
                    "package in the same virtualenv on every node."
                )
        except Exception as exc:
            self.error = exc

    def _ready(self) -> Embedder:
        if self.error is not None:
            raise self.error
        assert self.embedder is not None
        return self.embedder

    def embed(self, texts: Sequence[str], batch_size: int) -> tuple[str, np.ndarray]:
        return self.node, self._ready().embed(texts, batch_size=batch_size)

    def embed_late(self, items: Sequence[LateItem], batch_size: int) -> tuple[str, LateVectors]:
        return self.node, self._ready().embed_late(items, batch_size=batch_size)


@dataclass(slots=True)
class RayRun:
    """What the last job did on the cluster (for the summary and the tests)."""

    address: str
    actors: set[str] = field(default_factory=set)  # actors that finished a batch
    nodes: set[str] = field(default_factory=set)  # nodes they ran on
    batches: int = 0
    retried: int = 0  # batches handed to another actor after theirs was lost
    texts: int = 0


class RayEmbedder(WrappedEmbedder):
    """A bulk embedder whose ``embed_chunks`` and ``embed_late_chunks`` run on Ray actors;
    single ``embed`` calls stay local (``inner``). Connects to ``address`` at once, so a bad
    address fails before any work; starts its actors on the first job that has texts."""

    def __init__(
        self,
        local: Embedder,
        spec: WorkerSpec,
        *,
        address: str = "auto",
        actors: int = 0,
        batch_size: int = DEFAULT_BATCH,
        retries: int = DEFAULT_RETRIES,
        load: Loader = load_spec,
    ) -> None:
        super().__init__(local)
        if spec.fingerprint != local.fingerprint:
            raise ModelError(
                f"The Ray actors' spec announces {spec.fingerprint!r}, the local "
                f"embedder is {local.fingerprint!r}."
            )
        self.spec = spec
        self.address = address
        self.requested = actors
        self.batch = max(1, batch_size)
        self.retries = retries
        self.load = load
        self.runs: list[RayRun] = []
        self._ray = _import_ray()
        self._connect()

    # ---- the cluster -------------------------------------------------------------------

    def _connect(self) -> None:
        ray = self._ray
        _check_reachable(self.address)
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        if ray.is_initialized():
            return
        try:
            ray.init(
                address=self.address,
                logging_level=logging.WARNING,
                log_to_driver=False,
                configure_logging=False,
            )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ClusterError(
                f"Cannot connect to the Ray cluster at {self.address}: {exc}"
            ) from exc

    def cluster_cpus(self) -> int:
        return max(1, int(self._ray.cluster_resources().get("CPU", 1)))

    def close(self) -> None:
        """Disconnect from the cluster (the actors are gone after each job already)."""
        if self._ray.is_initialized():
            self._ray.shutdown()

    def _actor_class(self, count: int) -> tuple[Any, WorkerSpec]:
        """The actor class for ``count`` actors: one CPU each (threads likewise), a share
        of the CPUs each when more are asked for than the cluster has."""
        cpus = self.cluster_cpus()
        per_actor = 1.0 if count <= cpus else cpus / count
        spec = dataclasses.replace(self.spec, threads=max(1, int(per_actor)))
        return self._ray.remote(num_cpus=per_actor, max_restarts=0)(_EmbedActor), spec

    # ---- the jobs ------------------------------------------------------------------------

    @property
    def last_run(self) -> RayRun | None:
        return self.runs[-1] if self.runs else None

    def embed_chunks(
        self, chunks: Sequence[Sequence[str]], *, batch_size: int = 32
    ) -> Iterator[np.ndarray]:
        yield from self._run("embed", chunks, batch_size, _join_vectors, _cut_vectors)

    def embed_late_chunks(
        self, chunks: Sequence[Sequence[LateItem]], *, batch_size: int = 32
    ) -> Iterator[LateVectors]:
        yield from self._run("embed_late", chunks, batch_size, _join_late, _cut_late)

    def _run(
        self,
        method: str,
        chunks: Sequence[Sequence[Any]],
        batch_size: int,
        join: Callable[[list[Any]], Any],
        cut: Callable[[Any, Sequence[Any], int, int], Any],
    ) -> Iterator[Any]:
        """Each chunk's result, in order, as soon as the batches covering it are done.
        Batches are ``self.batch`` consecutive items of the whole job; a chunk is made of
        the parts of the batches it overlaps (``cut`` then ``join``)."""
        items = [item for chunk in chunks for item in chunk]
        if not items:  # nothing to embed: no actor is started for it
            yield from getattr(self.inner, method + "_chunks")(chunks, batch_size=batch_size)
            return
        batches = [items[i : i + self.batch] for i in range(0, len(items), self.batch)]
        run = RayRun(self.address, batches=len(batches), texts=len(items))
        self.runs.append(run)
        done: dict[int, Any] = {}
        results = self._dispatch(method, batches, batch_size, run)
        start = 0
        for chunk in chunks:
            end = start + len(chunk)
            first = min(start // self.batch, len(batches) - 1)
            last = max(first, (end - 1) // self.batch)
            parts = []
            for b in range(first, last + 1):
                while b not in done:
                    got, result = next(results)
                    done[got] = result
                lo = max(start, b * self.batch) - b * self.batch
                hi = max(lo, min(end, (b + 1) * self.batch) - b * self.batch)
                parts.append(cut(done[b], batches[b], lo, hi))
                if end >= (b + 1) * self.batch and b < len(batches) - 1:
                    del done[b]  # no later chunk needs it (the last may serve empty ones)
            yield join(parts)
            start = end
        for _ in results:  # every batch was used: ends the dispatcher, which kills the actors
            pass

    def _dispatch(
        self, method: str, batches: list[list[Any]], batch_size: int, run: RayRun
    ) -> Iterator[tuple[int, Any]]:
        """(batch number, result) of every batch, as each is done, on a pool of actors;
        a batch whose actor was lost goes to a fresh actor (``self.retries`` times)."""
        ray = self._ray
        lost_errors = (
            ray.exceptions.RayActorError,
            ray.exceptions.ObjectLostError,
            ray.exceptions.NodeDiedError,
            ray.exceptions.WorkerCrashedError,
        )
        count = min(self.requested or self.cluster_cpus(), len(batches))
        actor_class, spec = self._actor_class(count)
        actors = [actor_class.remote(spec, self.load) for _ in range(count)]
        names = [str(slot + 1) for slot in range(count)]  # a replacement of 1 is 1'
        queue = deque(range(len(batches)))
        lost = [0] * len(batches)
        inflight: dict[Any, tuple[int, int, Any, str]] = {}  # ref -> batch, slot, actor
        load = [0] * count
        try:
            while queue or inflight:
                for depth, slot in ((d, s) for d in range(IN_FLIGHT) for s in range(count)):
                    if queue and load[slot] <= depth:  # round robin: one each, then a second
                        b = queue.popleft()
                        ref = getattr(actors[slot], method).remote(batches[b], batch_size)
                        inflight[ref] = (b, slot, actors[slot], names[slot])
                        load[slot] += 1
                [ready], _ = ray.wait(list(inflight), num_returns=1)
                b, slot, actor, name = inflight.pop(ready)
                if actors[slot] is actor:
                    load[slot] -= 1
                try:
                    node, result = ray.get(ready)
                except lost_errors as exc:
                    lost[b] += 1
                    if lost[b] > self.retries:
                        raise ClusterError(
                            f"Batch {b + 1} of {len(batches)} ({len(batches[b])} texts) was "
                            f"lost {lost[b]} times on the Ray cluster at {self.address}; "
                            f"last: {_first_line(exc)}"
                        ) from exc
                    log.warning("a Ray actor was lost (%s): batch %d retried", exc, b + 1)
                    run.retried += 1
                    queue.appendleft(b)
                    if actors[slot] is actor:  # its other batches fail too: replace it once
                        ray.kill(actor, no_restart=True)
                        actors[slot] = actor_class.remote(spec, self.load)
                        names[slot] += "'"
                        load[slot] = 0
                    continue
                except ray.exceptions.RayTaskError as exc:
                    cause = exc.cause if isinstance(exc.cause, Exception) else exc
                    if isinstance(cause, NewsdeskError):
                        raise cause from exc
                    raise ModelError(
                        f"Embedding failed on the Ray cluster at {self.address}: "
                        f"{type(cause).__name__}: {_first_line(cause)}"
                    ) from exc
                run.actors.add(name)
                run.nodes.add(node)
                yield b, result
        finally:
            for actor in actors:
                ray.kill(actor, no_restart=True)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _join_vectors(parts: list[np.ndarray]) -> np.ndarray:
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _cut_vectors(result: np.ndarray, batch: Sequence[str], lo: int, hi: int) -> np.ndarray:
    return result[lo:hi]


def _join_late(parts: list[LateVectors]) -> LateVectors:
    if len(parts) == 1:
        return parts[0]
    return LateVectors(
        np.concatenate([p.texts for p in parts]),
        np.concatenate([p.spans for p in parts]),
        np.concatenate([p.pooled for p in parts]),
    )


def _cut_late(result: LateVectors, batch: Sequence[LateItem], lo: int, hi: int) -> LateVectors:
    """Items ``lo:hi`` of a batch's result: their text vectors and their spans' vectors."""
    before = sum(len(spans) for _, spans in batch[:lo])
    count = sum(len(spans) for _, spans in batch[lo:hi])
    return LateVectors(
        result.texts[lo:hi],
        result.spans[before : before + count],
        result.pooled[before : before + count],
    )
