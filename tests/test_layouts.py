"""Datasets in the LMDB and MJSynth layouts, through the real command: records, splits, determinism, errors."""

from __future__ import annotations

import json
import string
from pathlib import Path

import cv2
import lmdb
import pytest

from conftest import run_cli, text_image, tree_digest, words
from shadownet.data import record_format
from shadownet.data.charset import Charset

SPLITS = ("train", "validation", "test")
KEEP = object()  # write_env: the num-samples the samples give


def jpeg(text: str, height: int = 32, seed: int = 0) -> bytes:
    ok, buf = cv2.imencode(".jpg", text_image(text, height, seed))
    assert ok
    return buf.tobytes()


def write_env(folder: Path, samples, num_samples=KEEP, drop=(), replace=None) -> Path:
    """An LMDB environment as the benchmark releases write it, with the lmdb package (not shadownet)."""
    entries = {}
    for i, (image, label) in enumerate(samples, 1):
        entries[b"image-%09d" % i] = image
        entries[b"label-%09d" % i] = label.encode("utf-8") if isinstance(label, str) else label
    entries[b"num-samples"] = str(len(samples)).encode() if num_samples is KEEP else num_samples
    entries.update(replace or {})
    for key in drop:
        del entries[key]
    folder.mkdir(parents=True, exist_ok=True)
    env = lmdb.open(str(folder), map_size=1 << 27)
    with env.begin(write=True) as txn:
        for key, value in entries.items():
            txn.put(key, value)
    env.close()
    return folder


def word_samples(n: int, seed: int, mixed_case: bool = False) -> list[tuple[bytes, str]]:
    labels = [w.upper() if mixed_case and i % 3 == 0 else w for i, w in enumerate(words(n, seed=seed))]
    return [(jpeg(label, 32 + i % 7, seed=i), label) for i, label in enumerate(labels)]


def lmdb_dataset(root: Path, train: int = 6, test: int = 2, seed: int = 0, **broken) -> Path:
    """``Train/`` and ``Test/`` environments of digits_lower words; ``broken`` goes to Train's write_env."""
    Charset.from_preset("digits_lower").save(root)
    write_env(root / "Train", word_samples(train, seed), **broken)
    write_env(root / "Test", word_samples(test, seed + 100))
    return root


# -- MJSynth -------------------------------------------------------------------------------------------------

ANNOTATION = {"train": "annotation_train.txt", "validation": "annotation_val.txt", "test": "annotation_test.txt"}


def mjsynth_tree(root: Path, counts=(8, 3, 3), seed: int = 0) -> dict[str, list[tuple[str, str]]]:
    """JPEGs ``3000/<k>/<n>_<Word>_<index>.jpg``, the annotation files and a lowercase lexicon.

    Returns, per split, ``(path, label)`` in annotation order (paths as the dataset names them, no ``./``)."""
    root.mkdir(parents=True, exist_ok=True)
    lexicon = sorted(set(words(40, seed=seed)))
    samples, n = {}, 0
    for split, count in zip(SPLITS, counts, strict=True):
        lines, samples[split] = [], []
        for _ in range(count):
            index = (n * 7) % len(lexicon)
            word = lexicon[index]
            label = word.upper() if n % 3 == 0 else word.capitalize() if n % 3 == 1 else word
            path = f"{3000 + n // 4}/{n % 4 + 1}/{100 + n}_{label}_{index}.jpg"
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_bytes(jpeg(label, 31 + n % 5, seed=n))
            lines.append(f"./{path} {index}\n")
            samples[split].append((path, label))
            n += 1
        if count:
            (root / ANNOTATION[split]).write_text("".join(lines))
    (root / "lexicon.txt").write_text("".join(f"{word}\n" for word in lexicon))
    return samples


def add_annotation_line(root: Path, split: str, line: str) -> int:
    """Append a line to a split's annotation file; returns its line number."""
    path = root / ANNOTATION[split]
    text = path.read_text()
    path.write_text(text + line + "\n")
    return text.count("\n") + 1


