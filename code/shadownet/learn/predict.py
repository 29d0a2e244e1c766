"""``shadownet predict``: an export (see ``export``) loaded for inference through its ``serving_default``
signature, images in, ``{"text", "confidence"}`` out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import tensorflow as tf

from ..errors import DataError, ShadownetError
from .export import METADATA_FILE, SAVED_MODEL_FILE, SERVING_SIGNATURE, versions


class BatchPredictor:
    """Encoded images in batches -> texts; a subclass says how one batch is recognised (``_recognize``)."""

    def predict(self, images: Sequence[bytes], batch_size: int = 64) -> list[dict]:
        """Encoded images -> ``[{"text": str, "confidence": float}, ...]`` in the same order."""
        images = [bytes(image) for image in images]
        results: list[dict] = []
        for start in range(0, len(images), max(1, batch_size)):
            chunk = images[start : start + batch_size]
            try:
                texts, confidences = self._recognize(chunk)
            except tf.errors.InvalidArgumentError:
                raise self._decode_error(chunk, start) from None
            results += [{"text": t.decode("utf-8"), "confidence": float(c)} for t, c in zip(texts, confidences)]
        return results

    def _recognize(self, chunk: list[bytes]):
        """``(texts: bytes [batch], confidences [batch])`` as numpy arrays; InvalidArgumentError on a bad image."""
        raise NotImplementedError

    def _decode_error(self, chunk: list[bytes], start: int) -> DataError:
        for i, image in enumerate(chunk):
            try:
                self._recognize([image])
            except tf.errors.InvalidArgumentError as exc:
                error = DataError(f"image {start + i + 1}: not a decodable image ({_reason(exc.message)})")
                error.index = start + i
                return error
        return DataError("the model could not read this batch of images")


class Predictor(BatchPredictor):
    """An exported model loaded for inference through its ``serving_default`` signature."""

    def __init__(self, path: Path, loaded):
        self.path = Path(path)
        self._loaded = loaded  # keeps the variables alive
        self._serve = loaded.signatures[SERVING_SIGNATURE]
        meta = self.path / "assets" / METADATA_FILE
        self.metadata: dict = json.loads(meta.read_text(encoding="utf-8")) if meta.is_file() else {}

    def _recognize(self, chunk: list[bytes]):
        out = self._serve(image_bytes=tf.constant(chunk, dtype=tf.string))
        return out["text"].numpy(), out["confidence"].numpy()


def _reason(message: str) -> str:
    """The op's own words from a graph execution error (not the trace around them)."""
    for line in message.splitlines():
        line = line.strip()
        if line and not line.startswith(("Graph execution error", "Detected at", "<stack", "[[")):
            return line
    return message.strip()


def resolve(path: Path) -> Path:
    """A version folder, or the ``<name>`` folder (its highest version) -> the version folder."""
    path = Path(path)
    if (path / SAVED_MODEL_FILE).is_file():
        return path
    if not path.is_dir():
        raise ShadownetError(f"{path}: no such export (expected <export_dir>/<name> or <name>/<version>)")
    found = [v for v in versions(path) if (path / str(v) / SAVED_MODEL_FILE).is_file()]
    if not found:
        raise ShadownetError(f"{path}: neither a SavedModel nor a folder of numbered versions of one")
    return path / str(found[-1])


def load(path: Path):
    """Load an export: a version folder, a ``<name>`` folder (its highest version), or a ``.onnx`` file (or a
    version folder holding only ``model.onnx``), run by onnxruntime (``onnx_model.OnnxPredictor``)."""
    from .onnx_model import ONNX_FILE

    path = Path(path)
    if path.suffix == ".onnx" or (path.is_dir() and not (path / SAVED_MODEL_FILE).is_file()
                                  and (path / ONNX_FILE).is_file()):
        try:
            from .onnx_model import OnnxPredictor

            return OnnxPredictor(path / ONNX_FILE if path.is_dir() else path)
        except ModuleNotFoundError as exc:
            if exc.name not in ("onnxruntime", "onnx", "tf2onnx"):
                raise
            raise ShadownetError(f"{path}: an ONNX model needs onnxruntime (pip install 'shadownet[onnx]')") from None
    version_dir = resolve(path)
    loaded = tf.saved_model.load(str(version_dir))
    if SERVING_SIGNATURE not in loaded.signatures:
        raise ShadownetError(f"{version_dir}: the SavedModel has no {SERVING_SIGNATURE} signature")
    return Predictor(version_dir, loaded)
