"""An export loaded for serving, its work cut into the stages the server times.

``shadownet predict`` runs ``serving_default``: decode, resize, model and CTC decoding in one graph.
The server runs the same operations in steps, so that each image is checked on its own (a bad
image fails its request, not the batch it would have joined) and each stage is timed:

* ``decode``: the encoded bytes -> uint8 pixels [h, w, 3] (``tf.io.decode_image``, first frame);
* ``preprocess``: -> uint8 [32, width, 3], the width by ``geometry``'s rule (``pipeline.input_widths``),
  resized by ``pipeline.resize``;
* ``model``: a batch of them, zero-padded to the widest and normalised to [-1, 1] as
  ``pipeline.preprocess`` does, through the export's ``predict_images`` signature (the network and
  its greedy CTC decoding, which the graph does);
* ``text``: the outputs as Python strings and floats.

Same operations on the same pixels, so the texts equal ``predict``'s (the tests pin it).
"""

from __future__ import annotations

import json
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from .. import geometry
from ..errors import ShadownetError
from ..geometry import CHANNELS, HEIGHT
from ..learn import export_layout, pipeline
from ..learn.predict import resolve

# The smallest image a request may send, before it is resized (geometry.MIN_WIDTH is the narrowest the
# model reads, after): fewer rows hold no legible text line.
MIN_SOURCE_HEIGHT = 8
MIN_SOURCE_WIDTH = 4
MAX_PIXELS = 40_000_000  # refused before decoding (a small PNG can inflate to gigabytes)


class InstanceError(Exception):
    """One image that cannot be read: the request fails with ``status``, naming the instance."""

    def __init__(self, message: str, status: int = 400, index: int | None = None):
        super().__init__(message)
        self.status, self.index = status, index


@dataclass(frozen=True)
class Prepared:
    """One image ready for the model, with the time its stages took (seconds)."""

    pixels: np.ndarray  # uint8 [HEIGHT, width, 3]
    decode_s: float
    preprocess_s: float


def find_export(path: Path) -> Path:
    """A version folder, a ``<name>`` folder of versions, or a folder holding one ``<name>/`` (what a
    training job leaves in ``/opt/ml/model``; ``AIP_MODEL_DIR``) -> the version folder."""
    path = Path(path)
    if path.is_dir() and not (path / export_layout.SAVED_MODEL_FILE).is_file() and not export_layout.versions(path):
        names = sorted(p for p in path.iterdir() if p.is_dir() and export_layout.versions(p))
        if len(names) == 1:
            return resolve(names[0])
        if len(names) > 1:
            raise ShadownetError(f"{path}: holds several exports ({', '.join(p.name for p in names)}); "
                                 "name one with --model")
    return resolve(path)