# -- reading records without TensorFlow -----------------------------------------------------------------------


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def _fields(data: bytes):
    """(field number, payload) of length-delimited protobuf fields, the only kind an Example has here."""
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        assert key & 7 == 2, key
        length, i = _varint(data, i)
        yield key >> 3, data[i : i + length]
        i += length


def parse_example(record: bytes) -> dict:
    """``tf.train.Example`` bytes -> {key: bytes or list of ints}."""
    out = {}
    for _, features in _fields(record):
        for _, entry in _fields(features):
            fields = dict(_fields(entry))
            ((kind, values),) = _fields(fields[2])
            ((_, payload),) = _fields(values)  # one bytes value, or the packed int64 values
            if kind == 1:  # bytes_list
                out[fields[1].decode()] = payload
            else:  # int64_list, packed
                ints, i = [], 0
                while i < len(payload):
                    value, i = _varint(payload, i)
                    ints.append(value)
                out[fields[1].decode()] = ints if fields[1] == b"label/ids" else ints[0]
    return out


def manifest_of(save: Path) -> dict:
    return json.loads((save / record_format.MANIFEST_FILE).read_text())


def records(save: Path, split: str) -> list[dict]:
    """A split's examples, shard after shard as the manifest lists them."""
    return [parse_example(raw) for f in manifest_of(save)["splits"][split]["files"]
            for raw in record_format.read_file(save / f["name"])]


def sources(save: Path, split: str) -> list[str]:
    return [r["image/source"].decode() for r in records(save, split)]


def tfrecords(dataset, save, *flags, check=True):
    return run_cli("tfrecords", "--dataset-dir", dataset, "--save-dir", save, "--workers", "1", *flags, check=check)


def assert_user_error(result, *fragments):
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def assert_nothing_written(save: Path):
    assert not save.exists() or list(save.iterdir()) == []


# -- 1. seed -> LMDB -> records is seed -> records ---------------------------------------------------------------


def test_seed_converted_to_lmdb_gives_the_same_records(tmp_path, good_dataset):
    tree = tmp_path / "lmdb"
    run_cli("convert", "--dataset-dir", good_dataset, "--to", "lmdb", "--out", tree, "--workers", "1", check=True)
    assert sorted(p.name for p in tree.iterdir()) == ["Test", "Train", "char_dict.json", "ord_map.json"]
    tfrecords(good_dataset, tmp_path / "from-seed", "--seed", "3")
    tfrecords(tree, tmp_path / "from-lmdb", "--seed", "3")
    seed, converted = manifest_of(tmp_path / "from-seed"), manifest_of(tmp_path / "from-lmdb")
    assert seed["source"]["layout"] == "seed" and converted["source"]["layout"] == "lmdb"
    assert set(converted["source"]["annotations"]) == {"Train/data.mdb", "Test/data.mdb"}
    assert converted["counts"] == seed["counts"] == {"train": 27, "validation": 3, "test": 8}
    for key in ("charset", "case", "image", "split", "counts", "skipped"):
        assert converted[key] == seed[key], key
    assert converted["split"]["validation_from"] == "train"

    # Line k of Train/sample.txt is sample k of Train/data.mdb.
    as_lmdb = {}
    for folder in ("Train", "Test"):
        for k, line in enumerate((good_dataset / folder / "sample.txt").read_text().splitlines(), 1):
            as_lmdb[line.split(" ", 1)[0].lstrip("/")] = f"{folder}/data.mdb#{k}"
    for split in SPLITS:
        expected, found = records(tmp_path / "from-seed", split), records(tmp_path / "from-lmdb", split)
        assert [as_lmdb[r.pop("image/source").decode()] for r in expected] == [
            r.pop("image/source").decode() for r in found]
        # Same label text, class ids, stored image bytes and size, in the same order.
        assert found == expected and len(found) == seed["counts"][split]


# -- 2. a release-style LMDB tree, nested ----------------------------------------------------------------------

