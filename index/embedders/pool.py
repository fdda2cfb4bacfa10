"""Bulk embedding in several worker processes, each with its own model and few threads.

On the 2-core machine one encoder with 2 intra-op threads does not keep both cores busy
on this model's small matrices (short sentences above all): one thread alone reached
65-80% of the two-thread rate on passages and 50-75% on sentences. Two single-threaded
processes therefore embed a large build faster than one two-threaded one
(docs/benchmarks.md). Each worker loads the model once (a few seconds), so the pool is
only started for a job of at least ``min_texts`` texts; smaller jobs (a typical
re-index) are embedded in-process by the ``local`` embedder.

Workers are started with ``spawn``, never ``fork``: forking a process that has already
loaded torch or ONNX Runtime thread pools can deadlock.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from index.embedders.base import Embedder, LateItem, LateVectors, WrappedEmbedder
from index.embedders.models import load_backend
from index.errors import ModelError

DEFAULT_MIN_TEXTS = 2_000
MAX_WORKERS = 4


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """What each worker passes to ``models.load_backend``."""

    name: str
    data_dir: str
    backend: str
    threads: int
    fingerprint: str  # what the parent announced: a worker whose model differs refuses


def plan_workers(cores: int | None = None, requested: int = 0) -> tuple[int, int]:
    """(worker processes, threads each) for this machine: one single-threaded worker per
    core up to ``MAX_WORKERS``, the remaining cores shared out as threads. ``requested``
    overrides the worker count (1 = no pool)."""
    cores = max(1, cores or os.cpu_count() or 1)
    workers = requested if requested > 0 else min(cores, MAX_WORKERS)
    return workers, max(1, cores // workers)


_worker: Embedder | Exception | None = None


def _start_worker(spec: WorkerSpec) -> None:
    """Initializer of a worker process: load the model once, with ``spec.threads`` threads.
    A failure is kept and raised by the first task, where its message reaches the parent
    (an initializer that raises only breaks the pool, message lost)."""
    global _worker
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(spec.threads)
    try:
        _worker = load_backend(
            spec.name,
            Path(spec.data_dir),
            backend=spec.backend,
            threads=spec.threads,
            purpose="bulk",
        )
        if _worker.fingerprint != spec.fingerprint:
            raise ModelError(
                f"An embedding worker loaded {_worker.fingerprint!r}, not the announced "
                f"{spec.fingerprint!r}."
            )
    except Exception as exc:
        _worker = exc


def _embed_in_worker(texts: Sequence[str], batch_size: int) -> np.ndarray:
    if isinstance(_worker, Exception):
        raise _worker
    assert _worker is not None, "worker not initialised"
    return _worker.embed(texts, batch_size=batch_size)


def _embed_late_in_worker(items: Sequence[LateItem], batch_size: int) -> LateVectors:
    if isinstance(_worker, Exception):
        raise _worker
    assert _worker is not None, "worker not initialised"
    return _worker.embed_late(items, batch_size=batch_size)


class PooledEmbedder(WrappedEmbedder):
    """An embedder for bulk jobs: ``embed_chunks`` spreads chunks over worker processes
    when there are at least ``min_texts`` texts; everything else goes to ``local`` (the
    wrapped embedder)."""

    def __init__(
        self,
        local: Embedder,
        spec: WorkerSpec,
        *,
        workers: int,
        min_texts: int = DEFAULT_MIN_TEXTS,
    ) -> None:
        super().__init__(local)
        self.spec = spec
        self.workers = workers
        self.min_texts = min_texts
        self.pool_runs = 0  # how many jobs went to the pool (for tests and reports)

    @property
    def local(self) -> Embedder:
        return self.inner

    def embed_chunks(
        self, chunks: Sequence[Sequence[str]], *, batch_size: int = 32
    ) -> Iterator[np.ndarray]:
        if self.workers < 2 or sum(len(c) for c in chunks) < self.min_texts:
            yield from self.local.embed_chunks(chunks, batch_size=batch_size)
            return
        yield from self._in_pool(_embed_in_worker, chunks, batch_size)

    def embed_late_chunks(
        self, chunks: Sequence[Sequence[LateItem]], *, batch_size: int = 32
    ) -> Iterator[LateVectors]:
        if self.workers < 2 or sum(len(c) for c in chunks) < self.min_texts:
            yield from self.local.embed_late_chunks(chunks, batch_size=batch_size)
            return
        yield from self._in_pool(_embed_late_in_worker, chunks, batch_size)

    def _in_pool(
        self, task: Callable[[Any, int], Any], chunks: Sequence[Sequence[Any]], batch_size: int
    ) -> Iterator[Any]:
        """``task(chunk, batch_size)`` of each chunk in the worker processes, in order."""
        self.pool_runs += 1
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=context,
            initializer=_start_worker,
            initargs=(self.spec,),
        ) as pool:
            futures = [pool.submit(task, list(c), batch_size) for c in chunks]
            try:
                for future in futures:
                    yield future.result()
            except BrokenProcessPool as exc:
                raise ModelError(
                    f"An embedding worker process died ({exc}). If memory is short, set "
                    "NEWSDESK_EMBEDDING_WORKERS=1 to embed in the indexing process."
                ) from exc
            finally:
                for future in futures:
                    future.cancel()
