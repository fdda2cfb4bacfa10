"""``newsdesk reindex --ray``: embedding on a real two-node local Ray cluster
(tests/servers/ray_cluster.py) gives the index a local build gives, on both nodes, and
survives a lost actor; a bad address or a missing Ray is one line; the default paths never
import Ray. The last test (real model, minutes) compares ``newsdesk eval`` on the shared
corpus between a local and a Ray build."""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from index.build import reindex
from index.embedders.base import Embedder
from index.embedders.hashing import HashingEmbedder
from index.embedders.pool import WorkerSpec
from index.embedders.ray_pool import ClusterError, RayEmbedder, load_spec, ray_worker_spec
from index.store import current_version_path
from tests.conftest import REPO, SHARED_CORPORA, data_dir_with_model, run_cli
from tests.servers.ray_cluster import free_port

NOT_COMPARED = {"manifest.json", "verified.json"}  # times of day; the manifest is checked apart


@pytest.fixture
def env(small_corpus: Path, tmp_path: Path) -> dict[str, str]:
    return {
        "NEWSDESK_EMBEDDING_MODEL": "hashing",
        "NEWSDESK_HOME": str(tmp_path),
        "NEWSDESK_DATA_DIR": str(tmp_path / "data"),
        "NEWSDESK_CORPUS_DIRS": str(small_corpus),
        "NEWSDESK_RAY_BATCH_SIZE": "4",  # several batches from three articles: both nodes work
    }


def assert_same_index(local: Path, other: Path) -> None:
    """Same model in the manifest, same passages, vectors and every other file, byte for
    byte."""
    a, b = current_version_path(local), current_version_path(other)
    assert a is not None and b is not None
    ma, mb = (json.loads((v / "manifest.json").read_text()) for v in (a, b))
    for key in ("model_name", "model_fingerprint", "dimension", "passages", "articles"):
        assert ma[key] == mb[key], key
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    compared = [f for f in files if f.name not in NOT_COMPARED]
    assert {"vectors.npy", "passages.jsonl"} <= {f.name for f in compared}
    for name in compared:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


# ---- (a) the same index, on both nodes ----------------------------------------------------


def test_reindex_on_ray_gives_the_local_index_using_both_nodes(
    env: dict[str, str], tmp_path: Path, ray_cluster: str
) -> None:
    local = run_cli("reindex", "--quiet", "--index", str(tmp_path / "local"), env=env)
    assert local.returncode == 0, local.stderr.decode()
    assert b"Ray" not in local.stdout

    on_ray = run_cli(
        "reindex", "--quiet", "--index", str(tmp_path / "ray"), "--ray", ray_cluster, env=env
    )
    out = on_ray.stdout.decode()
    assert on_ray.returncode == 0, on_ray.stderr.decode()
    line = re.search(rf"Embedding ran on Ray at {ray_cluster}: (\d+) texts by (\d+) actors "
                     r"on (\d+) nodes", out)  # fmt: skip
    assert line, out
    assert int(line[1]) > 8 and int(line[2]) == 2 and int(line[3]) == 2, out
    assert_same_index(tmp_path / "local", tmp_path / "ray")

    # the setting alone sends a re-index to the cluster: nothing changed, nothing embedded
    again = run_cli(
        "reindex", "--quiet", "--index", str(tmp_path / "ray"),
        env={**env, "NEWSDESK_RAY_ADDRESS": ray_cluster},
    )  # fmt: skip
    assert again.returncode == 0, again.stderr.decode()
    assert f"Ray cluster at {ray_cluster}: nothing needed embedding." in again.stdout.decode()


def test_late_chunking_on_ray_gives_the_local_vectors(
    env: dict[str, str], tmp_path: Path, ray_cluster: str
) -> None:
    late = {**env, "NEWSDESK_SENTENCE_VECTORS": "late", "NEWSDESK_RAY_BATCH_SIZE": "2"}
    local = run_cli("reindex", "--quiet", "--index", str(tmp_path / "local"), env=late)
    assert local.returncode == 0, local.stderr.decode()
    on_ray = run_cli(
        "reindex", "--quiet", "--index", str(tmp_path / "ray"), "--ray", ray_cluster, env=late
    )
    assert on_ray.returncode == 0, on_ray.stderr.decode()
    assert "actors on 2 nodes" in on_ray.stdout.decode()
    assert_same_index(tmp_path / "local", tmp_path / "ray")