RELEASE = {"training/MJ/MJ_train": 7, "training/ST": 5, "validation": 4, "evaluation/IIIT5k_3000": 3,
           "evaluation/SVT": 2}


def release_tree(root: Path) -> dict[str, list[str]]:
    """The folder names of the benchmark releases; labels in mixed case. Returns the labels per environment."""
    labels = {}
    for seed, (folder, count) in enumerate(RELEASE.items()):
        samples = word_samples(count, seed * 10, mixed_case=True)
        write_env(root / folder, samples)
        labels[folder] = [label for _, label in samples]
    return labels


def test_release_tree_with_its_own_validation_and_two_evaluation_sets(tmp_path):
    root = tmp_path / "release"
    labels = release_tree(root)
    save = tmp_path / "records"
    missing = tfrecords(root, save, check=False)
    assert_user_error(missing, f"{root / 'char_dict.json'}: file not found", "shadownet charset build --dataset-dir")
    assert_nothing_written(save)

    run_cli("charset", "build", "--dataset-dir", root, check=True)
    first = {name: (root / name).read_bytes() for name in ("char_dict.json", "ord_map.json")}
    run_cli("charset", "build", "--dataset-dir", root, "--out", tmp_path / "again", check=True)
    assert {name: (tmp_path / "again" / name).read_bytes() for name in first} == first
    everything = "".join(label for env in labels.values() for label in env)
    assert Charset.load(root) == Charset.from_text(everything)  # case kept: upper and lower letters

    tfrecords(root, save)
    manifest = manifest_of(save)
    assert manifest["source"]["layout"] == "lmdb"
    assert manifest["split"]["validation_from"] == "dataset"
    assert manifest["case"]["lowercase"] is False
    assert list(manifest["source"]["annotations"]) == [f"{folder}/data.mdb" for folder in RELEASE]
    assert manifest["counts"] == {"train": 12, "validation": 4, "test": 5}

    def expected(*folders):
        return [(f"{folder}/data.mdb#{i}", label) for folder in folders for i, label in enumerate(labels[folder], 1)]

    def found(split):
        return [(r["image/source"].decode(), r["label/text"].decode()) for r in records(save, split)]

    assert found("test")[0] == ("evaluation/IIIT5k_3000/data.mdb#1", labels["evaluation/IIIT5k_3000"][0])
    assert found("test") == expected("evaluation/IIIT5k_3000", "evaluation/SVT")  # sorted path order
    assert found("validation") == expected("validation")  # the release's own, in order, not carved from train
    train = found("train")
    assert sorted(train) == sorted(expected("training/MJ/MJ_train", "training/ST"))
    assert train != expected("training/MJ/MJ_train", "training/ST")  # shuffled once, as for every layout


# -- 3. an MJSynth tree ----------------------------------------------------------------------------------------


