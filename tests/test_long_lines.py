"""Long lines: labels with spaces and punctuation, the CTC-length check at the real input width, and the
evaluation figures that suit whole lines (exact line, ignoring case and spaces, CER)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from conftest import Dataset, run_cli
from shadownet import geometry
from shadownet.data.annotations import LineError, Sample
from shadownet.data.charset import Charset
from shadownet.data.images import ImageGeometry
from shadownet.data.validate import LabelPolicy, check_image
from shadownet.learn.metrics import Prediction, loose, summarize

LOOSE = "word_accuracy_ignoring_case_and_spaces"
# The headline figures `shadownet evaluate` prints, in this order.
PRINTED = ("num_samples", "word_accuracy", "word_accuracy_case_insensitive", "char_error_rate",
           "normalized_edit_distance", LOOSE)


# -- the report's accuracies on whole lines ------------------------------------------------------------------


def test_loose_form_lowercases_and_drops_every_whitespace():
    assert loose("Total: $12.50") == "total:$12.50"
    assert loose(" A\tb\u00a0C \n") == "abc"  # tabs, newlines and no-break spaces are whitespace too
    assert loose("") == ""


def test_ignoring_case_and_spaces_counts_what_the_stricter_accuracies_do_not():
    summary = summarize([Prediction("a", "Total: $12.50", "total:$12.50", 0.5)])
    assert summary["word_accuracy"] == 0.0
    assert summary["word_accuracy_case_insensitive"] == 0.0
    assert summary[LOOSE] == 1.0
    assert summary["char_error_rate"] == round(2 / 13, 6)  # 'T' -> 't' and the space dropped


def test_each_accuracy_on_hand_made_lines():
    predictions = [
        Prediction("a", "Mr. O'Neil (AB-12)", "Mr. O'Neil (AB-12)", 0.9),  # exact: all three
        Prediction("b", "7 Mar 2024, 14:05!", "7 MAR 2024, 14:05!", 0.8),  # case only: two
        Prediction("c", "Total: $12.50", "total:$12.50", 0.7),  # case and a space: one
        Prediction("d", "a  b", "ab", 0.6),  # two spaces: one
        Prediction("e", "12.50", "12,50", 0.5),  # punctuation counts everywhere: none
        Prediction("f", "x y", "xy.", 0.4),  # none
    ]
    summary = summarize(predictions)
    assert summary["num_correct"] == 1
    assert summary["word_accuracy"] == round(1 / 6, 6)
    assert summary["word_accuracy_case_insensitive"] == round(2 / 6, 6)
    assert summary[LOOSE] == round(4 / 6, 6)
    # Edit distances 0 + 2 + 2 + 2 + 1 + 2 over 18 + 18 + 13 + 4 + 5 + 3 truth characters.
    assert summary["char_error_rate"] == round(9 / 61, 6)
    # The report keeps its keys and puts the new one beside the other accuracies.
    keys = list(summary)
    assert keys.index(LOOSE) == keys.index("word_accuracy_case_insensitive") + 1
    assert summarize([])[LOOSE] == 0.0


def test_evaluate_prints_the_new_figure_after_the_existing_ones(monkeypatch, tmp_path, capsys):
    from shadownet import cli
    from shadownet.learn import evaluate as evaluate_module

    figures = {"num_samples": 3, "num_correct": 1, "word_accuracy": 0.333333,
               "word_accuracy_case_insensitive": 0.666667, LOOSE: 1.0, "char_error_rate": 0.1,
               "normalized_edit_distance": 0.05, "mean_confidence": 0.5, "worst_examples": []}
    monkeypatch.setattr(evaluate_module, "evaluate", lambda config: figures)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")  # cli.main sets it where unset
    assert cli.main(["evaluate", "--tfrecords-dir", str(tmp_path), "--model-dir", str(tmp_path)]) == 0
    line = capsys.readouterr().out.strip()
    assert line == " ".join(f"{key}={figures[key]}" for key in PRINTED)


# -- the CTC-length check at the width the model gets ---------------------------------------------------------


class _Reader:
    def __init__(self, data: bytes):
        self.data = data

    def image(self, sample):
        return self.data


def _png(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", image)[1].tobytes()


def _blank(height: int, width: int) -> np.ndarray:
    return np.full((height, width, 3), 230, np.uint8)


def _check(label: str, image: np.ndarray, max_width: int) -> None:
    policy = LabelPolicy.resolve(Charset.from_preset("ascii95"), "keep", ImageGeometry(max_width=max_width))
    ids = policy.charset.encode(label)
    check_image(_Reader(_png(image)), Sample("Train/sample.txt", 1, "a.png", label), ids, label, policy)


def test_a_wide_image_is_checked_at_max_width_not_at_its_own_width():
    label = "Total: $12.50 (AB-1)"  # 20 characters, no adjacent repeats: 20 CTC time steps
    wide = _blank(32, 400)  # 100 time steps at its own width, clamped to 64 px (16 steps) by --max-width 64
    assert geometry.input_width(400, 32, "keep_ratio", 64) == 64
    _check(label, wide, max_width=800)  # at 400 px it fits
    with pytest.raises(LineError, match=r"needs 20 CTC time steps but an image 64 px wide gives 16") as caught:
        _check(label, wide, max_width=64)
    assert caught.value.code == "label_too_long"


def test_a_tall_image_is_checked_at_its_scaled_width_not_its_source_width():
    label = "7 Mar 2024, 14:05! Mr. O'Neil"  # 29 characters, no adjacent repeats
    tall = _blank(64, 160)  # 40 time steps at its source width; scaled to 32 px high it is 80 px: 20 steps
    assert geometry.input_width(160, 64, "keep_ratio", 800) == 80
    with pytest.raises(LineError, match=r"needs 29 CTC time steps but an image 80 px wide gives 20"):
        _check(label, tall, max_width=800)
    _check(label, _blank(64, 240), max_width=800)  # 120 px: 30 steps, it fits


def test_validate_names_the_line_of_a_label_too_long_for_the_real_width(tmp_path):
    ds = Dataset(tmp_path / "ds", Charset.from_preset("ascii95"))
    ds.sample("Train", "ok.jpg", "fine")
    (ds.root / "tall.png").write_bytes(_png(_blank(64, 160)))
    ds.add("Train", "/tall.png 7 Mar 2024, 14:05! Mr. O'Neil")
    (ds.root / "wide.png").write_bytes(_png(_blank(32, 400)))
    ds.add("Train", "/wide.png Total: $12.50 (AB-1)")
    ds.sample("Test", "t.jpg", "ok")
    ds.write()
    wide_ok = run_cli("validate", "--dataset-dir", ds.root, "--case", "keep", "--report", tmp_path / "a.json")
    assert wide_ok.returncode == 1 and "Traceback" not in wide_ok.stderr
    assert "Train/sample.txt:2: label \"7 Mar 2024, 14:05! Mr. O'Neil\" needs 29" in wide_ok.stderr
    assert "an image 80 px wide gives 20" in wide_ok.stderr
    problems = json.loads((tmp_path / "a.json").read_text())["problems"]
    assert [(p["line"], p["code"]) for p in problems] == [(2, "label_too_long")]

    narrow = run_cli("validate", "--dataset-dir", ds.root, "--case", "keep", "--max-width", "64",
                     "--report", tmp_path / "b.json")
    assert narrow.returncode == 1 and "Traceback" not in narrow.stderr
    problems = json.loads((tmp_path / "b.json").read_text())["problems"]
    assert [(p["line"], p["code"]) for p in problems] == [(2, "label_too_long"), (3, "label_too_long")]
    assert "an image 64 px wide gives 16" in problems[1]["message"]


# -- a label with spaces and punctuation, unchanged from the annotation file to the export -------------------------

TRAIN_LABELS = [
    "Total: $12.50",
    "Mr. O'Neil (AB-12)",
    "7 Mar 2024, 14:05!",
    'He said "no" & left.',
    r"C:\tmp\a_b.txt",
    "{x|y} ~#%*+=<>?@[]^`/;",
    "Qty:  3 x 4.99",  # two spaces in a row
    " leading and trailing ",
]
TEST_LABELS = ["Re: 50% off?", "(1/2) - end.", "a, b; c: d!", "[OK] #42 @ 09:30"]


def _decode(charset: Charset, ids) -> str:
    return "".join(charset.characters[int(i)] for i in ids)


@pytest.mark.slow
def test_labels_with_spaces_and_punctuation_reach_records_batches_evaluation_and_export_unchanged(tmp_path):
    import tensorflow as tf

    from shadownet.config import TrainConfig
    from shadownet.learn import pipeline, read_records

    root = tmp_path / "ds"
    run_cli("charset", "preset", "ascii95", "--out", root, check=True)
    charset = Charset.load(root)
    assert charset == Charset.from_preset("ascii95")
    ds = Dataset(root, charset)
    labels = {}
    for split, split_labels in (("Train", TRAIN_LABELS), ("Test", TEST_LABELS)):
        for i, label in enumerate(split_labels):
            rel = f"img/{split}{i}.jpg"
            ds.image(rel, label, height=32 + 4 * i)
            ds.add(split, f"/{rel} {label}")
            labels[rel] = label
    ds.write()
    records = tmp_path / "records"
    run_cli("tfrecords", "--dataset-dir", root, "--save-dir", records, "--validation-ratio", "0", "--workers", "1",
            check=True)
    assert read_records.charset_of(read_records.read_manifest(records)) == charset

    # The records: the label text and the ids, byte for byte; each image at the width validation checked.
    for split, expected in (("train", TRAIN_LABELS), ("test", TEST_LABELS)):
        found = {}
        for example in read_records.load_split(records, split):
            source = example["source"].numpy().decode("utf-8")
            found[source] = example["text"].numpy().decode("utf-8")
            assert _decode(charset, example["label"].numpy()).encode() == labels[source].encode()
            assert int(example["label_length"]) == len(labels[source])
            image = cv2.imdecode(np.frombuffer((root / source).read_bytes(), np.uint8), cv2.IMREAD_COLOR)
            assert int(example["width"]) == geometry.input_width(image.shape[1], image.shape[0], "keep_ratio", 800)
        assert {s: t.encode() for s, t in found.items()} == {s: labels[s].encode() for s in found}
        assert sorted(found.values()) == sorted(expected)

    # The batches evaluation reads.
    config = TrainConfig(model="shadownet_small", batch_size=4)
    seen = {}
    for _inputs, targets in pipeline.eval_dataset(records, "test", config):
        for ids, length, text, source in zip(targets["label"].numpy(), targets["label_length"].numpy(),
                                             targets["text"].numpy(), targets["source"].numpy(), strict=True):
            seen[source.decode()] = (_decode(charset, ids[:length]), text.decode("utf-8"))
    assert seen == {rel: (label, label) for rel, label in labels.items() if rel.startswith("img/Test")}

    # A few training steps, then the evaluation report's truths.
    model_dir, report = tmp_path / "model", tmp_path / "report.json"
    (tmp_path / "c.yaml").write_text("model: shadownet_small\nbatch_size: 4\neval_every: 3\nlog_every: 1\n"
                                     "checkpoint_every: 3\nshuffle_buffer: 16\n")
    run_cli("train", "--tfrecords-dir", records, "--model-dir", model_dir, "--config", tmp_path / "c.yaml",
            "--train-steps", "3", "--warmup_steps", "1", check=True)
    evaluated = run_cli("evaluate", "--tfrecords-dir", records, "--model-dir", model_dir, "--report", report,
                        "--worst", "100", check=True)
    result = json.loads(report.read_text(encoding="utf-8"))
    assert evaluated.stdout.strip() == " ".join(f"{key}={result[key]}" for key in PRINTED)
    assert result["num_samples"] == len(TEST_LABELS)
    worst = result["worst_examples"]
    assert len(worst) == result["num_samples"] - result["num_correct"]
    for example in worst:
        assert example["truth"].encode() == labels[example["source"]].encode()
        assert set(example["prediction"]) <= set(charset.characters)

    # The export carries the same charset, space and punctuation included.
    run_cli("export", "--model-dir", model_dir, "--export-dir", tmp_path / "export", check=True)
    version = tmp_path / "export" / "shadownet" / "1"
    meta = json.loads((version / "assets" / "shadownet.json").read_text(encoding="utf-8"))
    assert meta["characters"] == "".join(charset.characters) == "".join(map(chr, range(32, 127)))
    assert {" ", "$", ":", ".", "'", "(", ")", "-", ",", "!", '"', "\\"} <= set(meta["characters"])
    assert (meta["num_classes"], meta["blank_index"]) == (96, 95)
    served = tf.saved_model.load(str(version)).signatures["serving_default"](
        image_bytes=tf.constant([(root / "img/Test0.jpg").read_bytes()]))
    assert set(served["text"].numpy()[0].decode("utf-8")) <= set(charset.characters)


# -- the pretraining recipe (make pretrain) --------------------------------------------------------------------


@pytest.mark.slow
def test_make_pretrain_runs_the_recipe_and_a_rerun_resumes(tmp_path):
    """`make pretrain` at a small scale (48 lines in DejaVu Sans, 3 steps): sentences, records, the run with
    configs/pretrain.yaml's settings, its evaluation; a second call skips what is there and resumes."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    repo, venv = Path(__file__).resolve().parents[1], Path(sys.executable).parent.parent
    font = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
    if not font.is_file() or not (venv / ".installed").is_file():
        pytest.skip("needs DejaVu Sans and this venv made by `make venv`")
    fonts = tmp_path / "fonts"
    fonts.mkdir()
    shutil.copy(font, fonts)
    out = tmp_path / "pretrain"
    command = ["make", "--no-print-directory", "-C", str(repo), "pretrain", f"VENV={venv}", f"PRETRAIN_DIR={out}",
               "PRETRAIN_COUNT=48", f"PRETRAIN_FONT_DIRS={fonts}",
               "PRETRAIN_ARGS=--train-steps 3 --max-train-seconds 0 --eval-every 3 --checkpoint-every 3"]
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}
    first = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    lines = (out / "data" / "Train" / "sample.txt").read_text(encoding="utf-8").splitlines()
    assert len(lines) + len((out / "data" / "Test" / "sample.txt").read_text().splitlines()) == 48
    assert any(" " in line.partition(" ")[2] for line in lines)  # whole lines, spaces kept
    config = json.loads((out / "model" / "config.json").read_text())
    assert (config["max_width"], config["batch_size"], config["train_steps"]) == (800, 32, 3)
    assert config["regularization_plan"]["name"] in ("none", "light", "medium", "strong")
    report = json.loads((out / "evaluation-test.json").read_text())
    assert report["num_samples"] == 5 and report["split"] == "test"  # round(48 x 0.1) test lines
    made = {path: path.stat().st_mtime_ns for path in (out / "data" / "Train" / "sample.txt",
                                                       out / "records" / "manifest.json")}
    second = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert {path: path.stat().st_mtime_ns for path in made} == made  # the lines and the records were there
    assert "already trained: step 3 of 3" in second.stdout + second.stderr
