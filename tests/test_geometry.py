"""The input geometry is one fact: the record writer, the training pipeline, an export's recorded description, its
graph's preprocessing and the server all give an image the same width; and the export and evaluate settings are
named as settings (the CLI names the flags)."""

from __future__ import annotations

import json
import time

import cv2
import numpy as np
import pytest
import tensorflow as tf

from shadownet import geometry
from shadownet.config import TrainConfig
from shadownet.data.charset import Charset
from shadownet.data.images import ImageGeometry
from shadownet.errors import SettingError
from shadownet.learn import evaluate, export, pipeline, run_dir
from shadownet.learn import model as shadownet_model
from shadownet.serve.model import MIN_SOURCE_HEIGHT, MIN_SOURCE_WIDTH, InstanceError, ServingModel

MAX_WIDTH = 64
# (width, height) of source images: clamped below and above, in range, already 32 high, and ties of the
# rounding (41 x 32 / 64 = 20.5 -> 20, 43 x 32 / 64 = 21.5 -> 22: half to even, as Python's round).
SIZES = [(5, 40), (10, 64), (30, 90), (100, 50), (41, 64), (43, 64), (45, 64), (77, 32), (60, 32), (130, 64),
         (300, 20), (12, 12), (200, 150)]
MODES = ("keep_ratio", "fixed")


def described_width(meta_input: dict, width: int, height: int) -> int:
    """The width a client computes from an export's recorded input description alone (no shadownet)."""
    if meta_input["mode"] == "fixed":
        return meta_input["width"]
    scaled = round(width * meta_input["height"] / height)
    return min(max(scaled, meta_input["min_width"]), meta_input["max_width"])


def png(width: int, height: int) -> bytes:
    pixels = np.random.default_rng(width * 1000 + height).integers(0, 256, (height, width, 3), dtype=np.uint8)
    ok, data = cv2.imencode(".png", pixels)
    assert ok
    return data.tobytes()


@pytest.fixture(scope="module")
def version_dirs(tmp_path_factory) -> dict[str, object]:
    """An untrained shadownet_small exported once per input mode (the widths do not depend on the weights)."""
    root = tmp_path_factory.mktemp("geometry")
    charset = Charset(tuple("abc"))
    found = {}
    for mode in MODES:
        model_dir = root / mode
        model_dir.mkdir()
        config = TrainConfig(model="shadownet_small", input_mode=mode, max_width=MAX_WIDTH)
        run_dir.write_run(model_dir, config, charset)
        model = shadownet_model.build(config.model, charset.num_classes)
        tf.train.CheckpointManager(tf.train.Checkpoint(model=model), model_dir / run_dir.CHECKPOINTS_DIR, 1).save(1)
        found[mode] = export.export(model_dir, root / "exports", name=mode)
    return found


def test_the_width_rule_in_python():
    assert geometry.input_width(100, 50, "keep_ratio", 800) == 64
    assert geometry.input_width(41, 64, "keep_ratio", 800) == 20  # half to even
    assert geometry.input_width(43, 64, "keep_ratio", 800) == 22
    assert geometry.input_width(1, 64, "keep_ratio", 800) == geometry.MIN_WIDTH == 8
    assert geometry.input_width(10_000, 32, "keep_ratio", 256) == 256
    assert geometry.input_width(300, 20, "fixed", 256) == geometry.FIXED_WIDTH == 100
    assert geometry.time_steps(100) == 25 and geometry.time_steps(tf.constant([8, 13])).numpy().tolist() == [2, 3]


@pytest.mark.parametrize("mode", MODES)
def test_every_stage_gives_an_image_the_same_width(mode, version_dirs):
    meta = json.loads((version_dirs[mode] / "assets" / export.METADATA_FILE).read_text())
    assert meta["input"] == {**geometry.describe(mode, MAX_WIDTH), "normalization": "pixel / 127.5 - 1 (RGB)"}
    expected = [described_width(meta["input"], w, h) for w, h in SIZES]
    assert expected[:7] == ([8, 8, 11, 64, 20, 22, 22] if mode == "keep_ratio" else [100] * 7)

    # The record writer (data/, no TensorFlow).
    writer = ImageGeometry(mode=mode, max_width=MAX_WIDTH)
    assert [writer.target_width(w, h) for w, h in SIZES] == expected
    # The graph's rule on sizes, and the serving signature's preprocessing of encoded images.
    sizes = tf.constant([[h, w] for w, h in SIZES])
    assert pipeline.input_widths(sizes, mode, MAX_WIDTH).numpy().tolist() == expected
    images, widths = pipeline.preprocess(tf.constant([png(w, h) for w, h in SIZES]), mode, MAX_WIDTH)
    assert widths.numpy().tolist() == expected and images.shape[1:] == (geometry.HEIGHT, max(expected), 3)
    # Training reads records the writer made with a wider max_width, clamped again to its own.
    stored = [ImageGeometry(mode=mode, max_width=800).target_width(w, h) for w, h in SIZES]
    assert pipeline.target_widths(tf.constant(stored), mode, MAX_WIDTH).numpy().tolist() == expected

    # The server: each image prepared on its own; in keep_ratio mode one wider than the model reads is refused.
    server = ServingModel(version_dirs[mode])
    for (w, h), width in zip(SIZES, expected, strict=True):
        too_wide = mode == "keep_ratio" and geometry.scaled_width(w, h) > MAX_WIDTH
        if too_wide or w < MIN_SOURCE_WIDTH or h < MIN_SOURCE_HEIGHT:
            with pytest.raises(InstanceError, match="too wide" if too_wide else "too small"):
                server.prepare(png(w, h), time.monotonic)
            continue
        assert server.prepare(png(w, h), time.monotonic).pixels.shape == (geometry.HEIGHT, width, 3), (w, h)


def test_export_and_evaluate_name_settings(tmp_path):
    cases = [({"formats": ("onnx", "tflite")}, "format", "--format must be one or more of savedmodel, onnx"),
             ({"quantize": "int4"}, "quantize", "--quantize must be one of none, int8, not 'int4'"),
             ({"quantize": "int8"}, "quantize", "--quantize applies to the ONNX export: add --format onnx")]
    for kwargs, setting, message in cases:
        with pytest.raises(SettingError) as caught:
            export.export(tmp_path / "run", tmp_path / "exports", **kwargs)
        assert caught.value.setting == setting and caught.value.flag_message().startswith(message)
        assert not str(caught.value).startswith("--")
    with pytest.raises(SettingError) as caught:
        evaluate.evaluate(evaluate.EvalConfig(tmp_path / "records", tmp_path / "run", decoder="best"))
    assert caught.value.flag_message() == "--decoder must be one of greedy, beam, not 'best'"