def test_mjsynth_tree_bad_images_stop_or_are_skipped(tmp_path):
    root = tmp_path / "mjsynth"
    samples = mjsynth_tree(root, counts=(8, 3, 3))
    lexicon = (root / "lexicon.txt").read_text().splitlines()
    corrupt_path, empty_path = f"2999/1/1_{lexicon[0]}_0.jpg", f"2999/2/2_{lexicon[1].upper()}_1.jpg"
    for path, data in ((corrupt_path, b"\xff\xd8 not really a JPEG \xff\xd9"), (empty_path, b"")):
        (root / path).parent.mkdir(parents=True)
        (root / path).write_bytes(data)
    corrupt = add_annotation_line(root, "train", f"./{corrupt_path} 0")
    empty = add_annotation_line(root, "validation", f"./{empty_path} 1")
    run_cli("charset", "build", "--dataset-dir", root, check=True)
    assert Charset.load(root).has_uppercase  # labels keep the file names' case

    save = tmp_path / "records"
    stopped = tfrecords(root, save, check=False)
    assert_user_error(stopped, "2 problem(s)", f"annotation_train.txt:{corrupt}: not a decodable image",
                      f"annotation_val.txt:{empty}: image file is empty")
    assert_nothing_written(save)

    report = tmp_path / "report.json"
    tfrecords(root, save, "--on-error", "skip", "--report", report)
    problems = json.loads(report.read_text())["problems"]
    assert [(p["file"], p["line"], p["code"], p["image"]) for p in problems] == [
        ("annotation_train.txt", corrupt, "image_corrupt", corrupt_path),
        ("annotation_val.txt", empty, "image_corrupt", empty_path)]
    manifest = manifest_of(save)
    assert manifest["source"]["layout"] == "mjsynth" and manifest["split"]["validation_from"] == "dataset"
    assert manifest["counts"] == {split: len(samples[split]) for split in SPLITS}
    assert set(manifest["source"]["annotations"]) == {*ANNOTATION.values(), "lexicon.txt"}
    for split in ("validation", "test"):
        assert [(r["image/source"].decode(), r["label/text"].decode()) for r in records(save, split)] == samples[split]
    texts = {r["label/text"].decode() for r in records(save, "train")}
    assert texts == {label for _, label in samples["train"]}
    assert any(t != t.lower() for t in texts) and any(t == t.lower() for t in texts)


def test_mjsynth_with_only_a_train_annotation_file(tmp_path):
    root = tmp_path / "mjsynth"
    samples = mjsynth_tree(root, counts=(20, 0, 0))
    assert sorted(p.name for p in root.glob("*.txt")) == ["annotation_train.txt", "lexicon.txt"]
    run_cli("charset", "build", "--dataset-dir", root, check=True)
    save = tmp_path / "records"
    tfrecords(root, save)
    manifest = manifest_of(save)
    assert manifest["counts"] == {"train": 18, "validation": 2, "test": 0}
    assert manifest["split"]["validation_from"] == "train"
    assert (save / "test_feature.tfrecords").read_bytes() == b""
    found = {r["image/source"].decode() for split in SPLITS for r in records(save, split)}
    assert found == {path for path, _ in samples["train"]}


# -- 4. the same bytes for any worker count ---------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["lmdb", "mjsynth"])
def test_same_bytes_whatever_the_worker_count(tmp_path, layout):
    root = tmp_path / layout
    if layout == "lmdb":  # more than two chunks of 64 in train, so that workers get several each
        lmdb_dataset(root, train=150, test=20)
    else:
        mjsynth_tree(root, counts=(150, 12, 20))
        run_cli("charset", "build", "--dataset-dir", root, check=True)
    digests = []
    for workers in ("1", "3"):
        save = tmp_path / f"w{workers}"
        run_cli("tfrecords", "--dataset-dir", root, "--save-dir", save, "--workers", workers, "--shards", "2",
                check=True)
        digests.append(tree_digest(save))
    assert digests[0] == digests[1]
    assert len(digests[0]) == 7 and manifest_of(tmp_path / "w1")["source"]["layout"] == layout


# -- 5. one shard per run -------------------------------------------------------------------------------------


def test_shard_runs_on_lmdb_write_what_one_run_writes(tmp_path):
    root = lmdb_dataset(tmp_path / "lmdb", train=20, test=5)
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    tfrecords(root, single, "--shards", "2", "--seed", "4")
    first = tfrecords(root, sharded, "--num-shards", "2", "--shard-index", "1", "--seed", "4")
    assert "the last shard to finish writes the manifest" in first.stderr
    assert not (sharded / "manifest.json").exists()
    second = tfrecords(root, sharded, "--num-shards", "2", "--shard-index", "0", "--seed", "4")
    assert "every shard is there: manifest written" in second.stderr
    assert tree_digest(sharded) == tree_digest(single)
    assert not list(sharded.glob(".*"))


# -- 6. bad input ---------------------------------------------------------------------------------------------

