"""ONNX export: parity with the Keras model and the frozen graph, self-describing metadata, int8, bad files."""

from __future__ import annotations

import json

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import tensorflow as tf

from conftest import run_cli
from shadownet.errors import DataError, ShadownetError
from shadownet.learn import export, inference, onnx_model, predict
from shadownet.learn import model as shadownet_model
from shadownet.learn.metrics import edit_distance
from test_export import odd_images, record_images, serve, trained_model

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def onnx_export(lively_dir, trained_dir):
    """The lively run exported as SavedModel + ONNX (+ int8) in one version folder."""
    root = trained_dir.parent / "onnx-exports"
    return export.export(lively_dir, root, name="lively", formats=("savedmodel", "onnx"), quantize="int8")


def batch_of_widths(images: list[bytes], predictor) -> tuple[np.ndarray, np.ndarray]:
    pixels, widths = predictor._preprocess(tf.constant(images))
    return pixels.numpy(), widths.numpy()


def test_layout_and_self_describing_metadata(onnx_export, lively_dir):
    assert {p.name for p in onnx_export.iterdir()} >= {"saved_model.pb", "model.onnx", "model.int8.onnx"}
    proto = onnx.load(str(onnx_export / "model.onnx"))
    onnx.checker.check_model(proto)
    assert {o.domain or "ai.onnx": o.version for o in proto.opset_import}["ai.onnx"] == onnx_model.OPSET
    props = {p.key: p.value for p in proto.metadata_props}
    _, config, charset = trained_model(lively_dir)
    assert json.loads(props["characters"]) == list(charset.characters)
    assert int(props["blank_index"]) == charset.blank_index == len(charset.characters)
    assert (props["input_height"], props["input_channels"], props["input_layout"]) == ("32", "3", "NHWC")
    assert props["normalization"] == "pixel / 127.5 - 1 (RGB)"
    assert (props["input_mode"], props["max_width"]) == (config.input_mode, str(config.max_width))
    assert props["config_sha256"] == onnx_model.config_sha256(config.to_dict())
    assert props["model_version"] == "1"
    full = json.loads(props["shadownet"])
    assert full["format"] == "shadownet-onnx" and full["characters"] == "".join(charset.characters)
    # A plain onnxruntime session (no shadownet) reads the same, with dynamic batch and width.
    session = ort.InferenceSession(str(onnx_export / "model.onnx"), providers=["CPUExecutionProvider"])
    assert json.loads(session.get_modelmeta().custom_metadata_map["characters"]) == list(charset.characters)
    shapes = {i.name: i.shape for i in session.get_inputs()}
    assert shapes["images"][1:] == [32, shapes["images"][2], 3] and isinstance(shapes["images"][0], str)
    assert isinstance(shapes["images"][2], str)  # the width is dynamic
    assert {o.name for o in session.get_outputs()} == {"logits", "ids", "lengths"}


def test_scores_match_keras_and_frozen_graph(onnx_export, export_records, lively_dir):
    model, _, _ = trained_model(lively_dir)
    forward = tf.function(inference.freeze(model))
    predictor = predict.load(onnx_export / "model.onnx")
    images = record_images(export_records, "test")[1] + odd_images()
    pixels, widths = batch_of_widths(images, predictor)
    assert len(set(widths.tolist())) >= 4  # a batch of different widths
    out = predictor.scores(pixels, widths)
    keras_logits = model({"image": pixels, "width": widths}, training=False).numpy()
    frozen_logits = forward(pixels, widths).numpy()
    lengths = shadownet_model.sequence_lengths(widths).numpy()
    assert out["lengths"].tolist() == lengths.tolist()
    for i, steps in enumerate(lengths):  # valid steps only: padding steps are nobody's output
        np.testing.assert_allclose(out["logits"][i, :steps], keras_logits[i, :steps], atol=TOLERANCE, rtol=0)
        np.testing.assert_allclose(out["logits"][i, :steps], frozen_logits[i, :steps], atol=TOLERANCE, rtol=0)
        assert (out["ids"][i, :steps] == frozen_logits[i, :steps].argmax(-1)).all()
        # Each image alone, at its own width, gives what it gave in the padded batch.
        alone = predictor.scores(pixels[i : i + 1, :, : widths[i]], widths[i : i + 1])
        np.testing.assert_allclose(alone["logits"][0, :steps], out["logits"][i, :steps], atol=TOLERANCE, rtol=0)


def test_texts_equal_the_savedmodel(onnx_export, export_records):
    images = record_images(export_records, "train")[1] + record_images(export_records, "test")[1] + odd_images()
    texts, confidences = serve(onnx_export, images)
    assert len(set(texts)) >= 5  # a lively model: the comparison is not between empty strings
    results = predict.load(onnx_export / "model.onnx").predict(images, batch_size=7)
    assert [r["text"] for r in results] == texts
    np.testing.assert_allclose([r["confidence"] for r in results], confidences, atol=TOLERANCE, rtol=0)
    one_by_one = [predict.load(onnx_export / "model.onnx").predict([image])[0]["text"] for image in images[:6]]
    assert one_by_one == texts[:6]


