"""Embedder backends: choice, fingerprints, laziness, the ONNX export and its equivalence to torch.

The equivalence tests use the real default model (marker ``model``); they export it to
ONNX once per session into a temporary data dir. No timing is asserted here: speed is
measured by ``scripts/bench.py``, on real data, against a baseline in the same run.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from index.embedders.factory import load_embedder
from index.embedders.hashing import HashingEmbedder
from index.embedders.lazy import LazyEmbedder
from index.embedders.models import (
    BACKENDS,
    DEFAULT_MODEL_SHA256,
    backend_fingerprint,
)
from index.embedders.onnx import (
    INT8_SUFFIX,
    cached_onnx_model,
    max_seq_length,
    model_dimension,
    onnx_cache_dir,
    pooling_mode,
    supports_onnx,
)
from index.errors import IndexMismatchError, ModelError
from tests.conftest import hashing_pool

REPO = Path(__file__).resolve().parents[1]
HAVE_ORT = all(importlib.util.find_spec(m) for m in ("onnxruntime", "tokenizers"))
HAVE_EXPORT = all(importlib.util.find_spec(m) for m in ("torch", "transformers", "onnx"))
HAVE_MODEL = importlib.util.find_spec("all_minilm_l6_v2") is not None
needs_onnx = pytest.mark.skipif(
    not (HAVE_ORT and HAVE_EXPORT and HAVE_MODEL),
    reason="needs onnxruntime, tokenizers, onnx, torch and the default model package",
)

TEXTS = [
    "when does the base lease end?",
    "In October 2012, Moscow and Dushanbe signed a lease agreement under which the military "
    "base will be deployed in Tajikistan, which borders Afghanistan, until 2042.",
    "  leading and trailing spaces  ",
    "Ünïcödé, “curly quotes” and an em dash — all fine.",
    "word " * 400,  # longer than max_seq_length: truncated the same way
    "x",
]


# ---- no model needed -------------------------------------------------------------------------


def test_hashing_needs_no_backend(tmp_path: Path) -> None:
    embedder = load_embedder("hashing:64", tmp_path, backend="onnx")
    assert isinstance(embedder, HashingEmbedder)
    assert embedder.dimension == 64


def test_unknown_backend_is_a_clear_error(tmp_path: Path) -> None:
    model = _fake_model_dir(tmp_path / "m")
    with pytest.raises(ModelError, match="Unknown embedding backend 'gpu'"):
        load_embedder(str(model), tmp_path, backend="gpu")
    assert "auto" in BACKENDS and "onnx-int8" in BACKENDS


def test_fingerprints_equal_for_equivalent_backends_only() -> None:
    for backend in ("auto", "torch", "torch-bf16", "onnx"):
        assert backend_fingerprint(DEFAULT_MODEL_SHA256, backend) == DEFAULT_MODEL_SHA256
    int8 = backend_fingerprint(DEFAULT_MODEL_SHA256, "onnx-int8")
    assert int8 != DEFAULT_MODEL_SHA256 and int8.endswith(INT8_SUFFIX)


def test_native_bf16_is_read_from_the_cpu_flags(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import builtins

    from index.embedders import models

    real_open = builtins.open

    def fake_cpuinfo(flags: str):
        cpuinfo = tmp_path / f"cpuinfo-{len(flags)}"
        cpuinfo.write_text(f"processor\t: 0\nflags\t\t: fpu sse2 {flags}\n")
        return lambda path, *a, **kw: real_open(
            cpuinfo if path == "/proc/cpuinfo" else path, *a, **kw
        )

    monkeypatch.setattr(builtins, "open", fake_cpuinfo("avx2 avx512f avx512_bf16"))
    assert models.native_bf16()
    monkeypatch.setattr(builtins, "open", fake_cpuinfo("avx2 amx_bf16"))
    assert models.native_bf16()
    monkeypatch.setattr(builtins, "open", fake_cpuinfo("avx2 avx512f"))
    assert not models.native_bf16()


def _fake_model_dir(path: Path, *, pooling: dict | None = None, dense: bool = False) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"hidden_size": 48, "model_type": "bert"}))
    (path / "tokenizer.json").write_text("{}")
    (path / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 128}))
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
    ]
    if dense:
        modules.append(
            {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}
        )
    (path / "modules.json").write_text(json.dumps(modules))
    (path / "1_Pooling").mkdir()
    (path / "1_Pooling" / "config.json").write_text(
        json.dumps(pooling or {"word_embedding_dimension": 48, "pooling_mode_mean_tokens": True})
    )
    (path / "model.safetensors").write_bytes(b"not really weights")
    return path


def test_model_facts_are_read_from_config_files(tmp_path: Path) -> None:
    model = _fake_model_dir(tmp_path / "m")
    assert pooling_mode(model) == "mean"
    assert model_dimension(model) == 48
    assert max_seq_length(model) == 128
    assert supports_onnx(model)


def test_unsupported_models_fall_back_or_fail_clearly(tmp_path: Path) -> None:
    cls = _fake_model_dir(
        tmp_path / "cls", pooling={"pooling_mode_cls_token": True, "word_embedding_dimension": 48}
    )
    assert pooling_mode(cls) == "cls"
    maxpool = _fake_model_dir(tmp_path / "max", pooling={"pooling_mode_max_tokens": True})
    with pytest.raises(ModelError, match="mean or CLS pooling"):
        pooling_mode(maxpool)
    assert not supports_onnx(maxpool)
    assert not supports_onnx(_fake_model_dir(tmp_path / "dense", dense=True))


def test_lazy_embedder_loads_on_first_embed_only() -> None:
    calls: list[int] = []

    def factory() -> HashingEmbedder:
        calls.append(1)
        emb = HashingEmbedder(32)
        emb.fingerprint = "fp"
        return emb

    lazy = LazyEmbedder(name="h", fingerprint="fp", dimension=32, factory=factory)
    assert (lazy.name, lazy.fingerprint, lazy.dimension) == ("h", "fp", 32)
    assert lazy.embed([]).shape == (0, 32)
    assert not calls and not lazy.loaded
    vectors = lazy.embed(["a text", "another"])
    assert vectors.shape == (2, 32) and calls == [1] and lazy.loaded
    lazy.embed(["again"])
    assert calls == [1]


def test_lazy_embedder_refuses_a_different_fingerprint() -> None:
    lazy = LazyEmbedder(name="h", fingerprint="announced", factory=lambda: HashingEmbedder(8))
    with pytest.raises(RuntimeError, match="differs"):
        lazy.embed(["text"])


def test_export_cache_is_keyed_by_fingerprint_and_checked(tmp_path: Path) -> None:
    directory = onnx_cache_dir(tmp_path, "abc123" * 10)
    assert directory.name.startswith("abc123abc123abc1-v")
    assert cached_onnx_model(tmp_path, "abc123" * 10) is None
    directory.mkdir(parents=True)
    model = directory / "model.onnx"
    model.write_bytes(b"onnx")
    stat = model.stat()
    meta = {
        "fingerprint": "abc123" * 10,
        "files": {"model.onnx": {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}},
    }
    (directory / "export.json").write_text(json.dumps(meta))
    assert cached_onnx_model(tmp_path, "abc123" * 10) == model
    assert cached_onnx_model(tmp_path, "abc123" * 10, int8=True) is None
    model.write_bytes(b"onnx, but changed")  # a damaged or replaced file is not trusted
    assert cached_onnx_model(tmp_path, "abc123" * 10) is None


# ---- the real model ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def onnx_data_dir(model_data_dir: Path) -> Path:
    """The shared model data dir with the ONNX export (and int8) made once."""
    if not (HAVE_ORT and HAVE_EXPORT and HAVE_MODEL):
        pytest.skip("ONNX export needs onnxruntime, onnx, torch and the model package")
    load_embedder("all-MiniLM-L6-v2", model_data_dir, backend="onnx")
    return model_data_dir


@pytest.fixture(scope="session")
def torch_embedder(model_data_dir: Path):
    if not HAVE_MODEL:
        pytest.skip("the default model package is not installed")
    return load_embedder("all-MiniLM-L6-v2", model_data_dir, backend="torch")


@pytest.fixture(scope="session")
def onnx_embedder(onnx_data_dir: Path):
    return load_embedder("all-MiniLM-L6-v2", onnx_data_dir, backend="onnx")


def _passages(shared_root: Path | None) -> list[str]:
    from corpus.loaders import load_corpus
    from index.passages import passage_spans
    from newsdesk.settings import SAMPLE_CORPUS

    roots = [SAMPLE_CORPUS]
    if shared_root is not None:
        roots.append(shared_root / "corpus" / "voa")
    texts = []
    for article in load_corpus(roots).articles:
        for span in passage_spans(article):
            texts.append(f"{article.title}\n{article.text[span.start : span.end]}")
    return texts[:150]


@pytest.mark.model
@needs_onnx
def test_onnx_embeddings_match_torch(torch_embedder, onnx_embedder) -> None:
    assert onnx_embedder.fingerprint == torch_embedder.fingerprint == DEFAULT_MODEL_SHA256
    assert onnx_embedder.dimension == torch_embedder.dimension == 384
    a = torch_embedder.embed(TEXTS)
    b = onnx_embedder.embed(TEXTS)
    assert b.dtype == np.float32 and b.shape == a.shape
    assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    assert np.min(np.sum(a * b, axis=1)) >= 0.9999
    # batch composition (padding to other lengths) does not change a text's vector
    one = onnx_embedder.embed([TEXTS[1]])[0]
    assert float(one @ b[1]) >= 0.99999


@pytest.mark.model
@needs_onnx
def test_onnx_ranks_like_torch(torch_embedder, onnx_embedder) -> None:
    from tests.conftest import SHARED

    texts = _passages(SHARED if (SHARED / "corpus" / "voa").is_dir() else None)
    questions = [
        "when does the base lease end?",
        "how many russian troops are stationed in tajikistan",
        "who visited Dushanbe",
        "what did the report say about elections",
        "refugees",
    ]
    k = min(10, len(texts))
    top = {}
    for name, emb in (("torch", torch_embedder), ("onnx", onnx_embedder)):
        scores = emb.embed(questions) @ emb.embed(texts).T
        top[name] = [list(np.argsort(-row, kind="stable")[:k]) for row in scores]
    assert top["onnx"] == top["torch"]


@pytest.mark.model
@needs_onnx
def test_torch_index_is_served_by_onnx_and_refused_by_int8(
    torch_embedder, onnx_embedder, onnx_data_dir: Path, small_corpus: Path, tmp_path: Path
) -> None:
    from index.build import reindex
    from index.engine import Engine
    from index.store import load_index

    reindex([small_corpus], tmp_path / "idx", torch_embedder)
    index = load_index(
        tmp_path / "idx", expect_model=(onnx_embedder.name, onnx_embedder.fingerprint)
    )
    question = "how fast is the Cell processor?"
    hits_onnx = Engine.create(index, onnx_embedder).search(question, k=3, mode="dense")
    hits_torch = Engine.create(index, torch_embedder).search(question, k=3, mode="dense")
    assert [h.passage.passage_id for h in hits_onnx] == [h.passage.passage_id for h in hits_torch]
    assert abs(hits_onnx[0].score - hits_torch[0].score) < 1e-4

    int8 = load_embedder("all-MiniLM-L6-v2", onnx_data_dir, backend="onnx-int8")
    assert int8.fingerprint == DEFAULT_MODEL_SHA256 + INT8_SUFFIX
    cos = np.sum(int8.embed(TEXTS[:2]) * torch_embedder.embed(TEXTS[:2]), axis=1)
    assert np.all(cos > 0.95)  # close, but not the same vectors: hence its own fingerprint
    with pytest.raises(IndexMismatchError):
        load_index(tmp_path / "idx", expect_model=(int8.name, int8.fingerprint))


@pytest.mark.model
@needs_onnx
def test_bf16_index_is_served_by_onnx_like_an_fp32_one(
    torch_embedder, onnx_embedder, model_data_dir: Path, small_corpus: Path, tmp_path: Path
) -> None:
    """bf16 autocast (the bulk default on CPUs with native bf16) counts as the same model:
    its vectors are within cosine 0.9999 of fp32 and its index ranks like the fp32 one."""
    from index.build import reindex
    from index.engine import Engine
    from index.store import load_index

    bf16 = load_embedder("all-MiniLM-L6-v2", model_data_dir, backend="torch-bf16")
    assert bf16.fingerprint == torch_embedder.fingerprint
    cos = np.sum(bf16.embed(TEXTS) * torch_embedder.embed(TEXTS), axis=1)
    assert np.min(cos) >= 0.9999
    reindex([small_corpus], tmp_path / "fp32", torch_embedder)
    reindex([small_corpus], tmp_path / "bf16", bf16)
    expect = (onnx_embedder.name, onnx_embedder.fingerprint)
    for question in ("how fast is the Cell processor?", "when does the base lease end?"):
        ranked = [
            [
                h.passage.passage_id
                for h in Engine.create(
                    load_index(tmp_path / name, expect_model=expect), onnx_embedder
                ).search(question, k=3, mode="dense")
            ]
            for name in ("fp32", "bf16")
        ]
        assert ranked[0] == ranked[1]


# ---- bulk embedding in worker processes ------------------------------------------------------


def test_workers_are_planned_per_core() -> None:
    from index.embedders.pool import MAX_WORKERS, plan_workers

    assert plan_workers(2) == (2, 1)
    assert plan_workers(1) == (1, 1)
    assert plan_workers(16) == (MAX_WORKERS, 16 // MAX_WORKERS)
    assert plan_workers(8, requested=1) == (1, 8)
    assert plan_workers(8, requested=2) == (2, 4)


def test_pool_embeds_large_jobs_in_workers_with_the_same_vectors(tmp_path: Path) -> None:
    pool = hashing_pool(tmp_path, 64, min_texts=10)
    local = pool.local
    chunks = [[f"text number {i} of chunk {c}" for i in range(7)] for c in range(4)]
    got = list(pool.embed_chunks(chunks))
    assert pool.pool_runs == 1
    assert [len(v) for v in got] == [7, 7, 7, 7]
    for chunk, vectors in zip(chunks, got, strict=True):
        assert np.allclose(vectors, local.embed(chunk))
    small = list(pool.embed_chunks(chunks[:1]))  # under min_texts: in-process
    assert pool.pool_runs == 1 and np.allclose(small[0], local.embed(chunks[0]))
    assert pool.fingerprint == local.fingerprint and pool.dimension == 64


def test_a_worker_that_cannot_load_the_model_says_why(tmp_path: Path) -> None:
    pool = hashing_pool(tmp_path, name=str(tmp_path / "no-such-model"), backend="torch")
    with pytest.raises(ModelError, match="no-such-model"):
        list(pool.embed_chunks([["a text"], ["another"]]))


def test_a_worker_with_another_model_refuses(tmp_path: Path) -> None:
    pool = hashing_pool(tmp_path, fingerprint="announced-elsewhere")
    with pytest.raises(ModelError, match="not the announced"):
        list(pool.embed_chunks([["a text"], ["another"]]))


def test_bulk_embedder_from_settings_is_a_pool_that_stays_lazy(tmp_path: Path) -> None:
    from index.embedders.pool import PooledEmbedder

    model = _fake_model_dir(tmp_path / "m")
    pooled = load_embedder(str(model), tmp_path, lazy=True, purpose="bulk", workers=2)
    assert isinstance(pooled, PooledEmbedder) and pooled.workers == 2
    assert pooled.dimension == 48 and not pooled.loaded
    single = load_embedder(str(model), tmp_path, lazy=True, purpose="bulk", workers=1)
    assert isinstance(single, LazyEmbedder)
    query = load_embedder(str(model), tmp_path, lazy=True, purpose="query", workers=2)
    assert isinstance(query, LazyEmbedder)


def _run(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.model
@needs_onnx
def test_onnx_query_path_does_not_import_torch(onnx_data_dir: Path) -> None:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from index.embedders import load_embedder\n"
        f"e = load_embedder('all-MiniLM-L6-v2', Path({str(onnx_data_dir)!r}), backend='auto')\n"
        "v = e.embed(['when does the base lease end?'])\n"
        "print(type(e).__name__, v.shape, 'torch' in sys.modules, 'transformers' in sys.modules)"
    )
    assert _run(code) == "OnnxEmbedder (1, 384) False False"


@pytest.mark.model
@pytest.mark.skipif(not HAVE_MODEL, reason="the default model package is not installed")
def test_lazy_embedder_knows_its_identity_without_loading(model_data_dir: Path) -> None:
    from index.embedders.models import default_model_dir

    default_model_dir(model_data_dir)  # extracted (not loaded) beforehand, as after setup
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from index.embedders import load_embedder\n"
        f"e = load_embedder('all-MiniLM-L6-v2', Path({str(model_data_dir)!r}), lazy=True)\n"
        "names = ('torch', 'onnxruntime', 'sentence_transformers')\n"
        "heavy = [m for m in names if m in sys.modules]\n"
        "print(e.name, e.fingerprint[:12], e.dimension, e.loaded, heavy)"
    )
    assert _run(code) == f"all-MiniLM-L6-v2 {DEFAULT_MODEL_SHA256[:12]} 384 False []"


def test_auto_picks_by_purpose(tmp_path: Path) -> None:
    from index.embedders import models
    from index.embedders.models import choose_backend

    model = _fake_model_dir(tmp_path / "m")
    if importlib.util.find_spec("sentence_transformers") is not None:
        bulk = choose_backend("auto", model, "fp", tmp_path, "bulk")
        assert bulk == ("torch-bf16" if models.native_bf16() else "torch")
    query = choose_backend("auto", model, "fp", tmp_path, "query")
    assert query == ("onnx" if HAVE_ORT and HAVE_EXPORT else "torch")
    assert choose_backend("auto", "some/hub-name", "fp", tmp_path, "query") == "torch"
    assert choose_backend("onnx-int8", model, "fp", tmp_path, "bulk") == "onnx-int8"
    with pytest.raises(ValueError, match="purpose"):
        choose_backend("auto", model, "fp", tmp_path, "batch")


# ---- composition: one factory, wrappers beside the backends, no import cycle ---------------


def test_the_factory_composes_lazy_pooled_and_locked_wrappers(tmp_path: Path) -> None:
    from index.embedders.locked import LockedEmbedder
    from index.embedders.pool import PooledEmbedder

    model = _fake_model_dir(tmp_path / "m")
    locked = load_embedder(str(model), tmp_path, lazy=True, locked=True)
    assert isinstance(locked, LockedEmbedder) and isinstance(locked.inner, LazyEmbedder)
    assert locked.dimension == 48 and not locked.loaded  # the model is still not loaded
    bulk = load_embedder(str(model), tmp_path, lazy=True, purpose="bulk", workers=2, locked=True)
    assert isinstance(bulk, LockedEmbedder) and isinstance(bulk.inner, PooledEmbedder)
    hashing = load_embedder("hashing:32", tmp_path, locked=True)
    assert np.allclose(hashing.embed(["a b"]), HashingEmbedder(32).embed(["a b"]))


def test_embedder_modules_import_no_cycle() -> None:
    """Backends and wrappers never import the factory; models imports no wrapper."""
    import ast

    folder = REPO / "index" / "embedders"
    imports: dict[str, set[str]] = {}
    for path in folder.glob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "index.embedders."
            ):
                names.add(node.module.rsplit(".", 1)[1])
        imports[path.stem] = names
    for module, names in imports.items():
        if module not in ("factory", "__init__"):
            assert "factory" not in names, module
    assert not imports["models"] & {"lazy", "pool", "locked"}
    assert "models" not in imports["lazy"] | imports["locked"]


# ---- late chunking (sentence vectors from the passage's pass) ---------------------------------

LATE_ITEMS = [
    ("Storm\nRain fell. Wind blew hard.", [(6, 16), (17, 32)]),
    ("  Spaces first. Then more.", [(2, 15), (16, 26)]),
    ("No spans here.", []),
]


def test_late_chunks_in_workers_equal_the_local_ones(tmp_path: Path) -> None:
    pool = hashing_pool(tmp_path, 64, min_texts=2)
    chunks = [LATE_ITEMS[:2], LATE_ITEMS[2:]]
    got = list(pool.embed_late_chunks(chunks))
    assert pool.pool_runs == 1
    for chunk, late in zip(chunks, got, strict=True):
        local = pool.local.embed_late(chunk)
        assert np.allclose(late.texts, local.texts) and np.allclose(late.spans, local.spans)
        assert late.pooled.tolist() == local.pooled.tolist()
        assert np.allclose(late.texts, pool.local.embed([t for t, _ in chunk]))
    assert got[0].pooled.tolist() == [True] * 4 and got[1].spans.shape == (0, 64)


def test_wrappers_pass_late_chunking_through_and_others_refuse_it() -> None:
    from index.embedders.base import Embedder
    from index.embedders.locked import LockedEmbedder

    inner = HashingEmbedder(32)
    lazy = LazyEmbedder(name="hashing", fingerprint=inner.fingerprint, factory=lambda: inner)
    for wrapped in (LockedEmbedder(inner), lazy):
        late = wrapped.embed_late(LATE_ITEMS)
        assert np.allclose(late.spans, inner.embed_late(LATE_ITEMS).spans)

    class NoTokens(Embedder):
        name, dimension, fingerprint = "plain", 4, "plain"

        def embed(self, texts, *, batch_size=32):
            return np.ones((len(texts), 4), np.float32) / 2

    with pytest.raises(ModelError, match="NEWSDESK_SENTENCE_VECTORS=separate"):
        NoTokens().embed_late(LATE_ITEMS)


@pytest.mark.model
def test_late_vectors_of_the_real_model(torch_embedder) -> None:
    one = "In October 2012, Moscow and Dushanbe signed a lease agreement."
    title = "Russian base"
    long = f"{title}\n{one} " + "More words follow here. " * 60 + "The last sentence."
    items = [(one, [(0, len(one))]), (long, [(13, 13 + len(one)), (len(long) - 18, len(long))])]
    late = torch_embedder.embed_late(items)
    # the passage vectors are exactly what ``embed`` gives (the same index fingerprint)
    assert np.allclose(late.texts, torch_embedder.embed([one, long]), atol=1e-5)
    # a one-sentence text: the mean of its token outputs without [CLS] and [SEP]
    model = torch_embedder._model
    tokens = model.encode([one], output_value="token_embeddings")[0].float().numpy()
    mean = tokens[1:-1].mean(axis=0)
    assert np.allclose(late.spans[0], mean / np.linalg.norm(mean), atol=1e-5)
    assert float(late.spans[0] @ torch_embedder.embed([one])[0]) > 0.9
    # the long text is cut at 256 tokens: its first sentence pooled, its last one not
    assert late.pooled.tolist() == [True, True, False]
    # the same sentence in another context: the context moves it (0.68 here), not away
    assert float(late.spans[1] @ late.spans[0]) > 0.5
