"""Each validation rule, under both policies, through the real command."""

import json

import cv2
import pytest

from conftest import Dataset, run_cli, text_image

# rule -> (how to break one Train sample, problem code)
BROKEN = {
    "unknown_character": lambda ds: ds.sample("Train", "bad/u.jpg", "naïve"),
    "empty_label": lambda ds: (ds.image("bad/e.jpg"), ds.add("Train", "/bad/e.jpg ")),
    "malformed_line": lambda ds: ds.add("Train", "/bad/nolabel.jpg"),
    "invalid_utf8": lambda ds: ds.add("Train", "bad/latin1.jpg cafLATIN1"),
    "path_outside_dataset": lambda ds: ds.add("Train", "../outside.jpg abc"),
    "image_missing": lambda ds: ds.add("Train", "/bad/missing.jpg abc"),
    "image_unreadable": lambda ds: ((ds.root / "bad" / "dir.jpg").mkdir(parents=True),
                                    ds.add("Train", "bad/dir.jpg abc")),
    "image_corrupt": lambda ds: (_write(ds, "bad/noise.jpg", b"this is not an image"),
                                 ds.add("Train", "bad/noise.jpg abc")),
    "truncated": lambda ds: (_truncated(ds, "bad/cut.jpg"), ds.add("Train", "bad/cut.jpg abc")),
    "duplicate": lambda ds: ds.add("Train", "/img/0.jpg other"),
    "duplicate_across_splits": lambda ds: ds.add("Test", "img/1.jpg again"),
    # A 12-character label cannot fit an image 24 px wide (6 CTC time steps).
    "label_too_long": lambda ds: (_write(ds, "bad/narrow.jpg", _jpeg(text_image("x", 32)[:, :24])),
                                  ds.add("Train", "bad/narrow.jpg abcdefghijkl")),
    # Adjacent repeats need a blank between them: 'aa' needs 3 steps, an 8 px image gives 2.
    "label_too_long_repeats": lambda ds: (_write(ds, "bad/tiny.jpg", _jpeg(text_image("x", 32)[:, :8])),
                                          ds.add("Train", "bad/tiny.jpg aa")),
}
CODE = {"truncated": "image_corrupt", "duplicate_across_splits": "duplicate",
        "label_too_long_repeats": "label_too_long"}


def _jpeg(image):
    return cv2.imencode(".jpg", image)[1].tobytes()


def _write(ds, rel, data):
    (ds.root / rel).parent.mkdir(parents=True, exist_ok=True)
    (ds.root / rel).write_bytes(data)


def _truncated(ds, rel):
    _write(ds, rel, _jpeg(text_image("abcdef", 40))[:-200])


def _dataset(root, rule):
    ds = Dataset(root)
    for i in range(12):
        ds.sample("Train" if i < 9 else "Test", f"img/{i}.jpg", f"w{i}")
    BROKEN[rule](ds)
    ds.write()
    if rule == "invalid_utf8":  # write a Latin-1 byte into an otherwise UTF-8 file
        path = root / "Train" / "sample.txt"
        path.write_bytes(path.read_bytes().replace(b"LATIN1", b"\xe9"))
    return ds


@pytest.mark.parametrize("rule", sorted(BROKEN))
def test_default_policy_stops_with_file_line_and_problem(tmp_path, rule):
    ds = _dataset(tmp_path / "ds", rule)
    save = tmp_path / "records"
    result = run_cli("tfrecords", "--dataset-dir", ds.root, "--save-dir", save, "--workers", "1")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    split_file = "Test/sample.txt" if rule == "duplicate_across_splits" else "Train/sample.txt"
    line = len(ds.lines[split_file.split("/")[0]])
    assert f"{split_file}:{line}:" in result.stderr
    assert "1 problem(s)" in result.stderr
    # Nothing was written under a final name, nor left behind.
    assert not save.exists() or list(save.iterdir()) == []

    checked = run_cli("validate", "--dataset-dir", ds.root, "--report", tmp_path / "report.json")
    assert checked.returncode == 1 and f"{split_file}:{line}:" in checked.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["ok"] is False
    assert [(p["file"], p["line"], p["code"]) for p in report["problems"]] == [(split_file, line, CODE.get(rule, rule))]