# ---- (b) a lost actor -------------------------------------------------------------------


class _DiesOnFirstBatch(Embedder):
    """A hashing embedder whose process exits on its first batch while ``marker`` does not
    exist yet (it creates it first): exactly one actor of a job dies, mid-job."""

    def __init__(self, inner: Embedder, marker: Path, always: bool) -> None:
        self.inner, self.marker, self.always = inner, marker, always
        self.name, self.fingerprint, self.dimension = inner.name, inner.fingerprint, inner.dimension

    def embed(self, texts, *, batch_size: int = 32) -> np.ndarray:
        if self.always:
            os._exit(1)
        try:
            self.marker.open("x").close()
        except FileExistsError:
            return self.inner.embed(texts, batch_size=batch_size)
        os._exit(1)  # the actor's process dies, as if its node went away


def dying_loader(spec: WorkerSpec, *, marker: str, always: bool = False) -> Embedder:
    """Runs in the actors (pickled by reference: the nodes import this repository)."""
    return _DiesOnFirstBatch(load_spec(spec), Path(marker), always)


def ray_embedder(address: str, tmp_path: Path, **options) -> RayEmbedder:
    local = HashingEmbedder(256)
    spec = ray_worker_spec("hashing", tmp_path, "auto", local.fingerprint)
    return RayEmbedder(local, spec, address=address, batch_size=4, **options)


def test_a_lost_actor_s_batch_is_retried_and_the_index_is_the_same(
    small_corpus: Path, tmp_path: Path, ray_cluster: str
) -> None:
    marker = tmp_path / "died"
    embedder = ray_embedder(
        ray_cluster, tmp_path, load=functools.partial(dying_loader, marker=str(marker))
    )
    try:
        reindex([small_corpus], tmp_path / "ray", embedder)
    finally:
        embedder.close()
    reindex([small_corpus], tmp_path / "local", HashingEmbedder(256))
    assert marker.exists(), "no actor died: the test proves nothing"
    run = embedder.last_run
    assert run is not None and run.retried >= 1
    assert_same_index(tmp_path / "local", tmp_path / "ray")


def test_a_batch_lost_too_often_stops_the_job_with_our_error(
    small_corpus: Path, tmp_path: Path, ray_cluster: str
) -> None:
    loader = functools.partial(dying_loader, marker=str(tmp_path / "m"), always=True)
    embedder = ray_embedder(ray_cluster, tmp_path, load=loader, retries=1)
    try:
        with pytest.raises(ClusterError, match=r"Batch \d+ of \d+ \(\d+ texts\) was lost 2 times"):
            reindex([small_corpus], tmp_path / "ray", embedder)
    finally:
        embedder.close()
    assert current_version_path(tmp_path / "ray") is None  # nothing half-written


# ---- (c) a bad address, no Ray ------------------------------------------------------------


def test_an_unreachable_address_is_one_line_naming_it(env: dict[str, str], tmp_path: Path):
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    for args, extra in (
        (["--ray", address], {}),
        ([], {"NEWSDESK_RAY_ADDRESS": address}),  # the setting alone asks for Ray
    ):
        result = run_cli(
            "reindex", "--quiet", "--index", str(tmp_path / "idx"), *args,
            env={**env, **extra}, timeout=60,
        )  # fmt: skip
        err = result.stderr.decode()
        assert result.returncode == 1, err
        assert f"Cannot reach the Ray cluster at {address}" in err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert current_version_path(tmp_path / "idx") is None


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=REPO,
        timeout=120,
        check=False,
    )


