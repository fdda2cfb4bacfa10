"""Which vector index for how many passages, with parameters measured on this kind of machine.

Exact (flat) search is right for small archives: no build cost, perfect recall, and a
few milliseconds per query up to tens of thousands of passages. Above ``hnsw_from``
passages the index is a graph (``hnsw-refine``: HNSW over 8-bit codes with exact
re-ranking), tuned so that a million passages answer under 50 ms p95 with recall@10
>= 0.95 against exact search (figures and command in ``docs/benchmarks.md``).
"""

from __future__ import annotations

from typing import Any

from index.ann.faiss_store import FaissStore

KINDS = ("auto", "flat", "hnsw", "hnsw-refine")
DEFAULT_HNSW_FROM = 50_000
LARGE_KIND = "hnsw-refine"

# Build and search parameters per graph kind (see the efSearch sweep in the benchmark).
HNSW_PARAMS: dict[str, dict[str, Any]] = {
    "hnsw": {"m": 32, "ef_construction": 80, "ef_search": 256},
    "hnsw-refine": {"m": 32, "ef_construction": 64, "ef_search": 128, "k_factor": 4.0},
}


def auto_kind(count: int, hnsw_from: int = DEFAULT_HNSW_FROM) -> str:
    """The index kind ``auto`` picks for ``count`` passages."""
    return LARGE_KIND if count >= hnsw_from else "flat"


def choose_store(
    kind: str, dimension: int, count: int, *, hnsw_from: int = DEFAULT_HNSW_FROM
) -> FaissStore:
    """A new, empty store of ``kind`` (``auto``: by ``count``, see ``auto_kind``)."""
    if kind == "auto":
        kind = auto_kind(count, hnsw_from)
    if kind == "flat":
        return FaissStore.flat(dimension)
    if kind == "hnsw":
        return FaissStore.hnsw(dimension, **HNSW_PARAMS["hnsw"])
    if kind == "hnsw-refine":
        return FaissStore.hnsw_refine(dimension, **HNSW_PARAMS["hnsw-refine"])
    raise ValueError(f"Unknown vector store {kind!r}: use one of {', '.join(KINDS)}.")
