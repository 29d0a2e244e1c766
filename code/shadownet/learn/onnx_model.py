"""``export --format onnx``: the frozen inference function as ``NAME/VERSION/model.onnx``.

The graph is ``inference.freeze``'s, converted by tf2onnx, so it is the SavedModel's own computation:

* inputs ``images`` float32 [N, 32, W, 3] (NHWC, RGB, ``pixel / 127.5 - 1``; N and W dynamic) and
  ``widths`` int32 [N] (each image's valid width; the rest of the row is padding);
* outputs ``logits`` float32 [N, W // 4, classes] (per-step class scores), ``ids`` int32 [N, W // 4]
  (the best class per step: greedy CTC before merging repeats and dropping blanks) and ``lengths``
  int32 [N] (valid steps of each image, ``widths // 4``).

The model's metadata (``metadata_props``) makes it self-describing: ``shadownet`` holds the export's
whole JSON description (the SavedModel's ``assets/shadownet.json``), and the keys a client needs are
also there one by one: ``characters`` (a JSON list: class index -> character), ``blank_index``,
``input_height``, ``input_channels``, ``input_layout``, ``normalization``, ``input_mode``, ``min_width``,
``max_width``, ``width_downsample``, ``shadownet_version``, ``model_version`` and ``config_sha256``.

``--quantize int8`` also writes ``model.int8.onnx``: onnxruntime's dynamic quantisation (int8 weights of
the matrix products and LSTMs, activations quantised at run time), with the same metadata.

``predict.OnnxPredictor`` reads it back.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import tensorflow as tf

from ..geometry import CHANNELS, HEIGHT, time_steps
from .export_layout import INT8_FILE, ONNX_FILE, ONNX_METADATA_KEY

# The newest opset tf2onnx writes well and every onnxruntime since 1.14 runs.
OPSET = 17


def config_sha256(config_dict: dict) -> str:
    return hashlib.sha256(json.dumps(config_dict, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def metadata_props(meta: dict) -> dict[str, str]:
    """The model's metadata: the whole description under ``shadownet``, and each key a client needs."""
    source = meta["input"]
    props = {
        ONNX_METADATA_KEY: json.dumps(dict(meta, format="shadownet-onnx"), ensure_ascii=False),
        "characters": json.dumps(list(meta["characters"]), ensure_ascii=False),
        "blank_index": str(meta["blank_index"]),
        "input_height": str(source["height"]),
        "input_channels": str(source["channels"]),
        "input_layout": "NHWC",
        "normalization": source["normalization"],
        "input_mode": source["mode"],
        "min_width": str(source.get("min_width", source.get("width"))),
        "max_width": str(source.get("max_width", source.get("width"))),
        "width_downsample": str(source["width_downsample"]),
        "shadownet_version": meta["shadownet_version"],
        "model_version": str(meta["version"]),
        "config_sha256": config_sha256(meta["config"]),
    }
    return props


def write(forward, meta: dict, folder: Path, quantize: str = "none") -> list[Path]:
    """Convert ``forward`` (``inference.freeze``'s) and write ``folder/model.onnx`` (and the int8 one)."""
    import onnx
    import tf2onnx

    @tf.function(input_signature=[tf.TensorSpec([None, HEIGHT, None, CHANNELS], tf.float32, name="images"),
                                  tf.TensorSpec([None], tf.int32, name="widths")])
    def recognize(images, widths):
        widths = tf.clip_by_value(widths, 0, tf.shape(images)[2])
        logits = forward(images, widths)
        return {"logits": tf.identity(logits, name="logits"),
                "ids": tf.argmax(logits, -1, output_type=tf.int32, name="ids"),
                "lengths": tf.identity(time_steps(widths), name="lengths")}

    proto, _ = tf2onnx.convert.from_function(recognize, input_signature=recognize.input_signature, opset=OPSET)
    proto.doc_string = f"shadownet {meta['model']} text recogniser; see the metadata key {ONNX_METADATA_KEY!r}"
    _set_metadata(proto, metadata_props(meta))
    onnx.checker.check_model(proto)
    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / ONNX_FILE]
    onnx.save(proto, str(written[0]))
    if quantize == "int8":
        written.append(_quantize(written[0], folder / INT8_FILE, metadata_props(meta)))
    return written


def _set_metadata(proto, props: dict[str, str]) -> None:
    del proto.metadata_props[:]
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def _quantize(source: Path, target: Path, props: dict[str, str]) -> Path:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.disable(logging.WARNING)  # its advice to pre-process first is for static quantisation
    try:
        # 7-bit weights: on x86 CPUs without VNNI (AVX2 only), onnxruntime's u8 x s8 products saturate at full
        # range (measured on the lively test model: 8 % of texts as the float model reads them, 35 % with this).
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, reduce_range=True)
    finally:
        logging.disable(logging.NOTSET)
    proto = onnx.load(str(target))
    _set_metadata(proto, dict(props, quantization="int8 dynamic (onnxruntime)"))
    onnx.save(proto, str(target))
    return target
