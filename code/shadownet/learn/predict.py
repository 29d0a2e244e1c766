"""``shadownet predict``: an export (see ``export``) loaded for inference, images in, ``{"text", "confidence"}``
out: a SavedModel through its ``serving_default`` signature (``Predictor``), or an ONNX model
(``onnx_model``) through onnxruntime (``OnnxPredictor``).

``OnnxPredictor`` runs the model with the SavedModel's own image decoding, resizing and text decoding
(``pipeline.preprocess``, ``ctc.greedy``): one implementation, so the two cannot drift.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import tensorflow as tf

from ..errors import DataError, ShadownetError
from . import ctc, pipeline
from .export_layout import METADATA_FILE, ONNX_FILE, ONNX_METADATA_KEY, SAVED_MODEL_FILE, SERVING_SIGNATURE, versions


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
            results += [{"text": t.decode("utf-8"), "confidence": float(c)}
                        for t, c in zip(texts, confidences, strict=True)]
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
    version folder holding only ``model.onnx``), run by onnxruntime (``OnnxPredictor``)."""
    path = Path(path)
    if path.suffix == ".onnx" or (path.is_dir() and not (path / SAVED_MODEL_FILE).is_file()
                                  and (path / ONNX_FILE).is_file()):
        try:
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


# -- ONNX ------------------------------------------------------------------------------------------------


class OnnxPredictor(BatchPredictor):
    """A ``model.onnx`` written by ``export --format onnx``, run by onnxruntime."""

    def __init__(self, path: Path):
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise ShadownetError(f"{self.path}: no such ONNX model")
        try:
            self.session = ort.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own pybind classes (InvalidProtobuf, Fail, ...)
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataError(f"{self.path}: not a loadable ONNX model ({reason[:200]})") from None
        props = self.session.get_modelmeta().custom_metadata_map
        if ONNX_METADATA_KEY not in props:
            raise DataError(f"{self.path}: an ONNX model without shadownet's metadata (key {ONNX_METADATA_KEY!r}); "
                            "export it with shadownet export --format onnx")
        try:
            self.metadata = json.loads(props[ONNX_METADATA_KEY])
            self.characters = tf.constant(list(self.metadata["characters"]), tf.string)
            blank, mode = int(self.metadata["blank_index"]), self.metadata["input"]["mode"]
            max_width = int(self.metadata["config"]["max_width"])
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{self.path}: shadownet metadata is unreadable ({exc})") from None
        names = {i.name for i in self.session.get_inputs()}
        if names != {"images", "widths"}:
            raise DataError(f"{self.path}: inputs are {sorted(names)}, expected images and widths")

        self._preprocess = tf.function(lambda image_bytes: pipeline.preprocess(image_bytes, mode, max_width),
                                       input_signature=[tf.TensorSpec([None], tf.string)])
        self._decode = tf.function(
            lambda logits, lengths: _texts(logits, lengths, blank, self.characters),
            input_signature=[tf.TensorSpec([None, None, None], tf.float32), tf.TensorSpec([None], tf.int32)])

    def scores(self, images: np.ndarray, widths: np.ndarray) -> dict[str, np.ndarray]:
        """The model's outputs for preprocessed images: ``logits``, ``ids``, ``lengths``."""
        names = [o.name for o in self.session.get_outputs()]
        outputs = self.session.run(names, {"images": np.asarray(images, np.float32),
                                           "widths": np.asarray(widths, np.int32)})
        return dict(zip(names, outputs, strict=True))

    def _recognize(self, chunk: list[bytes]):
        pixels, widths = self._preprocess(tf.constant(chunk, dtype=tf.string))
        out = self.scores(pixels.numpy(), widths.numpy())
        texts, confidences = self._decode(tf.constant(out["logits"]), tf.constant(out["lengths"]))
        return texts.numpy(), confidences.numpy()


def _texts(logits, lengths, blank: int, characters):
    ids, confidence = ctc.greedy(logits, lengths, blank)
    return ctc.to_text(ids, characters), confidence