class ServingModel:
    """The export at ``path``: ``prepare`` one image (any thread), ``recognize`` a batch of them."""

    def __init__(self, path: Path):
        self.path = find_export(path)
        meta_file = self.path / "assets" / export_layout.METADATA_FILE
        try:
            self.metadata = json.loads(meta_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ShadownetError(f"{meta_file}: not a shadownet export's metadata ({exc})") from None
        self.name = self.metadata.get("name", "shadownet")
        self.version = int(self.metadata.get("version", self.path.name if self.path.name.isdigit() else 1))
        loaded = tf.saved_model.load(str(self.path))
        if export_layout.IMAGES_SIGNATURE not in loaded.signatures:
            raise ShadownetError(f"{self.path}: the SavedModel has no {export_layout.IMAGES_SIGNATURE} signature")
        self._loaded = loaded  # keeps the variables alive
        self._network = loaded.signatures[export_layout.IMAGES_SIGNATURE]
        self.mode = self.metadata["input"]["mode"]
        self.max_width = int(self.metadata["config"]["max_width"])
        self._canvases = pipeline.bucket_widths(self.max_width) if self.mode == "keep_ratio" else []
        self._lock = threading.Lock()  # one batch at a time: TensorFlow already uses every core for it
        mode, max_width = self.mode, self.max_width

        @tf.function(input_signature=[tf.TensorSpec([], tf.string)])
        def decode(encoded):
            image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
            image.set_shape([None, None, 3])
            return image

        @tf.function(input_signature=[tf.TensorSpec([None, None, CHANNELS], tf.uint8)])
        def resize(image):
            return pipeline.resize(image, pipeline.input_widths(tf.shape(image)[None, :2], mode, max_width)[0])

        @tf.function(input_signature=[tf.TensorSpec([None, HEIGHT, None, CHANNELS], tf.uint8),
                                      tf.TensorSpec([None], tf.int32)])
        def network(images, widths):
            out = self._network(images=pipeline.normalize(images), widths=widths)
            return out["text"], out["confidence"]

        self._decode, self._resize, self._run = decode, resize, network

    # -- per image ------------------------------------------------------------------------------

    def prepare(self, encoded: bytes, clock) -> Prepared:
        """Decode and resize one image; ``InstanceError`` when it is not one this model can read."""
        start = clock()
        height, width = _header_size(encoded)
        if height * width > MAX_PIXELS:
            raise InstanceError(f"image of {width}x{height} px is too large (over {MAX_PIXELS:,} pixels)", 413)
        try:
            image = self._decode(tf.constant(encoded)).numpy()
        except tf.errors.InvalidArgumentError:
            raise InstanceError("not a decodable image (JPEG, PNG, GIF, BMP or WebP)") from None
        decoded = clock()
        height, width = image.shape[:2]
        if height < MIN_SOURCE_HEIGHT or width < MIN_SOURCE_WIDTH:
            raise InstanceError(f"image of {width}x{height} px is too small "
                                f"(at least {MIN_SOURCE_WIDTH}x{MIN_SOURCE_HEIGHT})")
        scaled = geometry.scaled_width(width, height)
        if self.mode == "keep_ratio" and scaled > self.max_width:
            raise InstanceError(f"image of {width}x{height} px is too wide: {scaled} px at height "
                                f"{HEIGHT}, and this model reads up to {self.max_width}")
        pixels = self._resize(image).numpy()
        return Prepared(pixels, decoded - start, clock() - decoded)

    # -- per batch ------------------------------------------------------------------------------

    def recognize(self, batch: list[np.ndarray]) -> tuple[list[bytes], list[float]]:
        """Prepared images -> (UTF-8 texts, confidences), in order."""
        widths = np.array([p.shape[1] for p in batch], np.int32)
        # The padded width rounded up to training's bucket widths: fewer shapes for oneDNN to prepare, and
        # the same texts (the model masks what lies past each image's width).
        widest = max(int(widths.max()), geometry.MIN_WIDTH)
        canvas = next((w for w in self._canvases if w >= widest), widest)
        images = np.zeros((len(batch), HEIGHT, canvas, CHANNELS), np.uint8)
        for i, pixels in enumerate(batch):
            images[i, :, : pixels.shape[1]] = pixels
        with self._lock:
            texts, confidences = self._run(tf.constant(images), tf.constant(widths))
        return list(texts.numpy()), confidences.numpy().tolist()

    def warm_up(self, clock, widths=(32, 100, 256), batches=(1, 8, 64)) -> None:
        """One call per stage and a few batch shapes, so that the first requests do not build them."""
        widths = [min(w, self.max_width) for w in widths]
        for width in widths:
            png = tf.io.encode_png(tf.fill([HEIGHT, width, CHANNELS], tf.constant(255, tf.uint8))).numpy()
            prepared = self.prepare(png, clock)
            for size in batches:
                self.recognize([prepared.pixels] * size)


def _header_size(encoded: bytes) -> tuple[int, int]:
    """(height, width) from a PNG's or JPEG's header; (0, 0) when not found (then decoding decides)."""
    if encoded[:8] == pipeline.PNG_SIGNATURE and len(encoded) >= 24:
        width, height = struct.unpack(">II", encoded[16:24])
        return height, width
    if encoded[:2] == b"\xff\xd8":
        try:
            height, width, _ = tf.image.extract_jpeg_shape(encoded).numpy().tolist()
            return height, width
        except tf.errors.InvalidArgumentError:
            return 0, 0
    return 0, 0