@pytest.mark.parametrize("rule", sorted(BROKEN))
def test_skip_policy_leaves_the_sample_out_and_reports_why(tmp_path, rule):
    import tensorflow as tf

    ds = _dataset(tmp_path / "ds", rule)
    save, report_path = tmp_path / "records", tmp_path / "report.json"
    result = run_cli("tfrecords", "--dataset-dir", ds.root, "--save-dir", save, "--on-error", "skip",
                     "--report", report_path, "--validation-ratio", "0", "--workers", "2")
    assert result.returncode == 0, result.stderr
    report = json.loads(report_path.read_text())
    assert report["num_problems"] == 1
    problem = report["problems"][0]
    assert problem["code"] == CODE.get(rule, rule) and problem["message"]
    manifest = json.loads((save / "manifest.json").read_text())
    assert manifest["skipped"] == 1
    # The 9 good Train and 3 good Test samples, and nothing else, are in the records.
    assert manifest["counts"] == {"train": 9, "validation": 0, "test": 3}
    sources = set()
    for split in ("train", "test"):
        for raw in tf.data.TFRecordDataset(str(save / f"{split}_feature.tfrecords")):
            example = tf.train.Example.FromString(raw.numpy())
            sources.add(example.features.feature["image/source"].bytes_list.value[0].decode())
    assert sources == {f"img/{i}.jpg" for i in range(12)}


def test_all_problems_are_reported_and_the_message_stays_short(tmp_path):
    ds = Dataset(tmp_path / "ds")
    ds.sample("Train", "ok.jpg", "fine")
    for i in range(8):
        ds.add("Train", f"/missing{i}.jpg abc")
    ds.sample("Test", "t.jpg", "UPPER")  # lowercased by the default case policy: fine
    ds.write()
    result = run_cli("validate", "--dataset-dir", ds.root, "--report", tmp_path / "r.json")
    assert result.returncode == 1
    assert "8 problem(s)" in result.stderr and "... and 3 more" in result.stderr
    assert len(result.stderr.splitlines()) <= 10
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["problems_by_kind"] == {"image_missing": 8}


def test_case_policy(tmp_path):
    ds = Dataset(tmp_path / "ds")
    ds.sample("Train", "a.jpg", "Hello")
    ds.sample("Test", "b.jpg", "world")
    ds.write()
    assert run_cli("validate", "--dataset-dir", ds.root).returncode == 0
    kept = run_cli("validate", "--dataset-dir", ds.root, "--case", "keep")
    assert kept.returncode == 1 and "'H' (U+0048)" in kept.stderr


def test_bad_dictionary_is_a_clear_error(tmp_path):
    ds = Dataset(tmp_path / "ds")
    ds.sample("Train", "a.jpg", "abc")
    ds.write()
    (ds.root / "char_dict.json").write_text('{"97": "a",}')
    result = run_cli("tfrecords", "--dataset-dir", ds.root, "--save-dir", tmp_path / "out")
    assert result.returncode == 1
    assert "char_dict.json:1: malformed JSON" in result.stderr and "Traceback" not in result.stderr


def test_fixed_mode_limits_labels_to_25_steps(tmp_path):
    ds = Dataset(tmp_path / "ds")
    ds.sample("Train", "a.jpg", "a" * 4 + "b" * 20)  # 24 characters + 4 repeats (a, b...) -> needs 24 + 22
    ds.sample("Train", "b.jpg", "abcdefghijklmnopqrstuvwxy")  # exactly 25 distinct: fits 100/4 = 25 steps
    ds.sample("Test", "c.jpg", "ok")
    ds.write()
    fixed = run_cli("validate", "--dataset-dir", ds.root, "--input-mode", "fixed", "--report", tmp_path / "r.json")
    assert fixed.returncode == 1
    problems = json.loads((tmp_path / "r.json").read_text())["problems"]
    assert [(p["line"], p["code"]) for p in problems] == [(1, "label_too_long")]
