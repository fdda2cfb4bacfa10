"""Which vector index for how many passages, with parameters measured on this kind of machine.

Exact (flat) search is right for small archives: no build cost, perfect recall, and a
few milliseconds per single-threaded query up to tens of thousands of passages. From
``ann_from`` passages on, ``auto`` picks HNSW, and from ``ivf_from`` on IVF, tuned so that
a million passages answer under 50 ms p95 with recall@10 >= 0.95 against exact search
(figures, sweeps and the command in ``docs/benchmarks.md``).

Why HNSW in the middle: at 100k passages (the corpus's real embeddings repeated with
noise) HNSW (M=32) searched in 0.41 ms p95 at recall@10 0.991 with efSearch 128 (0.72 ms,
0.992 with 256), IVF (256 lists, 32 probed) in 2.6 ms at 0.981: 1-2 ms of a 10 ms
question. Why IVF from 250k:
HNSW's recall falls as the archive grows (0.972 at 300k; at a million, over 8-bit codes,
it stayed below 0.95 up to efSearch 1024: 0.855 at 256), while IVF with 1024 lists built
in 30 s at a million and reached recall@10 1.000 at 22 ms p95 with 128 probes (0.967 at
3 ms with 16): near-duplicate clusters are hard for the graph. On the corpus's real
vectors IVF needs about 1/8 of its lists probed for 0.95, hence ``ivf_params``. Every
kind stays available (``NEWSDESK_VECTOR_STORE``).
"""

from __future__ import annotations

import math
from typing import Any

from index.ann.faiss_store import FaissStore

KINDS = ("auto", "flat", "hnsw", "hnsw-refine", "ivf")
APPROXIMATE_KINDS = ("hnsw", "hnsw-refine", "ivf")
DEFAULT_ANN_FROM = 50_000
DEFAULT_IVF_FROM = 250_000

# Build and search parameters of the graph kinds (see the sweeps in the benchmark).
HNSW_PARAMS: dict[str, dict[str, Any]] = {
    "hnsw": {"m": 32, "ef_construction": 80, "ef_search": 256},
    "hnsw-refine": {"m": 32, "ef_construction": 40, "ef_search": 256, "k_factor": 2.0},
}
# Below this size efSearch 128 is enough: at 100k, recall@10 0.991 at 0.41 ms p95 against
# 0.992 at 0.72 ms with 256 (0.996 with 128 on the corpus's 9,649 real vectors); at 300k
# 128 gave 0.949, so larger graphs search with 256.
HNSW_NARROW_BELOW = 150_000
HNSW_NARROW_EF = 128


def hnsw_params(kind: str, count: int) -> dict[str, Any]:
    """HNSW_PARAMS of ``kind``, efSearch narrowed for graphs below HNSW_NARROW_BELOW."""
    params = dict(HNSW_PARAMS[kind])
    if count < HNSW_NARROW_BELOW:
        params["ef_search"] = HNSW_NARROW_EF
    return params


def ivf_params(count: int) -> dict[str, int]:
    """Lists ~ sqrt(count) (a power of two in [256, 4096]), and 1/8 of them probed.

    On the corpus's real embeddings recall@10 reached 0.95 only with about 1/8 of the
    lists probed (1/64 gave 0.83); repeated-with-noise vectors are kinder to IVF than
    real ones, so the probe count follows the real data.
    """
    nlist = 2 ** round(math.log2(min(4096, max(256, math.sqrt(max(count, 1))))))
    return {"nlist": nlist, "nprobe": max(8, nlist // 8)}


def auto_kind(
    count: int, ann_from: int = DEFAULT_ANN_FROM, ivf_from: int = DEFAULT_IVF_FROM
) -> str:
    """The index kind ``auto`` picks for ``count`` passages: exact below ``ann_from``, HNSW
    below ``ivf_from`` (but never before ``ann_from``), IVF from there on."""
    if count < ann_from:
        return "flat"
    return "hnsw" if count < max(ann_from, ivf_from) else "ivf"


def choose_store(
    kind: str, dimension: int, count: int, *, ann_from: int = DEFAULT_ANN_FROM
) -> FaissStore:
    """A new, empty store of ``kind`` for ``count`` passages (``auto``: see ``auto_kind``)."""
    if kind == "auto":
        kind = auto_kind(count, ann_from)
    if kind == "flat":
        return FaissStore.flat(dimension)
    if kind == "hnsw":
        return FaissStore.hnsw(dimension, **hnsw_params("hnsw", count))
    if kind == "hnsw-refine":
        return FaissStore.hnsw_refine(dimension, **hnsw_params("hnsw-refine", count))
    if kind == "ivf":
        return FaissStore.ivf(dimension, **ivf_params(count))
    raise ValueError(f"Unknown vector store {kind!r}: use one of {', '.join(KINDS)}.")