def test_int8_agrees_on_most_texts(onnx_export, export_records):
    images = record_images(export_records, "train")[1] + record_images(export_records, "test")[1]
    reference = [r["text"] for r in predict.load(onnx_export / "model.onnx").predict(images)]
    int8 = predict.load(onnx_export / "model.int8.onnx")
    assert int8.metadata["characters"] and "int8" in int8.session.get_modelmeta().custom_metadata_map[
        "quantization"]
    texts = [r["text"] for r in int8.predict(images)]
    # The lively model's huge random output weights make near-ties everywhere, the worst case for int8
    # rounding; a broken quantised graph would share almost no text. Measured: 44-51 % of texts equal and 12 %
    # of characters different on the earlier CI machine (AVX512); 35 % and 21 % on a 2-core AVX2-only EPYC,
    # where without reduce_range (onnxruntime's U8S8 products saturate on AVX2 without VNNI) only 8 % were
    # equal and 46 % of characters differed. benchmarks/export.py measures a trained model: 99.9 % agree.
    agreement = np.mean([a == b for a, b in zip(texts, reference, strict=True)])
    errors = sum(edit_distance(a, b) for a, b in zip(texts, reference, strict=True)) / sum(map(len, reference))
    assert agreement >= 0.2 and errors <= 0.35, (agreement, errors, texts, reference)
    assert (onnx_export / "model.int8.onnx").stat().st_size < 0.5 * (onnx_export / "model.onnx").stat().st_size


def test_onnx_only_export_and_predict_cli(lively_dir, tmp_path, export_records):
    done = run_cli("export", "--model-dir", lively_dir, "--export-dir", tmp_path, "--format", "onnx", check=True)
    version = tmp_path / "shadownet" / "1"
    assert done.stdout.strip() == f"exported {version}"
    assert sorted(p.name for p in version.iterdir()) == ["model.onnx"]
    image = tmp_path / "a.png"
    image.write_bytes(odd_images()[0])
    by_file = run_cli("predict", "--model", version / "model.onnx", image, "--json", check=True)
    by_folder = run_cli("predict", "--model", version, image, "--json", check=True)
    assert json.loads(by_file.stdout)["text"] == json.loads(by_folder.stdout)["text"]
    refused = run_cli("export", "--model-dir", lively_dir, "--export-dir", tmp_path, "--quantize", "int8")
    assert refused.returncode == 2 and "add --format onnx" in refused.stderr
    unknown = run_cli("export", "--model-dir", lively_dir, "--export-dir", tmp_path, "--format", "onnx,tflite")
    assert unknown.returncode == 2 and "choose from savedmodel, onnx" in unknown.stderr
    assert sorted(p.name for p in (tmp_path / "shadownet").iterdir()) == ["1"]


def test_bad_onnx_files(tmp_path, onnx_export):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07this is not a protobuf" * 10)
    with pytest.raises(DataError, match="not a loadable ONNX model"):
        predict.load(corrupt)
    foreign = tmp_path / "foreign.onnx"
    proto = onnx.load(str(onnx_export / "model.onnx"))
    del proto.metadata_props[:]
    onnx.save(proto, str(foreign))
    with pytest.raises(DataError, match="without shadownet's metadata"):
        predict.load(foreign)
    with pytest.raises(ShadownetError, match="no such ONNX model"):
        predict.load(tmp_path / "missing.onnx")
    image = tmp_path / "a.png"
    image.write_bytes(odd_images()[0])
    for path, message in ((corrupt, "not a loadable ONNX model"), (foreign, "without shadownet's metadata")):
        done = run_cli("predict", "--model", path, image)
        assert done.returncode == 1, done.stderr
        errors = [line for line in done.stderr.splitlines() if line.startswith("shadownet: error")]
        assert len(errors) == 1 and message in errors[0] and str(path) in errors[0], done.stderr
        assert "Traceback" not in done.stderr
    not_image = tmp_path / "b.png"
    not_image.write_bytes(b"plain text")
    done = run_cli("predict", "--model", onnx_export / "model.onnx", image, not_image)
    assert done.returncode == 1 and f"{not_image}: not a decodable image" in done.stderr


PLAIN_CLIENT = '''
import json, sys
import cv2, numpy as np, onnxruntime as ort
assert "tensorflow" not in sys.modules and "shadownet" not in sys.modules
session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
meta = session.get_modelmeta().custom_metadata_map
characters, blank = json.loads(meta["characters"]), int(meta["blank_index"])
height, lo, hi = int(meta["input_height"]), int(meta["min_width"]), int(meta["max_width"])
assert meta["input_layout"] == "NHWC" and meta["normalization"] == "pixel / 127.5 - 1 (RGB)"
for path in sys.argv[2:]:
    image = cv2.cvtColor(cv2.imread(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    width = min(max(round(image.shape[1] * height / image.shape[0]), lo), hi)
    if image.shape[:2] != (height, width):
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    x = (image.astype(np.float32) / 127.5 - 1.0)[None]
    ids, lengths = session.run(["ids", "lengths"], {"images": x, "widths": np.array([width], np.int32)})
    best, text, previous = ids[0, : lengths[0]], [], -1
    for i in best.tolist():
        if i != previous and i != blank:
            text.append(characters[i])
        previous = i
    print(json.dumps("".join(text)))
'''


def test_a_plain_onnxruntime_client_reads_what_the_savedmodel_reads(onnx_export, export_records, tmp_path):
    """The metadata suffice: numpy, OpenCV and onnxruntime alone (no TensorFlow, no shadownet) give the texts."""
    import subprocess
    import sys

    _, images = record_images(export_records, "test")
    paths = []
    for i, data in enumerate(images):  # stored at height 32; PNG so that both decoders see the same pixels
        path = tmp_path / f"{i}.png"
        path.write_bytes(cv2.imencode(".png", cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))[1])
        paths.append(path)
    texts, _ = serve(onnx_export, [p.read_bytes() for p in paths])
    assert len(set(texts)) >= 3
    script = tmp_path / "client.py"
    script.write_text(PLAIN_CLIENT)
    done = subprocess.run([sys.executable, str(script), str(onnx_export / "model.onnx"), *map(str, paths)],
                          capture_output=True, text=True, check=True)
    assert [json.loads(line) for line in done.stdout.splitlines()] == texts
