"""``shadownet export``: a trained model as a TF Serving SavedModel (``predict`` loads one).

Layout (TF Serving's: it polls ``<export_dir>/<name>/`` for integer version folders; see ``export_layout``)::

    <export_dir>/<name>/<version>/saved_model.pb
                                  variables/
                                  assets/shadownet.json   resolved config, charset, signature notes

A version is written to a hidden ``.<version>.*.partial`` sibling and renamed into place when
complete, so a server never loads a half-written version; an existing version is never replaced.

Signatures (everything happens in the graph; the CTC loss is not part of it):

* ``serving_default``: ``image_bytes`` string [batch], encoded JPEG/PNG/GIF/BMP/WebP images of any size
  -> ``text`` string [batch], ``confidence`` float32 [batch]. Each image is resized by ``geometry``'s
  width rule: to height 32 keeping its aspect ratio (width ``round(w * 32 / h)`` clamped to [8, max_width]),
  or to 100x32 for a model trained with ``input_mode: fixed``, with the training pipeline's own
  ``pipeline.preprocess``; the batch is padded to its widest image (the model masks padding, so
  an image's result does not depend on its batch). Being the only input and a string, it takes TF Serving's REST form
  ``{"instances": [{"b64": "<base64 image>"}, ...]}``. JPEG and PNG sizes are read from the header,
  so each image is decoded once.
* ``predict_images``: ``images`` float32 [batch, 32, width, 3] in [-1, 1] and ``widths`` int32
  [batch] (valid width of each image) -> the same outputs.

``text`` is the CTC greedy decoding (best class per step, repeats merged, blanks dropped) and
``confidence`` the per-step geometric mean probability of that path (see ``ctc.greedy``).
The loaded object also carries ``characters`` (string variable, class index -> character) and
``blank_index``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Sequence

import tensorflow as tf

from .. import __version__, geometry
from ..choices import CHECKPOINTS, EXPORT_FORMATS, QUANTIZATIONS
from ..config import TrainConfig
from ..data.charset import Charset
from ..errors import SettingError, ShadownetError
from ..geometry import CHANNELS, HEIGHT, WIDTH_DOWNSAMPLE
from . import ctc, inference
from . import model as shadownet_model
from .export_layout import (  # noqa: F401  (SAVED_MODEL_FILE: the CLI's, from here)
    IMAGES_SIGNATURE,
    METADATA_FILE,
    SAVED_MODEL_FILE,
    SERVING_SIGNATURE,
    versions,
)
from .pipeline import preprocess  # the serving input; benchmarks/export.py takes it from here

METADATA_FORMAT = 1
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


# -- the graph ---------------------------------------------------------------------------------------


class ServingModule(tf.Module):
    """What is saved: the frozen model (``inference.freeze``), the charset and the two signature functions."""

    def __init__(self, forward, config: TrainConfig, charset: Charset, metadata_path: Path | None = None):
        super().__init__(name="shadownet")
        self.characters = tf.Variable(list(charset.characters), trainable=False, dtype=tf.string,
                                      name="characters")
        self.blank_index = tf.Variable(charset.blank_index, trainable=False, dtype=tf.int32, name="blank_index")
        if metadata_path is not None:
            self.metadata = tf.saved_model.Asset(str(metadata_path))
        blank, mode, max_width = charset.blank_index, config.input_mode, config.max_width

        # One function that both signatures call: the weights, constants of its graph, are saved once.
        @tf.function(input_signature=[tf.TensorSpec([None, HEIGHT, None, CHANNELS], tf.float32),
                                      tf.TensorSpec([None], tf.int32)])
        def recognize(images, widths):
            # A width past the image would count padding steps that do not exist in the confidence.
            widths = tf.clip_by_value(widths, 0, tf.shape(images)[2])

            def run():
                logits = forward(images, widths)
                ids, confidence = ctc.greedy(logits, shadownet_model.sequence_lengths(widths), blank)
                return ctc.to_text(ids, self.characters), confidence

            def nothing():  # the convolutions reject an empty batch
                return tf.zeros([0], tf.string), tf.zeros([0], tf.float32)

            text, confidence = tf.cond(tf.shape(images)[0] > 0, run, nothing)
            return {"text": text, "confidence": confidence}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
        def serve(image_bytes):
            images, widths = preprocess(image_bytes, mode, max_width)
            return recognize(images, widths)

        @tf.function(input_signature=[
            tf.TensorSpec([None, HEIGHT, None, CHANNELS], tf.float32, name="images"),
            tf.TensorSpec([None], tf.int32, name="widths"),
        ])
        def predict_images(images, widths):
            return recognize(images, widths)

        self.serve, self.predict_images = serve, predict_images

    def signatures(self) -> dict:
        return {SERVING_SIGNATURE: self.serve, IMAGES_SIGNATURE: self.predict_images}


def metadata(config: TrainConfig, charset: Charset, name: str, version: int, checkpoint: str,
             precision: str = "float32") -> dict:
    """The content of ``assets/shadownet.json``."""
    fixed = config.input_mode == "fixed"
    return {
        "format": "shadownet-savedmodel",
        "format_version": METADATA_FORMAT,
        "shadownet_version": __version__,
        "name": name,
        "version": version,
        "checkpoint": checkpoint,
        "precision": precision,
        "model": config.model,
        "config": config.to_dict(),
        "characters": "".join(charset.characters),
        "num_classes": charset.num_classes,
        "blank_index": charset.blank_index,
        "charset_sha256": charset.sha256,
        "input": {**geometry.describe(config.input_mode, config.max_width), "normalization": "pixel / 127.5 - 1 (RGB)"},
        "decoder": "ctc_greedy",
        "signatures": {
            SERVING_SIGNATURE: {
                "inputs": {"image_bytes": "string [batch]: encoded JPEG/PNG/GIF/BMP images, any size"},
                "outputs": {"text": "string [batch], UTF-8", "confidence": "float32 [batch] in [0, 1]"},
                "notes": (f"decoded, resized to {geometry.FIXED_WIDTH}x{HEIGHT}" if fixed else
                          f"decoded, resized to height {HEIGHT} keeping the aspect ratio (width clamped to "
                          f"[{geometry.MIN_WIDTH}, {config.max_width}])")
                         + ", padded to the widest of the batch, normalised to [-1, 1], recognised, greedy CTC "
                           "decoded. TF Serving REST: {\"instances\": [{\"b64\": \"<base64 image>\"}]}.",
            },
            IMAGES_SIGNATURE: {
                "inputs": {"images": f"float32 [batch, {HEIGHT}, width, {CHANNELS}] in [-1, 1], RGB",
                           "widths": "int32 [batch]: valid width of each image (the rest is padding)"},
                "outputs": {"text": "string [batch], UTF-8", "confidence": "float32 [batch] in [0, 1]"},
            },
        },
        "confidence": "geometric mean per time step of the greedy path's probability: "
                      f"exp(log p / (width // {WIDTH_DOWNSAMPLE}))",
    }


# -- export -----------------------------------------------------------------------------------------


def export(model_dir: Path, export_dir: Path, name: str = "shadownet", version: int | None = None,
           checkpoint: str = "best", precision: str = "float32", formats: Sequence[str] = ("savedmodel",),
           quantize: str = "none") -> Path:
    """Write the model of a training run as ``<export_dir>/<name>/<version>/``; returns that folder.

    ``precision="bfloat16"`` computes the SavedModel's convolutions in bfloat16 (see ``inference``): faster
    on CPUs with AMX and on recent GPUs, with near-identical outputs. ``formats``: ``savedmodel`` and/or
    ``onnx`` (``model.onnx`` in the same folder, always float32; ``quantize="int8"`` adds
    ``model.int8.onnx``; see ``onnx_model``).
    """
    from .run_dir import (
        load_model,  # keeps 'shadownet predict' free of the training imports
    )

    if checkpoint not in CHECKPOINTS:
        raise ShadownetError(f"checkpoint must be one of {', '.join(CHECKPOINTS)}, not {checkpoint!r}")
    if precision not in inference.PRECISIONS:
        raise ShadownetError(f"precision must be one of {', '.join(inference.PRECISIONS)}, not {precision!r}")
    formats = tuple(dict.fromkeys(formats))
    if not formats or any(f not in EXPORT_FORMATS for f in formats):
        raise SettingError("format", f"must be one or more of {', '.join(EXPORT_FORMATS)} (comma-separated), "
                                     f"not {','.join(formats)!r}")
    if quantize not in QUANTIZATIONS:
        raise SettingError("quantize", f"must be one of {', '.join(QUANTIZATIONS)}, not {quantize!r}")
    if quantize != "none" and "onnx" not in formats:
        raise SettingError("quantize", "applies to the ONNX export: add --format onnx")
    if not _NAME.match(name or ""):
        raise ShadownetError(f"model name {name!r}: use letters, digits, '_', '-' and '.' (not first)")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
        raise ShadownetError(f"version must be a whole number >= 1, not {version!r}")
    base = Path(export_dir) / name
    if version is None:
        version = max(versions(base), default=0) + 1
    final = base / str(version)
    if final.exists():
        raise ShadownetError(f"{final} already exists; versions are never overwritten (choose another --version)")

    model, config, charset = load_model(Path(model_dir), which=checkpoint)
    base.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{version}.", suffix=".partial", dir=base))
    try:
        source = staging / "meta" / METADATA_FILE
        source.parent.mkdir()
        meta = metadata(config, charset, name, version, checkpoint, precision)
        source.write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        saved = staging / "saved"
        if "savedmodel" in formats:
            module = ServingModule(inference.freeze(model, precision), config, charset, source)
            tf.saved_model.save(module, str(saved), signatures=module.signatures())
            if not (saved / "assets" / METADATA_FILE).is_file():  # Asset keeps the base name; make sure
                (saved / "assets").mkdir(exist_ok=True)
                shutil.copyfile(source, saved / "assets" / METADATA_FILE)
        if "onnx" in formats:
            from . import onnx_model

            onnx_model.write(inference.freeze(model, "float32"), dict(meta, precision="float32"), saved, quantize)
        if final.exists():  # another export took this version meanwhile
            raise ShadownetError(f"{final} already exists; versions are never overwritten")
        try:
            os.rename(saved, final)  # atomic: a server polling base/ sees all of it or nothing
        except OSError as exc:
            raise ShadownetError(f"{final}: cannot move the export into place ({exc.strerror})") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final

