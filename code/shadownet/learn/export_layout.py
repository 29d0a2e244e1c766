"""What an export holds, by name, and its versions: what the exporter writes and ``predict``, the server and
the CLI read. No TensorFlow.

TF Serving's layout (it polls ``<export_dir>/<name>/`` for integer version folders)::

    <export_dir>/<name>/<version>/saved_model.pb
                                  variables/
                                  assets/shadownet.json   resolved config, charset, signature notes
                                  model.onnx              export --format onnx
                                  model.int8.onnx         export --format onnx --quantize int8
"""

from __future__ import annotations

from pathlib import Path

SAVED_MODEL_FILE = "saved_model.pb"
METADATA_FILE = "shadownet.json"  # under assets/
ONNX_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
ONNX_METADATA_KEY = "shadownet"  # the ONNX model's metadata_props key holding the export's description
SERVING_SIGNATURE = "serving_default"
IMAGES_SIGNATURE = "predict_images"


def versions(base: Path) -> list[int]:
    """Integer version folders under ``base`` (what TF Serving would load)."""
    if not Path(base).is_dir():
        return []
    return sorted(int(p.name) for p in Path(base).iterdir() if p.is_dir() and p.name.isdigit())