# name -> (build the dataset, what the message says, the problem (file, line, code) or None for the whole dataset)
BAD_LMDB = {
    "no_num_samples": (dict(drop=[b"num-samples"]),
                       "Train/data.mdb: no 'num-samples' key: not a text-recognition LMDB", None),
    "num_samples_not_a_number": (dict(num_samples=b"six"),
                                 "Train/data.mdb: 'num-samples' is 'six', not a decimal count", None),
    "missing_label": (dict(drop=[b"label-000000003"]),
                      "Train/data.mdb sample 3: no key label-000000003", ("Train/data.mdb", 3, "missing_key")),
    "missing_image": (dict(drop=[b"image-000000005"]),
                      "Train/data.mdb sample 5: no key image-000000005", ("Train/data.mdb", 5, "image_missing")),
    "not_an_image": (dict(replace={b"image-000000002": b"GIF89a, or so it says"}),
                     "Train/data.mdb sample 2: not a decodable image", ("Train/data.mdb", 2, "image_corrupt")),
    "label_not_utf8": (dict(replace={b"label-000000004": b"caf\xe9"}),
                       "Train/data.mdb sample 4: label is not valid UTF-8", ("Train/data.mdb", 4, "invalid_utf8")),
}


@pytest.mark.parametrize("case", sorted(BAD_LMDB))
def test_bad_lmdb(tmp_path, case):
    broken, message, problem = BAD_LMDB[case]
    root = lmdb_dataset(tmp_path / "lmdb", **broken)
    save = tmp_path / "records"
    assert_user_error(tfrecords(root, save, check=False), message)
    assert_nothing_written(save)

    report = tmp_path / "report.json"
    skipped = tfrecords(root, save, "--on-error", "skip", "--report", report, "--validation-ratio", "0", check=False)
    if problem is None:  # not a sample's problem: nothing to skip
        assert_user_error(skipped, message)
        assert_nothing_written(save)
        return
    assert skipped.returncode == 0, skipped.stderr
    assert [(p["file"], p["line"], p["code"]) for p in json.loads(report.read_text())["problems"]] == [problem]
    assert manifest_of(save)["counts"] == {"train": 5, "validation": 0, "test": 2}
    assert sorted(sources(save, "train")) == [f"Train/data.mdb#{i}" for i in range(1, 7) if i != problem[1]]


def _lexicon(root):
    return (root / "lexicon.txt").read_text().splitlines()


def _rewrite_train_line(root, line: int, edit) -> None:
    rows = (root / "annotation_train.txt").read_text().splitlines()
    rows[line - 1] = edit(*rows[line - 1].split())
    (root / "annotation_train.txt").write_text("".join(f"{row}\n" for row in rows))


def _missing_file(root):
    path = f"3100/1/7_{_lexicon(root)[3]}_3.jpg"  # the lexicon agrees: only the file is missing
    return add_annotation_line(root, "train", f"./{path} 3"), f"image not found: {path}", "image_missing"


def _lexicon_index(root):
    _rewrite_train_line(root, 3, lambda path, index: f"{path} 99999")
    return 3, f"lexicon index 99999 is out of range (lexicon.txt has {len(_lexicon(root))} words)", "lexicon_index"


def _lexicon_mismatch(root):
    lexicon = _lexicon(root)
    path, index = (root / "annotation_train.txt").read_text().splitlines()[4].split()
    other = (int(index) + 1) % len(lexicon)
    _rewrite_train_line(root, 5, lambda path, index: f"{path} {other}")
    word = path.rsplit("/", 1)[1].split("_")[1]
    return 5, f"file name says {word!r} but lexicon.txt line {other + 1} says {lexicon[other]!r}: {path[2:]}", \
        "lexicon_mismatch"


def _malformed(root):
    return add_annotation_line(root, "train", "./3000/1/100_abc_1.jpg"), \
        "expected '<image path> <lexicon index>', found './3000/1/100_abc_1.jpg'", "malformed_line"


BAD_MJSYNTH = {"missing_file": _missing_file, "lexicon_index": _lexicon_index, "lexicon_mismatch": _lexicon_mismatch,
               "malformed_line": _malformed}


