"""The one place embedders are composed: a backend (``models.load_backend``) and the
wrappers the caller asks for.

* ``lazy``: ``LazyEmbedder``, whose name, fingerprint and (for local models) dimension are
  known at once and whose model loads on the first ``embed`` (no torch import before).
* ``purpose="bulk"`` with ``workers != 1``: ``PooledEmbedder``, which spreads large jobs
  over worker processes, each loading the backend itself (``pool.WorkerSpec``).
* ``locked``: ``LockedEmbedder``, one ``embed`` at a time (the bot answers on threads).

The backends (``hashing``, ``onnx``, ``sentence_transformer``) and the wrappers (``lazy``,
``pool``, ``locked``) import none of each other's modules, and nothing imports this one but
its callers: no cycle.
"""

from __future__ import annotations

from pathlib import Path

from index.embedders.base import Embedder
from index.embedders.lazy import LazyEmbedder
from index.embedders.locked import LockedEmbedder
from index.embedders.models import (
    backend_fingerprint,
    check_backend,
    is_hashing,
    known_dimension,
    load_backend,
    resolve_model,
)
from index.embedders.pool import PooledEmbedder, WorkerSpec, plan_workers


def load_embedder(
    name: str,
    data_dir: Path,
    *,
    backend: str = "auto",
    threads: int | None = None,
    lazy: bool = False,
    purpose: str = "query",
    workers: int = 1,
    locked: bool = False,
) -> Embedder:
    """Build the embedder the settings ask for (``models.load_backend`` for ``name`` and
    ``backend``; ``hashing`` is the test/demo embedder).

    ``lazy``: return at once an embedder whose model is loaded on the first ``embed``.
    ``purpose``: what ``auto`` optimises for, ``query`` or ``bulk`` (see
    ``models.choose_backend``). ``workers`` (bulk only): worker processes for large jobs, 0
    for one per core (up to ``pool.MAX_WORKERS``), 1 for none (see ``index.embedders.pool``).
    ``locked``: one ``embed`` at a time.
    """
    embedder = _compose(name, Path(data_dir), backend, threads, lazy, purpose, workers)
    return LockedEmbedder(embedder) if locked else embedder


def _compose(
    name: str,
    data_dir: Path,
    backend: str,
    threads: int | None,
    lazy: bool,
    purpose: str,
    workers: int,
) -> Embedder:
    if is_hashing(name):
        return load_backend(name, data_dir)
    if purpose == "bulk" and workers != 1:
        count, per_worker = plan_workers(requested=max(0, workers))
        if count > 1:
            local = _compose(name, data_dir, backend, threads, lazy, purpose, 1)
            spec = WorkerSpec(name, str(data_dir.resolve()), backend, per_worker, local.fingerprint)
            return PooledEmbedder(local, spec, workers=count)
    if not lazy:
        return load_backend(name, data_dir, backend=backend, threads=threads, purpose=purpose)
    source, fingerprint = resolve_model(name, data_dir)
    check_backend(backend)
    return LazyEmbedder(
        name=name,
        fingerprint=backend_fingerprint(fingerprint, backend),
        dimension=known_dimension(source),
        factory=lambda: load_backend(
            name, data_dir, backend=backend, threads=threads, purpose=purpose
        ),
    )
