"""Records: round trip through tf.data, sharding, determinism, atomicity under kill."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import tensorflow as tf

from conftest import Dataset, interrupt, run_cli, start_cli, text_image, tree_digest, words
from shadownet.data import record_format
from shadownet.data.images import ImageGeometry
from shadownet.data.write_records import TFRecordsConfig, run
from shadownet.learn import read_records


def read_split(save_dir, split):
    return list(read_records.load_split(save_dir, split).as_numpy_iterator())


def test_round_trip_through_tf_data(tmp_path, good_dataset):
    save = tmp_path / "records"
    run_cli("tfrecords", "--dataset-dir", good_dataset, "--save-dir", save, "--image-format", "png",
            "--validation-ratio", "0.2", "--seed", "3", check=True)
    manifest = read_records.read_manifest(save)
    assert manifest["counts"] == {"train": 24, "validation": 6, "test": 8}
    assert manifest["case"] == {"policy": "auto", "lowercase": True}
    assert manifest["charset"]["blank_index"] == 36 and manifest["charset"]["num_classes"] == 37
    charset = read_records.charset_of(manifest)

    lines = {}
    for split in ("Train", "Test"):
        for line in (good_dataset / split / "sample.txt").read_text().splitlines():
            path, label = line.split(" ", 1)
            lines[path.lstrip("/")] = label
    seen = set()
    for split in ("train", "validation", "test"):
        for example in read_split(save, split):
            source = example["source"].decode()
            seen.add(source)
            text = example["text"].decode()
            assert text == lines[source].lower()
            assert charset.decode(example["label"]) == text
            assert example["label_length"] == len(text)
            # PNG is lossless: the stored pixels are exactly the source resized to height 32.
            source_image = cv2.imread(str(good_dataset / source))
            h, w = source_image.shape[:2]
            expected_width = round(w * 32 / h)
            assert example["image"].shape == (32, expected_width, 3)
            assert (example["width"], example["height"]) == (expected_width, 32)
            # Sources here are 32..51 px high: shrunk by less than 2x, which is done bilinearly.
            expected = source_image if h == 32 else cv2.resize(source_image, (expected_width, 32),
                                                               interpolation=cv2.INTER_LINEAR)
            np.testing.assert_array_equal(example["image"], expected[:, :, ::-1])  # BGR -> RGB
    assert seen == set(lines)


def test_manifest_describes_the_files_exactly(tmp_path, good_dataset):
    save = tmp_path / "records"
    run_cli("tfrecords", "--dataset-dir", good_dataset, "--save-dir", save, "--shards", "3", check=True)
    manifest = json.loads((save / "manifest.json").read_text())
    names = sorted(p.name for p in save.iterdir())
    listed = sorted(f["name"] for s in manifest["splits"].values() for f in s["files"])
    assert names == sorted(listed + ["manifest.json"])
    assert "train_feature-00002-of-00003.tfrecords" in names
    for split, info in manifest["splits"].items():
        assert sum(f["records"] for f in info["files"]) == info["count"] == manifest["counts"][split]
        for f in info["files"]:
            data = (save / f["name"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == f["sha256"] and len(data) == f["bytes"]
            assert len(list(record_format.read_file(save / f["name"]))) == f["records"]


def test_sharded_output_holds_the_same_records(tmp_path, good_dataset):
    one, three = tmp_path / "one", tmp_path / "three"
    run_cli("tfrecords", "--dataset-dir", good_dataset, "--save-dir", one, check=True)
    run_cli("tfrecords", "--dataset-dir", good_dataset, "--save-dir", three, "--shards", "3", check=True)
    for split in ("train", "validation", "test"):
        whole = list(record_format.read_file(one / f"{split}_feature.tfrecords"))
        parts = [r for k in range(3) for r in record_format.read_file(
            three / record_format.shard_name(split, k, 3))]
        assert parts == whole  # contiguous blocks, in the same order


def test_our_bytes_are_what_tensorflow_writes(tmp_path):
    example = record_format.text_line_example(b"\x89PNG..", "png", 57, 32, "a/b c.png", [3, 0, 35, 3], "3az3")
    parsed = tf.train.Example.FromString(example).features.feature
    assert parsed["label/ids"].int64_list.value == [3, 0, 35, 3]
    assert parsed["image/source"].bytes_list.value == [b"a/b c.png"]
    with tf.io.TFRecordWriter(str(tmp_path / "tf.tfrecords")) as writer:
        writer.write(example)
    assert (tmp_path / "tf.tfrecords").read_bytes() == record_format.frame(example)


def test_fixed_mode_is_100_by_32(tmp_path, good_dataset):
    save = tmp_path / "fixed"
    run_cli("tfrecords", "--dataset-dir", good_dataset, "--save-dir", save, "--input-mode", "fixed", check=True)
    shapes = {example["image"].shape for example in read_split(save, "train")}
    assert shapes == {(32, 100, 3)}
    assert read_records.read_manifest(save)["image"]["width"] == 100


def test_height_32_jpeg_is_stored_without_re_encoding(tmp_path):
    ds = Dataset(tmp_path / "ds")
    ds.sample("Train", "a.jpg", "abc", height=32)
    ds.sample("Test", "b.jpg", "def", height=32)
    ds.write()
    save = tmp_path / "out"
    run_cli("tfrecords", "--dataset-dir", ds.root, "--save-dir", save, "--validation-ratio", "0", check=True)
    raw = next(iter(tf.data.TFRecordDataset(str(save / "train_feature.tfrecords")))).numpy()
    stored = tf.train.Example.FromString(raw).features.feature["image/encoded"].bytes_list.value[0]
    assert stored == (ds.root / "a.jpg").read_bytes()


def test_records_are_much_smaller_than_raw_pixels(tmp_path, good_dataset):
    save = tmp_path / "out"
    run_cli("tfrecords", "--dataset-dir", good_dataset, "--save-dir", save, "--input-mode", "fixed", check=True)
    manifest = read_records.read_manifest(save)
    total = sum(f["bytes"] for s in manifest["splits"].values() for f in s["files"])
    assert total / sum(manifest["counts"].values()) < 0.5 * 100 * 32 * 3


def test_same_input_same_bytes_whatever_the_worker_count(tmp_path, good_dataset):
    outputs = []
    for workers in (1, 2, 3):
        save = tmp_path / f"w{workers}"
        run_cli("tfrecords", "--dataset-dir", good_dataset, "--save-dir", save, "--workers", workers,
                "--shards", "2", check=True)
        outputs.append(tree_digest(save))
    assert outputs[0] == outputs[1] == outputs[2]
    other_seed = tmp_path / "seed"
    run_cli("tfrecords", "--dataset-dir", good_dataset, "--save-dir", other_seed, "--seed", "9",
            "--shards", "2", check=True)
    assert tree_digest(other_seed) != outputs[0]


def test_rerun_with_fewer_shards_removes_stale_files(tmp_path, good_dataset):
    save = tmp_path / "out"
    run_cli("tfrecords", "--dataset-dir", good_dataset, "--save-dir", save, "--shards", "4", check=True)
    run_cli("tfrecords", "--dataset-dir", good_dataset, "--save-dir", save, check=True)
    assert sorted(p.name for p in save.iterdir()) == [
        "manifest.json", "test_feature.tfrecords", "train_feature.tfrecords", "validation_feature.tfrecords"
    ]


def test_validation_split_is_seeded_and_disjoint(tmp_path, good_dataset):
    config = TFRecordsConfig(good_dataset, tmp_path / "a", workers=1, validation_ratio=0.3, seed=5)
    run(config)
    train = {e["source"] for e in read_split(tmp_path / "a", "train")}
    validation = {e["source"] for e in read_split(tmp_path / "a", "validation")}
    assert len(validation) == 9 and len(train) == 21 and not train & validation
    run(TFRecordsConfig(good_dataset, tmp_path / "b", workers=1, validation_ratio=0.3, seed=6))
    assert {e["source"] for e in read_split(tmp_path / "b", "validation")} != validation


@pytest.fixture
def big_dataset(tmp_path):
    """Enough images that two workers need a few seconds: time to interrupt them."""
    ds = Dataset(tmp_path / "big")
    base = [cv2.imencode(".jpg", text_image(w, 96))[1].tobytes() for w in words(20, seed=7)]
    labels = words(20, seed=7)
    (ds.root / "img").mkdir()
    for i in range(12_000):
        (ds.root / "img" / f"{i}.jpg").write_bytes(base[i % 20])
        ds.add("Train" if i < 10_800 else "Test", f"img/{i}.jpg {labels[i % 20]}")
    return ds.write()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_interrupted_generation_leaves_no_final_file_and_rerun_matches(tmp_path, big_dataset, sig):
    save = tmp_path / "interrupted"
    args = ["tfrecords", "--dataset-dir", big_dataset, "--save-dir", save, "--workers", "2", "--shards", "2"]
    process = start_cli(*args)
    deadline = time.monotonic() + 60
    while not any(save.glob(".*.partial")) and time.monotonic() < deadline:
        time.sleep(0.01)
    interrupt(process, sig, "generation")
    process.wait(timeout=60)
    assert process.returncode != 0
    finals = [p.name for p in save.iterdir() if not p.name.startswith(".")]
    assert finals == []
    if sig != signal.SIGKILL:  # a catchable signal also cleans up the partial files
        assert list(save.iterdir()) == []

    run_cli(*args, check=True)
    reference = tmp_path / "reference"
    run_cli("tfrecords", "--dataset-dir", big_dataset, "--save-dir", reference, "--workers", "1", "--shards", "2",
            check=True)
    assert tree_digest(save) == tree_digest(reference)


def test_reader_refuses_an_incomplete_directory(tmp_path):
    from shadownet.errors import DataError

    with pytest.raises(DataError, match="manifest.json: not found"):
        read_records.load_split(tmp_path, "train")


def test_large_jpeg_is_decoded_at_reduced_size_cleanly(tmp_path):
    from shadownet.data.images import decode, jpeg_height

    big = text_image("reduce", 128)
    data = cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    assert jpeg_height(data) == 128
    assert decode(data, min_height=32).shape[0] == 32  # 1/4 scale in libjpeg
    assert decode(data, min_height=40).shape[0] == 64  # never below the height asked for
    assert decode(data).shape[:2] == big.shape[:2]
    ds = Dataset(tmp_path / "ds")
    (ds.root / "big.jpg").write_bytes(data)
    ds.add("Train", "big.jpg reduce")
    ds.sample("Test", "t.jpg", "t")
    ds.write()
    save = tmp_path / "out"
    run_cli("tfrecords", "--dataset-dir", ds.root, "--save-dir", save, "--validation-ratio", "0",
            "--image-format", "png", check=True)
    stored = read_split(save, "train")[0]["image"][:, :, ::-1]
    reference = cv2.resize(big, (stored.shape[1], 32), interpolation=cv2.INTER_AREA)
    assert np.abs(stored.astype(int) - reference.astype(int)).mean() < 8.0


def test_geometry_widths():
    geometry = ImageGeometry()
    assert geometry.target_width(200, 64) == 100
    assert geometry.target_width(10, 64) == 8  # min width
    assert geometry.target_width(10_000, 32) == 800  # max width
    assert ImageGeometry(mode="fixed").target_width(300, 20) == 100


# -- generation across machines: one shard per run ---------------------------------------------------------------


def shard_runs(dataset, save_dir, shards: int, extra=(), env_of=None) -> list[subprocess.CompletedProcess]:
    """``shards`` separate processes at once, as an Indexed Job's pods would run."""
    processes = []
    for index in range(shards):
        env = dict(os.environ, **(env_of(index) if env_of else {}))
        args = ["tfrecords", "--dataset-dir", dataset, "--save-dir", save_dir, "--num-shards", shards,
                "--workers", "1", "--seed", "7", *([] if env_of else ["--shard-index", index]), *extra]
        processes.append(subprocess.Popen([sys.executable, "-m", "shadownet", *map(str, args)], env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        results.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return results


@pytest.mark.slow
def test_three_shard_runs_write_what_one_run_with_three_shards_writes(tmp_path, good_dataset):
    single = tmp_path / "single"
    run_cli("tfrecords", "--dataset-dir", good_dataset, "--save-dir", single, "--shards", 3, "--workers", 1,
            "--seed", 7, check=True)
    results = shard_runs(good_dataset, tmp_path / "sharded", 3)
    assert [r.returncode for r in results] == [0, 0, 0], [r.stderr for r in results]
    assert sum("every shard is there: manifest written" in r.stderr for r in results) >= 1
    assert tree_digest(tmp_path / "sharded") == tree_digest(single)  # records and manifest, byte for byte
    assert not list((tmp_path / "sharded").glob(".*"))  # no manifest part, no partial file left
    assert len([f for f in tree_digest(single) if f.endswith(".tfrecords")]) == 9

    # An Indexed Job gives each pod its shard in JOB_COMPLETION_INDEX.
    results = shard_runs(good_dataset, tmp_path / "indexed", 3, env_of=lambda i: {"JOB_COMPLETION_INDEX": str(i)})
    assert [r.returncode for r in results] == [0, 0, 0]
    assert tree_digest(tmp_path / "indexed") == tree_digest(single)


def test_a_shard_alone_writes_no_manifest_and_readers_refuse_it(tmp_path, good_dataset):
    out = tmp_path / "out"
    result = run_cli("tfrecords", "--dataset-dir", good_dataset, "--save-dir", out, "--num-shards", 2,
                     "--shard-index", 1, "--workers", 1, check=True)
    assert "the last shard to finish writes the manifest" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        ".manifest-part-00001-of-00002.json", "test_feature-00001-of-00002.tfrecords",
        "train_feature-00001-of-00002.tfrecords", "validation_feature-00001-of-00002.tfrecords"]
    assert run_cli("inspect", "--tfrecords-dir", out).returncode != 0


def test_shard_parts_from_different_settings_are_not_merged(tmp_path, good_dataset):
    out = tmp_path / "out"
    run_cli("tfrecords", "--dataset-dir", good_dataset, "--save-dir", out, "--num-shards", 2, "--shard-index", 0,
            "--workers", 1, "--seed", 1, check=True)
    result = run_cli("tfrecords", "--dataset-dir", good_dataset, "--save-dir", out, "--num-shards", 2,
                     "--shard-index", 1, "--workers", 1, "--seed", 2)
    assert result.returncode == 2
    assert "shard 1 was written from another dataset or with other settings (split differ)" in result.stderr
    assert not (out / "manifest.json").exists()


def test_shard_flags_are_checked(tmp_path, good_dataset):
    def error(*flags):
        result = run_cli("tfrecords", "--dataset-dir", good_dataset, "--save-dir", tmp_path / "x", *flags)
        assert result.returncode == 2
        return result.stderr.strip().splitlines()[-1]

    assert error("--shard-index", "0") == "shadownet: error: --shard-index needs --num-shards"
    assert error("--num-shards", "3", "--shard-index", "3") == (
        "shadownet: error: --shard-index must be in [0, 3), not 3")
    assert error("--num-shards", "3") == (
        "shadownet: error: --num-shards needs --shard-index (or JOB_COMPLETION_INDEX, as an Indexed Job sets it)")
    assert error("--num-shards", "3", "--shards", "2", "--shard-index", "0") == (
        "shadownet: error: --shards 2 and --num-shards 3 disagree; give one")


def test_sagemaker_hosts_give_the_shard(tmp_path, good_dataset):
    env = dict(os.environ, SM_HOSTS='["algo-2", "algo-1"]', SM_CURRENT_HOST="algo-2")
    result = run_cli("tfrecords", "--dataset-dir", good_dataset, "--save-dir", tmp_path / "out", "--num-shards", 2,
                     "--workers", 1, env=env, check=True)
    assert "wrote shard 1 of 2" in result.stderr  # algo-2 is second in sorted order, as SageMaker numbers hosts