def test_without_ray_installed_the_message_says_what_to_install(env: dict[str, str], tmp_path):
    code = (
        "import sys; sys.modules['ray'] = None\n"  # import ray -> ImportError
        "from newsdesk.cli import main\n"
        f"sys.exit(main(['reindex', '--quiet', '--index', {str(tmp_path / 'i')!r}, '--ray']))"
    )
    result = run_python(code, env)
    assert result.returncode == 1, result.stderr
    assert "pip install 'newsdesk[cluster]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_ask_and_reindex_without_ray_never_import_it(env: dict[str, str], tmp_path: Path):
    index = str(tmp_path / "idx")
    code = (
        "import sys\n"
        "from newsdesk.cli import main\n"
        f"assert main(['reindex', '--quiet', '--index', {index!r}]) == 0\n"
        f"assert main(['ask', '--index', {index!r}, 'when does the lease end?']) == 0\n"
        "import newsdesk.cluster\n"  # the composition module itself imports no Ray either
        "print('RAY', sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))"
    )
    result = run_python(code, env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "RAY []"


# ---- (d) the shared corpus, the real model ------------------------------------------------


@pytest.mark.model
def test_ray_build_of_the_shared_corpus_scores_the_local_build_s_eval_figures(
    shared: Path, shared_index: Path, model_data_dir: Path, tmp_path: Path, ray_cluster: str
) -> None:
    """The local build is the session's ``shared_index`` (``newsdesk reindex`` without Ray)."""
    env = {
        "NEWSDESK_HOME": str(tmp_path),
        "NEWSDESK_DATA_DIR": str(data_dir_with_model(model_data_dir, tmp_path / "data")),
        "NEWSDESK_CORPUS_DIRS": ",".join(str(shared / "corpus" / c) for c in SHARED_CORPORA),
    }
    started = time.monotonic()
    built = run_cli(
        "reindex", "--quiet", "--index", str(tmp_path / "ray"), "--ray", ray_cluster,
        env=env, timeout=3600,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr.decode()
    print(f"ray build: {time.monotonic() - started:.0f} s")
    indexes = {"local": shared_index, "ray": tmp_path / "ray"}
    a, b = (
        json.loads((current_version_path(path) / "manifest.json").read_text())  # type: ignore[operator]
        for path in indexes.values()
    )
    assert a["model_fingerprint"] == b["model_fingerprint"] and a["passages"] == b["passages"]
    figures = {}
    for name, path in indexes.items():
        result = run_cli(
            "eval", str(shared / "eval" / "dev.jsonl"), "--index", str(path),
            env=env, timeout=1800,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr.decode()
        figures[name] = result.stdout.decode().splitlines()[1:]  # after "index vN (...)"
    assert figures["ray"] == figures["local"]


def test_chunks_that_cut_across_batches_come_back_whole_and_in_order(
    tmp_path: Path, ray_cluster: str
) -> None:
    """A chunk made of the end of one batch and the start of the next (7-text batches under
    10-text chunks, one chunk empty), plain and late."""
    texts = [f"text number {i} about {'many ' * (i % 5)}things" for i in range(53)]
    sizes = [10, 10, 0, 10, 10, 10, 3]
    chunks, start = [], 0
    for size in sizes:
        chunks.append(texts[start : start + size])
        start += size
    local = HashingEmbedder(256)
    embedder = ray_embedder(ray_cluster, tmp_path)
    embedder.batch = 7
    late_chunks = [[(t, [(0, 4), (5, 11)]) for t in chunk] for chunk in chunks]
    try:
        plain = list(embedder.embed_chunks(chunks))
        late = list(embedder.embed_late_chunks(late_chunks))
    finally:
        embedder.close()
    assert [len(v) for v in plain] == sizes
    for got, want in zip(plain, local.embed_chunks(chunks), strict=True):
        assert np.array_equal(got, want)
    for got, want in zip(late, local.embed_late_chunks(late_chunks), strict=True):
        assert np.array_equal(got.texts, want.texts)
        assert np.array_equal(got.spans, want.spans)
        assert np.array_equal(got.pooled, want.pooled)
    assert embedder.last_run is not None and embedder.last_run.batches == 8


@pytest.mark.parametrize("sizes", [[7, 0], [3, 4, 0], [7, 0, 7, 0]])
def test_empty_chunks_after_a_batch_boundary_come_back_empty(
    tmp_path: Path, ray_cluster: str, sizes: list[int]
) -> None:
    """An empty chunk where a batch ends (the last one, even): the batch it would point at
    is used up, and it must still come back, empty, in its place."""
    texts = [f"text {i}" for i in range(sum(sizes))]
    chunks, start = [], 0
    for size in sizes:
        chunks.append(texts[start : start + size])
        start += size
    embedder = ray_embedder(ray_cluster, tmp_path)
    embedder.batch = 7
    try:
        plain = list(embedder.embed_chunks(chunks))
    finally:
        embedder.close()
    assert [len(v) for v in plain] == sizes
    for got, want in zip(plain, HashingEmbedder(256).embed_chunks(chunks), strict=True):
        assert np.array_equal(got, want)
