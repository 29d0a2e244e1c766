"""``shadownet convert``: a dataset in another layout, sample for sample, written atomically."""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path

import cv2
import lmdb
import numpy as np
import pytest

from conftest import interrupt, run_cli, start_cli, text_image, tree_digest, words
from shadownet.data import convert, lmdb_tree
from shadownet.data.charset import Charset

FOLDERS = ("Train", "Validation", "Test")


def encoded(text: str, ext: str = ".jpg", height: int = 32, seed: int = 0) -> bytes:
    ok, buf = cv2.imencode(ext, text_image(text, height, seed))
    assert ok
    return buf.tobytes()


def write_env(folder: Path, samples, replace=None) -> Path:
    """An LMDB environment as the benchmark releases write it, with the lmdb package (not shadownet)."""
    folder.mkdir(parents=True, exist_ok=True)
    env = lmdb.open(str(folder), map_size=1 << 28)
    with env.begin(write=True) as txn:
        for i, (image, label) in enumerate(samples, 1):
            txn.put(b"image-%09d" % i, image)
            txn.put(b"label-%09d" % i, label.encode("utf-8"))
        txn.put(b"num-samples", str(len(samples)).encode())
        for key, value in (replace or {}).items():
            txn.put(key, value)
    env.close()
    return folder


def read_env(folder: Path) -> list[tuple[str, bytes]]:
    """(label, image bytes) of every sample, in order, read with the lmdb package."""
    env = lmdb.open(str(folder), readonly=True, lock=False)
    try:
        with env.begin() as txn:
            count = int(txn.get(b"num-samples"))
            return [(txn.get(b"label-%09d" % i).decode("utf-8"), txn.get(b"image-%09d" % i))
                    for i in range(1, count + 1)]
    finally:
        env.close()


def lmdb_dataset(root: Path, counts=(10, 3, 4), labels=None, charset: Charset | None = None) -> dict:
    """Train/Validation/Test environments of JPEGs and PNGs; returns the samples per folder."""
    (charset or Charset.from_preset("digits_lower")).save(root)
    labels = iter(labels or words(sum(counts), seed=4))
    samples = {}
    n = 0
    for folder, count in zip(FOLDERS, counts, strict=True):
        samples[folder] = []
        for _ in range(count):
            label = next(labels)
            samples[folder].append((encoded(label.strip() or "x", ".png" if n % 4 == 1 else ".jpg",
                                            32 + n % 5, seed=n), label))
            n += 1
        if count:
            write_env(root / folder, samples[folder])
    return samples


def convert_cli(dataset, to, out, *flags, check=True):
    return run_cli("convert", "--dataset-dir", dataset, "--to", to, "--out", out, "--workers", "1", *flags,
                   check=check)


def as_samples(samples):
    return [(label, image) for image, label in samples]


# -- 1. LMDB -> seed -> LMDB -------------------------------------------------------------------------------------


def test_lmdb_to_seed_to_lmdb_keeps_every_sample(tmp_path):
    source = tmp_path / "lmdb"
    samples = lmdb_dataset(source)
    seed, back = tmp_path / "seed", tmp_path / "back"
    result = convert_cli(source, "seed", seed)
    assert "wrote 10 Train, 3 Validation, 4 Test samples as seed" in result.stderr

    assert sorted(p.name for p in seed.iterdir()) == ["Test", "Train", "Validation", "char_dict.json", "ord_map.json"]
    for folder in FOLDERS:
        lines = (seed / folder / "sample.txt").read_text(encoding="utf-8").splitlines()
        assert len(lines) == len(samples[folder])
        for k, (line, (image, label)) in enumerate(zip(lines, samples[folder], strict=True), 1):
            path, written = line.split(" ", 1)
            extension = "png" if image.startswith(b"\x89PNG") else "jpg"
            assert path == f"{folder}/images/{k:09d}.{extension}" and written == label
            assert (seed / path).read_bytes() == image  # the original bytes, not re-encoded
        assert sorted(p.name for p in (seed / folder / "images").iterdir()) == sorted(
            line.split(" ", 1)[0].rsplit("/", 1)[1] for line in lines)
    for name in ("char_dict.json", "ord_map.json"):
        assert (seed / name).read_bytes() == (source / name).read_bytes()
    assert run_cli("validate", "--dataset-dir", seed, "--workers", "1").returncode == 0

    convert_cli(seed, "lmdb", back)
    assert sorted(p.name for p in back.iterdir()) == ["Test", "Train", "Validation", "char_dict.json", "ord_map.json"]
    for folder in FOLDERS:
        assert read_env(back / folder) == as_samples(samples[folder]), folder
        assert sorted(p.name for p in (back / folder).iterdir()) == ["data.mdb"]  # no lock file left


