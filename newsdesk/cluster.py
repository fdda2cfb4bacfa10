"""Composition for embedding on a Ray cluster (``newsdesk reindex --ray``): the settings,
the bulk embedder a local re-index would use, and ``RayEmbedder`` around it.

Ray is imported only through ``index.embedders.ray_pool``, and that only when a cluster is
asked for (``--ray`` or NEWSDESK_RAY_ADDRESS): importing this module loads neither.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from index.embedders import Embedder
from newsdesk.settings import Settings

if TYPE_CHECKING:
    from index.embedders.ray_pool import RayEmbedder

AUTO = "auto"


def ray_address(settings: Settings, flag: str | None) -> str | None:
    """Where to embed: ``flag`` is ``--ray``'s value (None: no ``--ray``; "": ``--ray``
    without an address). The address is the flag's, else NEWSDESK_RAY_ADDRESS, else
    ``auto`` (the cluster this machine belongs to); None means local embedding."""
    configured = (settings.ray_address or "").strip() or None
    if flag is None:
        return configured
    return flag.strip() or configured or AUTO


def make_ray_embedder(settings: Settings, address: str) -> RayEmbedder:
    """The re-index embedder on the cluster at ``address``: the actors load the model a
    local bulk build loads (same name, data dir and resolved backend, same fingerprint);
    single texts stay local. Connects now: a bad address fails before any work."""
    from index.embedders.ray_pool import RayEmbedder, ray_worker_spec
    from newsdesk.services import make_embedder

    local = make_embedder(settings, purpose="bulk")
    spec = ray_worker_spec(
        settings.embedding_model,
        settings.data_dir,
        settings.embedding_backend,
        local.fingerprint,
    )
    return RayEmbedder(
        local,
        spec,
        address=address,
        actors=settings.ray_actors,
        batch_size=settings.ray_batch_size,
    )


def ray_summary(embedder: Embedder) -> str | None:
    """The summary's line on what ran on the cluster (None when not on Ray)."""
    runs = getattr(embedder, "runs", None)
    address = getattr(embedder, "address", None)
    if runs is None or address is None:
        return None
    if not runs:
        return f"Ray cluster at {address}: nothing needed embedding."
    actors = max(len(run.actors) for run in runs)
    nodes = {n for run in runs for n in run.nodes}
    texts = sum(run.texts for run in runs)
    retried = sum(run.retried for run in runs)
    line = (
        f"Embedding ran on Ray at {address}: {texts} texts by {actors} actors on {len(nodes)} nodes"
    )
    if retried:
        line += f"; {retried} batches retried after a lost actor"
    return line + "."


def close(embedder: Embedder) -> None:
    """Disconnect from the cluster, if ``embedder`` is on one."""
    closer = getattr(embedder, "close", None)
    if callable(closer):
        closer()
