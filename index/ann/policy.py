"""Which vector index for how many passages, with parameters measured on this kind of machine.

Exact (flat) search is right for small archives: no build cost, perfect recall, and a
few milliseconds per single-threaded query up to tens of thousands of passages. From
``ann_from`` passages on, ``auto`` picks ``LARGE_KIND``, tuned so that a million
passages answer under 50 ms p95 with recall@10 >= 0.95 against exact search (figures,
sweeps and the command in ``docs/benchmarks.md``).

Why IVF and not HNSW at a million: measured on 1M vectors (the corpus's real embeddings
repeated with noise), IVF with 1024 lists built in 30 s and reached recall@10 1.000 at
22 ms p95 with 128 probes (0.967 at 3 ms with 16), while HNSW over 8-bit codes (M=32)
took 111 s to build and stayed below 0.95 up to efSearch 1024 (0.855 at 256, 0.947 at
1024), as the issue had found: near-duplicate clusters are hard for the graph. On the
corpus's real vectors IVF needs about 1/8 of its lists probed for 0.95, hence
``ivf_params``. The graph kinds stay available (``NEWSDESK_VECTOR_STORE``).
"""

from __future__ import annotations

import math
from typing import Any

from index.ann.faiss_store import FaissStore

KINDS = ("auto", "flat", "hnsw", "hnsw-refine", "ivf")
APPROXIMATE_KINDS = ("hnsw", "hnsw-refine", "ivf")
DEFAULT_ANN_FROM = 50_000
LARGE_KIND = "ivf"

# Build and search parameters of the graph kinds (see the sweeps in the benchmark).
HNSW_PARAMS: dict[str, dict[str, Any]] = {
    "hnsw": {"m": 32, "ef_construction": 80, "ef_search": 256},
    "hnsw-refine": {"m": 32, "ef_construction": 40, "ef_search": 256, "k_factor": 2.0},
}


def ivf_params(count: int) -> dict[str, int]:
    """Lists ~ sqrt(count) (a power of two in [256, 4096]), and 1/8 of them probed.

    On the corpus's real embeddings recall@10 reached 0.95 only with about 1/8 of the
    lists probed (1/64 gave 0.83); repeated-with-noise vectors are kinder to IVF than
    real ones, so the probe count follows the real data.
    """
    nlist = 2 ** round(math.log2(min(4096, max(256, math.sqrt(max(count, 1))))))
    return {"nlist": nlist, "nprobe": max(8, nlist // 8)}


def auto_kind(count: int, ann_from: int = DEFAULT_ANN_FROM) -> str:
    """The index kind ``auto`` picks for ``count`` passages."""
    return LARGE_KIND if count >= ann_from else "flat"


def choose_store(
    kind: str, dimension: int, count: int, *, ann_from: int = DEFAULT_ANN_FROM
) -> FaissStore:
    """A new, empty store of ``kind`` for ``count`` passages (``auto``: see ``auto_kind``)."""
    if kind == "auto":
        kind = auto_kind(count, ann_from)
    if kind == "flat":
        return FaissStore.flat(dimension)
    if kind == "hnsw":
        return FaissStore.hnsw(dimension, **HNSW_PARAMS["hnsw"])
    if kind == "hnsw-refine":
        return FaissStore.hnsw_refine(dimension, **HNSW_PARAMS["hnsw-refine"])
    if kind == "ivf":
        return FaissStore.ivf(dimension, **ivf_params(count))
    raise ValueError(f"Unknown vector store {kind!r}: use one of {', '.join(KINDS)}.")