@pytest.mark.parametrize("case", sorted(BAD_MJSYNTH))
def test_bad_mjsynth(tmp_path, case):
    root = tmp_path / "mjsynth"
    mjsynth_tree(root, counts=(8, 0, 2))
    line, message, code = BAD_MJSYNTH[case](root)
    Charset.from_text(string.ascii_letters + string.digits).save(root)
    save = tmp_path / "records"
    assert_user_error(tfrecords(root, save, check=False), f"annotation_train.txt:{line}: {message}")
    assert_nothing_written(save)

    report = tmp_path / "report.json"
    tfrecords(root, save, "--on-error", "skip", "--report", report, "--validation-ratio", "0")
    assert [(p["file"], p["line"], p["code"]) for p in json.loads(report.read_text())["problems"]] == [
        ("annotation_train.txt", line, code)]
    assert manifest_of(save)["counts"]["train"] == 8 - (case in ("lexicon_index", "lexicon_mismatch"))


def test_no_layout_says_what_it_looked_for(tmp_path):
    root = tmp_path / "empty"
    Charset.from_preset("digits_lower").save(root)
    (root / "images").mkdir()
    (root / "images" / "a.jpg").write_bytes(jpeg("abc"))
    save = tmp_path / "records"
    for command in (["tfrecords", "--save-dir", save], ["validate"], ["convert", "--to", "lmdb", "--out",
                                                                       tmp_path / "out"]):
        result = run_cli(*command, "--dataset-dir", root, "--workers", "1")
        assert_user_error(result, f"{root}: no dataset found: expected Train/sample.txt (seed layout), "
                                  "Train/.../data.mdb or training/.../data.mdb (LMDB), or annotation_train.txt "
                                  "(MJSynth); --layout names one")
        assert len(result.stderr.strip().splitlines()) == 1
    assert_nothing_written(save)
    assert not (tmp_path / "out").exists()


def test_forced_layout_that_does_not_fit(tmp_path, good_dataset):
    save = tmp_path / "records"
    result = tfrecords(good_dataset, save, "--layout", "lmdb", check=False)
    assert_user_error(result, f"{good_dataset}: no LMDB environment (a folder with data.mdb) under Train/ or training/")
    assert_nothing_written(save)
    result = tfrecords(good_dataset, save, "--layout", "mjsynth", check=False)
    assert_user_error(result, "no MJSynth annotation file (annotation_train.txt, annotation_val.txt, "
                              "annotation_test.txt)")
    assert_nothing_written(save)


# -- 7. s3:// input -------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_lmdb_tree_on_s3_gives_the_local_records(s3, bucket, tmp_path):
    from shadownet.cloud.storage import ObjectStore, S3Url, StorageConfig

    root = tmp_path / "release"
    release_tree(root)
    run_cli("charset", "build", "--dataset-dir", root, check=True)
    ObjectStore(StorageConfig(endpoint_url=s3.endpoint)).publish(root, S3Url(bucket, "data/release"))
    remote, local = tmp_path / "remote-records", tmp_path / "local-records"
    run_cli("tfrecords", "--dataset-dir", f"s3://{bucket}/data/release", "--save-dir", remote, "--workers", "1",
            "--s3-endpoint-url", s3.endpoint, "--scratch-dir", tmp_path / "scratch", check=True)
    tfrecords(root, local)
    remote_files, local_files = tree_digest(remote), tree_digest(local)
    assert set(remote_files) == set(local_files) and len(local_files) == 4
    assert all(remote_files[name] == local_files[name] for name in local_files if name != "manifest.json")
    manifests = [manifest_of(remote), manifest_of(local)]
    assert manifests[0]["source"].pop("dataset_dir") == f"s3://{bucket}/data/release"
    assert manifests[1]["source"].pop("dataset_dir") == str(root)
    assert manifests[0] == manifests[1]
    assert manifests[0]["counts"] == {"train": 12, "validation": 4, "test": 5}
