"""The csv layout (tf.crnn's datasets) and the named layout (images named by their labels): found like the others,
validated with file and line, split, written as records and converted, through the real command."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import lmdb
import pytest

from conftest import run_cli, text_image, tree_digest, words
from shadownet.data.charset import Charset
from test_layouts import manifest_of, records

SPLITS = ("train", "validation", "test")


def image_bytes(text: str, seed: int = 0, ext: str = ".png") -> bytes:
    ok, buf = cv2.imencode(ext, text_image(text, 32 + seed % 5, seed))
    assert ok
    return buf.tobytes()


def write_image(path: Path, text: str, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(image_bytes(text, seed, path.suffix))
    return path


def tfrecords(dataset, save, *flags, check=True):
    return run_cli("tfrecords", "--dataset-dir", dataset, "--save-dir", save, "--workers", "1", *flags, check=check)


def found(save: Path, split: str) -> list[tuple[str, str]]:
    return [(r["image/source"].decode(), r["label/text"].decode()) for r in records(save, split)]


def problems(report: Path) -> list[tuple[str, int, str]]:
    return [(p["file"], p["line"], p["code"]) for p in json.loads(report.read_text())["problems"]]


def assert_user_error(result, code: int, *fragments):
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


# -- csv -------------------------------------------------------------------------------------------------------


def csv_folder(root: Path, train: int = 10, test: int = 4) -> dict[str, list[tuple[str, str]]]:
    """train.csv (with a header) and test.csv (without); paths relative, absolute, ``./``-prefixed; labels with
    the delimiter, plain and quoted. Returns, per split, ``(path as the records name it, label)`` in row order."""
    labels = words(train + test, seed=7)
    labels[1], labels[2] = f"{labels[1]};x", f"{labels[2]};y"
    expected: dict[str, list[tuple[str, str]]] = {"train": [], "test": []}
    rows: dict[str, list[str]] = {"train": ["path;label"], "test": []}
    for i, label in enumerate(labels):
        split = "train" if i < train else "test"
        image = write_image(root / "images" / f"{i}.png", label, seed=i)
        if i % 3 == 0:
            path, written = str(image), str(image)
        else:
            path, written = f"images/{i}.png", f"./images/{i}.png" if i % 3 == 1 else f"images/{i}.png"
        label_field = f'"{label}"' if i == 2 else label  # quoted as a spreadsheet writes it
        rows[split].append(f"{written};{label_field}")
        expected[split].append((path, label))
    for split, name in (("train", "train.csv"), ("test", "test.csv")):
        (root / name).write_text("".join(f"{row}\n" for row in rows[split]), encoding="utf-8")
    return expected


def test_csv_folder_header_paths_and_delimiters_in_labels(tmp_path):
    root = tmp_path / "csv"
    expected = csv_folder(root)
    run_cli("charset", "build", "--dataset-dir", root, check=True)
    assert ";" in Charset.load(root).characters  # the labels' delimiters are characters of theirs
    save = tmp_path / "records"
    result = tfrecords(root, save, "--validation-ratio", "0", "--workers", "2")
    assert "from the csv layout" in result.stderr
    manifest = manifest_of(save)
    assert manifest["source"]["layout"] == "csv"
    assert set(manifest["source"]["annotations"]) == {"train.csv", "test.csv"}
    assert manifest["counts"] == {"train": 10, "validation": 0, "test": 4}  # the header row is no sample
    assert found(save, "test") == expected["test"]  # in row order
    assert sorted(found(save, "train")) == sorted(expected["train"])


def test_csv_delimiter_flag(tmp_path):
    root = tmp_path / "csv"
    Charset.from_preset("digits_lower").save(root)
    labels = words(6, seed=3)
    for i, label in enumerate(labels):
        write_image(root / f"{i}.jpg", label, seed=i)
    (root / "train.csv").write_text("FILENAME,IDENTITY\n" + "".join(f"{i}.jpg,{label}\n" for i, label in
                                                                     enumerate(labels)))
    default = run_cli("validate", "--dataset-dir", root, "--workers", "1")
    assert_user_error(default, 1, "7 problem(s)", "train.csv:1: expected '<image path>;<label>', found "
                                                  "'FILENAME,IDENTITY'", "train.csv:2: expected")
    comma = run_cli("validate", "--dataset-dir", root, "--workers", "1", "--csv-delimiter", ",", check=True)
    assert comma.stdout.strip() == "ok: 6 Train and 0 Test samples pass every check (csv layout)"
    bad = run_cli("validate", "--dataset-dir", root, "--csv-delimiter", "::")
    assert_user_error(bad, 2, "shadownet: error: --csv-delimiter must be one character other than a quote or a "
                              "line break, not '::'")


def test_one_csv_file_as_the_dataset(tmp_path):
    folder = tmp_path / "data"
    labels = words(12, seed=5)
    for i, label in enumerate(labels):
        write_image(folder / "img" / f"{i}.png", label, seed=i)
    table = folder / "labels.csv"
    table.write_text("".join(f"img/{i}.png\t{label}\n" for i, label in enumerate(labels)))
    run_cli("charset", "build", "--dataset-dir", table, "--csv-delimiter", "\t", check=True)
    assert Charset.load(folder) == Charset.from_text("".join(labels))  # beside the CSV file

    save = tmp_path / "records"
    tfrecords(table, save, "--csv-delimiter", "\t", "--validation-ratio", "0.25")
    manifest = manifest_of(save)
    assert manifest["counts"] == {"train": 9, "validation": 3, "test": 0}  # all of it is train
    assert list(manifest["source"]["annotations"]) == ["labels.csv"]
    assert sorted(found(save, "train") + found(save, "validation")) == sorted(
        (f"img/{i}.png", label) for i, label in enumerate(labels))

    out = tmp_path / "lmdb"
    run_cli("convert", "--dataset-dir", table, "--csv-delimiter", "\t", "--to", "lmdb", "--out", out, "--workers",
            "2", check=True)
    env = lmdb.open(str(out / "Train"), readonly=True, lock=False)
    with env.begin() as txn:
        assert int(txn.get(b"num-samples")) == 12
        assert [txn.get(b"label-%09d" % i).decode() for i in range(1, 13)] == labels  # row order
        assert txn.get(b"image-000000004") == (folder / "img" / "3.png").read_bytes()
    env.close()


def test_csv_problems_name_file_and_line(tmp_path):
    root = tmp_path / "csv"
    Charset.from_preset("digits_lower").save(root)
    for i in range(6):
        write_image(root / f"{i}.png", f"w{i}", seed=i)
    rows = ["image;text",  # 1: a header
            "0.png;w0", "1.png;w1",
            "2.png",  # 4: no delimiter
            "3.png;w3",
            "missing.png;abc",  # 6
            "4.png;w4",
            "5.png;"]  # 8: an empty label
    (root / "train.csv").write_text("\n".join(rows) + "\n")
    report = tmp_path / "report.json"
    result = run_cli("validate", "--dataset-dir", root, "--workers", "1", "--report", report)
    assert_user_error(result, 1, "3 problem(s)", "train.csv:4: expected '<image path>;<label>', found '2.png'",
                      "train.csv:6: image not found: missing.png", "train.csv:8: empty label for 5.png")
    assert problems(report) == [("train.csv", 4, "malformed_line"), ("train.csv", 6, "image_missing"),
                                ("train.csv", 8, "empty_label")]
    assert json.loads(report.read_text())["counts"]["train.csv"] == {"lines": 7}


# -- named -----------------------------------------------------------------------------------------------------


def named_folder(folder: Path, count: int, seed: int = 0) -> list[tuple[str, str]]:
    """``count`` images ``<label>_<i>.png`` (every third plain ``<label>.jpg``) in ``folder``; (name, label)."""
    samples = []
    for i, label in enumerate(words(count, seed=seed)):
        name = f"{label}{i}.jpg" if i % 3 == 0 else f"{label}_{i}.png"
        write_image(folder / name, label, seed=i)
        samples.append((name, f"{label}{i}" if i % 3 == 0 else label))
    return samples


def test_named_folder_a_seeded_tenth_to_test(tmp_path):
    root = tmp_path / "named"
    samples = named_folder(root, 30)
    Charset.from_preset("digits_lower").save(root)
    (root / "notes.txt").write_text("not an image\n")
    (root / ".hidden.png").write_bytes(b"not a sample")
    runs = []
    for name, flags in (("a", ["--workers", "1"]), ("b", ["--workers", "3"]), ("c", ["--seed", "5"])):
        result = tfrecords(root, tmp_path / name, *flags)
        assert "from the named layout" in result.stderr
        runs.append(tmp_path / name)
    manifest = manifest_of(runs[0])
    assert manifest["source"]["layout"] == "named"
    assert list(manifest["source"]["annotations"]) == ["(train)", "(test)"]
    assert manifest["counts"] == {"train": 24, "validation": 3, "test": 3}
    assert tree_digest(runs[0]) == tree_digest(runs[1])  # whatever the worker count
    test = found(runs[0], "test")
    assert found(runs[2], "test") == test  # --seed moves train and validation, never the test files
    assert sorted(found(runs[2], "train")) != sorted(found(runs[0], "train"))
    everything = sorted(pair for split in SPLITS for pair in found(runs[0], split))
    assert everything == sorted(samples)  # every image once, its label from its name
    assert [name for name, _ in test] == sorted(name for name, _ in test)  # in name order


def test_named_train_and_test_subfolders(tmp_path):
    root = tmp_path / "named"
    train, test = named_folder(root / "Train", 8), named_folder(root / "Test", 3, seed=1)
    named_folder(root, 2, seed=2)  # beside Train/: not read
    (root / "Train" / "deeper").mkdir()
    write_image(root / "Train" / "deeper" / "abc.png", "abc")  # in a subfolder: not read
    Charset.from_preset("digits_lower").save(root)
    save = tmp_path / "records"
    tfrecords(root, save, "--validation-ratio", "0")
    manifest = manifest_of(save)
    assert list(manifest["source"]["annotations"]) == ["Train", "Test"]
    assert manifest["counts"] == {"train": 8, "validation": 0, "test": 3}
    assert found(save, "test") == sorted((f"Test/{name}", label) for name, label in test)
    assert sorted(found(save, "train")) == sorted((f"Train/{name}", label) for name, label in train)


def test_named_bad_files_are_named(tmp_path):
    root = tmp_path / "named"
    named_folder(root / "Train", 6)
    named_folder(root / "Test", 2, seed=1)
    write_image(root / "Train" / "_17.png", "abc")
    (root / "Test" / "abc_2.png").write_bytes(b"this is not an image")
    Charset.from_preset("digits_lower").save(root)
    report = tmp_path / "report.json"
    result = run_cli("validate", "--dataset-dir", root, "--workers", "1", "--report", report)
    assert_user_error(result, 1, "2 problem(s)", "Train/_17.png: empty label for Train/_17.png",
                      "Test/abc_2.png: not a decodable image")
    assert problems(report) == [("Test/abc_2.png", 0, "image_corrupt"), ("Train/_17.png", 0, "empty_label")]
    assert json.loads(report.read_text())["counts"]["Train"] == {"images": 7}

    save = tmp_path / "records"
    tfrecords(root, save, "--on-error", "skip", "--validation-ratio", "0")
    assert manifest_of(save)["counts"] == {"train": 6, "validation": 0, "test": 2}


def test_named_folder_converted_to_the_seed_layout(tmp_path):
    root = tmp_path / "named"
    named_folder(root / "Train", 70)  # more than a chunk of 64: two workers share it
    named_folder(root / "Test", 3, seed=1)
    Charset.from_preset("digits_lower").save(root)
    out = tmp_path / "seed"
    result = run_cli("convert", "--dataset-dir", root, "--to", "seed", "--out", out, "--workers", "2", check=True)
    assert "from the named layout" in result.stderr
    for folder in ("Train", "Test"):
        names = sorted(p.name for p in (root / folder).iterdir())
        lines = (out / folder / "sample.txt").read_text().splitlines()
        assert [line.split(" ", 1)[1] for line in lines] == [name.split("_")[0].split(".")[0] for name in names]
        first = lines[0].split(" ", 1)[0]
        assert (out / first).read_bytes() == (root / folder / names[0]).read_bytes()


# -- finding them --------------------------------------------------------------------------------------------


def test_detection_tries_the_new_layouts_after_the_others(tmp_path):
    from shadownet.data.layouts import detect

    both = tmp_path / "both"
    write_image(both / "abc_1.png", "abc")
    assert detect(both).kind == "named"
    (both / "train.csv").write_text("abc_1.png;abc\n")
    assert detect(both).kind == "csv"  # before named
    assert detect(both / "train.csv").kind == "csv"
    (both / "Train").mkdir()
    (both / "Train" / "sample.txt").write_text("abc_1.png abc\n")
    assert detect(both).kind == "seed"  # before both
    assert detect(both, "named").kind == "named"


def test_the_layout_registry_is_the_one_list():
    from shadownet import choices
    from shadownet.data import layout_base, layouts
    from shadownet.flags import build_parser

    assert layouts.LAYOUTS == ("icdar2015", "paddle_det", "seed", "lmdb", "mjsynth", "csv", "named")
    assert set(layouts.LAYOUTS) == set(layout_base.REGISTRY)
    assert layouts.CONVERT_TARGETS == ("lmdb", "seed")
    assert not hasattr(choices, "LAYOUTS") and not hasattr(choices, "CONVERT_TARGETS")
    commands = build_parser()._subparsers._group_actions[0].choices
    charset_build = commands["charset"]._subparsers._group_actions[0].choices["build"]
    for parser in (commands["validate"], commands["tfrecords"], commands["convert"], charset_build):
        assert tuple(parser._option_string_actions["--layout"].choices) == layouts.LAYOUTS
        assert parser._option_string_actions["--csv-delimiter"].default == ";"
    assert tuple(commands["convert"]._option_string_actions["--to"].choices) == layouts.CONVERT_TARGETS

    class Extra(layout_base.Layout):  # one declaration is a layout
        kind, rank = "extra", 99

    try:
        assert layout_base.REGISTRY["extra"] is Extra and layout_base.ordered()[-1] is Extra
    finally:
        del layout_base.REGISTRY["extra"]


# -- s3:// -----------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_csv_and_named_datasets_on_s3_give_the_local_records(s3, bucket, tmp_path):
    from shadownet.cloud.storage import ObjectStore, S3Url, StorageConfig

    csv_root, named_root = tmp_path / "csv", tmp_path / "named"
    labels = words(8, seed=9)
    for i, label in enumerate(labels):
        write_image(csv_root / f"{i}.png", label, seed=i)
    (csv_root / "train.csv").write_text("".join(f"{i}.png;{label}\n" for i, label in enumerate(labels)))
    named_folder(named_root, 12)
    store = ObjectStore(StorageConfig(endpoint_url=s3.endpoint))
    for root, name in ((csv_root, "csv"), (named_root, "named")):
        Charset.from_preset("digits_lower").save(root)
        store.publish(root, S3Url(bucket, f"data/{name}"))
        remote, local = tmp_path / f"{name}-remote", tmp_path / f"{name}-local"
        run_cli("tfrecords", "--dataset-dir", f"s3://{bucket}/data/{name}", "--save-dir", remote, "--workers", "1",
                "--s3-endpoint-url", s3.endpoint, "--scratch-dir", tmp_path / "scratch", check=True)
        tfrecords(root, local)
        manifests = [manifest_of(remote), manifest_of(local)]
        manifests[0]["source"].pop("dataset_dir"), manifests[1]["source"].pop("dataset_dir")
        assert manifests[0] == manifests[1] and manifests[0]["source"]["layout"] == name
        remote_files, local_files = tree_digest(remote), tree_digest(local)
        assert all(remote_files[f] == local_files[f] for f in local_files if f != "manifest.json")