# -- 2. MJSynth -> LMDB ------------------------------------------------------------------------------------------


def test_mjsynth_to_lmdb_keeps_its_validation_split(tmp_path):
    root = tmp_path / "mjsynth"
    lexicon = sorted(set(words(20, seed=2)))
    samples, n = {}, 0
    for folder, name, count in (("Train", "annotation_train.txt", 7), ("Validation", "annotation_val.txt", 3),
                                ("Test", "annotation_test.txt", 2)):
        lines, samples[folder] = [], []
        for _ in range(count):
            index = (n * 3) % len(lexicon)
            label = lexicon[index].upper() if n % 2 else lexicon[index]
            path = root / f"{2000 + n // 3}/{n % 3}/{n}_{label}_{index}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(encoded(label, seed=n))
            lines.append(f"./{path.relative_to(root).as_posix()} {index}\n")
            samples[folder].append((label, path.read_bytes()))
            n += 1
        (root / name).write_text("".join(lines))
    (root / "lexicon.txt").write_text("".join(f"{word}\n" for word in lexicon))
    run_cli("charset", "build", "--dataset-dir", root, check=True)

    out = tmp_path / "out"
    result = convert_cli(root, "lmdb", out)
    assert "mjsynth layout" in result.stderr
    assert "wrote 7 Train, 3 Validation, 2 Test samples as lmdb" in result.stderr
    assert (out / "Validation" / "data.mdb").is_file()
    for folder in FOLDERS:
        assert read_env(out / folder) == samples[folder]  # labels with their case, the JPEGs as they were


# -- 3. bad samples --------------------------------------------------------------------------------------------


def test_bad_samples_stop_the_conversion_or_are_left_out(tmp_path):
    root = tmp_path / "lmdb"
    samples = lmdb_dataset(root, counts=(8, 0, 3))
    write_env(root / "Train", samples["Train"], replace={b"image-000000003": b"\xff\xd8 not a JPEG \xff\xd9",
                                                         b"label-000000006": "naïve".encode()})
    out, report = tmp_path / "out", tmp_path / "report.json"
    stopped = convert_cli(root, "lmdb", out, check=False)
    assert stopped.returncode == 1 and "Traceback" not in stopped.stderr
    # A label problem stops the run before any image is opened.
    assert "1 problem(s)" in stopped.stderr
    assert "Train/data.mdb sample 6: character(s) not in the charset: 'ï' (U+00EF)" in stopped.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lmdb"]  # no OUT, no .out.partial

    # Only the image: found once the new layout is being written, which is then thrown away.
    images_only = tmp_path / "images-only"
    lmdb_dataset(images_only, counts=(8, 0, 3))
    write_env(images_only / "Train", samples["Train"], replace={b"image-000000003": b"\xff\xd8 not a JPEG \xff\xd9"})
    stopped = convert_cli(images_only, "seed", out, check=False)
    assert stopped.returncode == 1 and "Traceback" not in stopped.stderr
    assert "1 problem(s)" in stopped.stderr and "Train/data.mdb sample 3: not a decodable image" in stopped.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images-only", "lmdb"]
    shutil.rmtree(images_only)

    convert_cli(root, "lmdb", out, "--on-error", "skip", "--report", report)
    assert read_env(out / "Train") == [s for i, s in enumerate(as_samples(samples["Train"]), 1) if i not in (3, 6)]
    assert read_env(out / "Test") == as_samples(samples["Test"])
    assert not (out / "Validation").exists()
    problems = json.loads(report.read_text())["problems"]
    assert [(p["file"], p["line"], p["code"]) for p in problems] == [
        ("Train/data.mdb", 3, "image_corrupt"), ("Train/data.mdb", 6, "unknown_character")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lmdb", "out", "report.json"]


# -- 4. an existing OUT -------------------------------------------------------------------------------------------


def test_out_that_exists_is_not_touched(tmp_path):
    root = tmp_path / "lmdb"
    lmdb_dataset(root, counts=(4, 0, 2))
    out = tmp_path / "out"
    (out / "Train").mkdir(parents=True)
    (out / "Train" / "sample.txt").write_text("keep me\n")
    before = tree_digest(tmp_path)
    result = convert_cli(root, "seed", out, check=False)
    assert result.returncode == 2, result.stderr
    assert f"shadownet: error: {out}: exists and is not an empty folder; convert writes a new one" in result.stderr
    assert "Traceback" not in result.stderr
    assert tree_digest(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lmdb", "out"]

    empty = tmp_path / "empty"
    empty.mkdir()
    convert_cli(root, "seed", empty)  # an empty folder is as good as none
    assert (empty / "Train" / "sample.txt").is_file()


# -- 5. labels with tabs and spaces -------------------------------------------------------------------------------

AWKWARD = ["tab\tinside", " leading", "trailing ", "two  spaces", "\ttab first", "plain", "a b\tc d"]


def test_labels_with_tabs_and_spaces_survive_the_seed_layout(tmp_path):
    root = tmp_path / "lmdb"
    labels = AWKWARD + ["line\nbreak", "ok"]
    lmdb_dataset(root, counts=(len(labels) - 1, 0, 1), labels=labels)
    for name in ("char_dict.json", "ord_map.json"):
        (root / name).unlink()
    run_cli("charset", "build", "--dataset-dir", root, check=True)
    assert {" ", "\t", "\n"} <= set(Charset.load(root).characters)
    original, test = read_env(root / "Train"), read_env(root / "Test")

    seed, back, report = tmp_path / "seed", tmp_path / "back", tmp_path / "report.json"
    stopped = convert_cli(root, "seed", seed, check=False)
    assert stopped.returncode == 1 and "Traceback" not in stopped.stderr
    assert "Train/data.mdb sample 8: label 'line\\nbreak' holds a line break" in stopped.stderr
    assert not seed.exists()
    convert_cli(root, "seed", seed, "--on-error", "skip", "--report", report)
    assert [(p["line"], p["code"]) for p in json.loads(report.read_text())["problems"]] == [(8, "unstorable_label")]
    raw = (seed / "Train" / "sample.txt").read_bytes().decode("utf-8").split("\n")
    assert raw[0] == "Train/images/000000001.jpg\ttab\tinside"  # a tab in the label: the tab-separated form
    assert raw[1].endswith(".png  leading") and raw[2].endswith(".jpg trailing ")

    convert_cli(seed, "lmdb", back)
    assert read_env(back / "Train") == original[:7]
    assert [label for label, _ in read_env(back / "Train")] == AWKWARD
    assert read_env(back / "Test") == test and test[0][0] == "ok"


# -- 6. interrupted ----------------------------------------------------------------------------------------------


def test_a_failure_midway_leaves_nothing(tmp_path, monkeypatch):
    root = tmp_path / "lmdb"
    lmdb_dataset(root, counts=(10, 0, 2))
    added, add = [], lmdb_tree.LmdbWriter.add

    def add_then_fail(self, image, label):
        added.append(label)
        if len(added) == 5:
            raise RuntimeError("disk on fire")
        add(self, image, label)

    monkeypatch.setattr(lmdb_tree.LmdbWriter, "add", add_then_fail)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="disk on fire"):
        convert.run(convert.ConvertConfig(root, out, "lmdb", workers=1))
    assert len(added) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lmdb"]


def big_dataset(root: Path, count: int) -> None:
    """``count`` copies of one wide JPEG: quick to write, about a millisecond each to check."""
    Charset.from_preset("digits_lower").save(root)
    gradient = np.linspace(0, 255, 6000)[None, :, None] * np.ones((63, 1, 3))
    image = cv2.imencode(".jpg", gradient.astype(np.uint8))[1].tobytes()
    for folder, n in (("Train", count), ("Test", 10)):
        folder_path = root / folder
        folder_path.mkdir(parents=True)
        env = lmdb.open(str(folder_path), map_size=1 << 30)
        with env.begin(write=True) as txn:
            for i in range(1, n + 1):
                txn.put(b"image-%09d" % i, image)
                txn.put(b"label-%09d" % i, b"abc%d" % (i % 10))
            txn.put(b"num-samples", str(n).encode())
        env.close()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_interrupted_conversion_leaves_no_out(tmp_path, sig):
    root, out = tmp_path / "big", tmp_path / "out"
    big_dataset(root, 2500)
    args = ["convert", "--dataset-dir", root, "--to", "lmdb", "--out", out, "--workers", "1"]
    process = start_cli(*args)
    partial = tmp_path / ".out.partial"
    deadline = time.monotonic() + 30
    while not (partial / "Train" / "data.mdb").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    interrupt(process, sig, "the conversion")
    process.communicate(timeout=30)
    assert process.returncode != 0
    assert not out.exists()
    if sig != signal.SIGKILL:  # a signal that can be caught also removes the partial folder
        assert not partial.exists()

    run_cli(*args, check=True)  # a rerun starts afresh
    assert not partial.exists()
    assert len(read_env(out / "Train")) == 2500
