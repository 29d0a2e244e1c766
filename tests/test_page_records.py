"""Page datasets (the detection task) through `validate` and `tfrecords`: the ICDAR 2015 and PaddleOCR
detection layouts read exactly, bad pages named by file and line, and page records that hold the regions
as written (or as clamped) and the page's own bytes. No TensorFlow but to parse the written Examples."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from shadownet.cli import main
from shadownet.data.layouts import detect
from shadownet.data.pages.annotations import parse_icdar_gt
from shadownet.data.record_format import read_file
from shadownet.data.synth import SynthConfig, generate

TRAIN, TEST = 6, 2


@pytest.fixture(scope="module")
def icdar(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pages") / "icdar"
    generate(SynthConfig(out_dir=root, count=TRAIN + TEST, kind="pages", seed=3, test_ratio=TEST / (TRAIN + TEST)))
    return root


def copy(root: Path, tmp_path: Path) -> Path:
    target = tmp_path / "dataset"
    shutil.copytree(root, target)
    return target


def as_paddle(root: Path) -> Path:
    """The same pages as PaddleOCR detection labels beside them: Train/label.txt and Test/label.txt."""
    for split, folder in (("train", "Train"), ("test", "Test")):
        lines = []
        for image in sorted((root / f"{split}_images").iterdir()):
            regions = parse_icdar_gt((root / f"{split}_gts" / f"gt_{image.stem}.txt").read_bytes(), "gt")
            entries = [{"transcription": region.text, "points": region.points.tolist()} for _, region in regions]
            lines.append(f"{split}_images/{image.name}\t{json.dumps(entries, ensure_ascii=False)}\n")
        (root / folder).mkdir()
        (root / folder / "label.txt").write_text("".join(lines), encoding="utf-8")
    shutil.rmtree(root / "train_gts")
    shutil.rmtree(root / "test_gts")
    return root


def pages_of(records: Path, split: str) -> list[dict]:
    import tensorflow as tf

    out = []
    for name in sorted(records.glob(f"{split}_feature*.tfrecords")):
        for data in read_file(name):
            f = tf.train.Example.FromString(data).features.feature
            counts = list(f["regions/count"].int64_list.value)
            flat = np.asarray(f["regions/points"].float_list.value, np.float32).reshape(-1, 2)
            out.append({
                "source": f["image/source"].bytes_list.value[0].decode(),
                "image": f["image/encoded"].bytes_list.value[0],
                "size": (f["image/width"].int64_list.value[0], f["image/height"].int64_list.value[0]),
                "points": np.split(flat, np.cumsum(counts)[:-1]) if counts else [],
                "ignore": [bool(v) for v in f["regions/ignore"].int64_list.value],
                "texts": [v.decode() for v in f["regions/text"].bytes_list.value],
            })
    return out


def test_both_layouts_are_found_and_read_exactly(icdar, tmp_path):
    layout = detect(icdar)
    assert (layout.kind, layout.task, [(p.name, p.role) for p in layout.parts]) == (
        "icdar2015", "detection", [("train_images", "train"), ("test_images", "test")])
    reader = layout.open(layout.parts[0])
    first = reader.sample(0, 0)
    expected = parse_icdar_gt((icdar / "train_gts" / "gt_img_1.txt").read_bytes(), "gt")
    assert (first.path, first.file, first.line) == ("train_images/img_1.jpg", "train_gts/gt_img_1.txt", 0)
    assert first.region_lines == tuple(number for number, _ in expected)
    for region, (_, want) in zip(first.regions, expected, strict=True):
        assert np.array_equal(region.points, want.points) and (region.text, region.ignore) == (want.text, want.ignore)
    paddle = detect(as_paddle(copy(icdar, tmp_path)))
    assert (paddle.kind, [(p.name, p.role) for p in paddle.parts]) == (
        "paddle_det", [("Train/label.txt", "train"), ("Test/label.txt", "test")])
    page = paddle.open(paddle.parts[0]).sample(*[int(a[0]) for a in paddle.index(paddle.parts[0])])
    assert (page.path, page.file, page.line) == ("train_images/img_1.jpg", "Train/label.txt", 1)
    assert [r.text for r in page.regions] == [r.text for r in first.regions]


def test_page_records_hold_the_regions_and_the_page_bytes_the_same_from_either_layout(icdar, tmp_path, capsys):
    assert main(["validate", "--dataset-dir", str(icdar)]) == 0
    assert f"ok: {TRAIN} Train and {TEST} Test pages pass every check (icdar2015 layout)" in capsys.readouterr().out
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["tfrecords", "--dataset-dir", str(icdar), "--save-dir", str(one), "--workers", "1",
                 "--validation-ratio", "0.2"]) == 0
    manifest = json.loads((one / "manifest.json").read_text())
    assert manifest["task"] == "detection" and manifest["source"]["layout"] == "icdar2015"
    assert manifest["pages"] == {"max_side": 2048, "points_outside": "clip"} and "charset" not in manifest
    assert manifest["counts"] == {"train": 5, "validation": 1, "test": TEST}
    pages = pages_of(one, "train") + pages_of(one, "validation") + pages_of(one, "test")
    assert len(pages) == TRAIN + TEST and sum(len(p["points"]) for p in pages) > 3 * len(pages)
    for page in pages:
        source = icdar / page["source"]
        assert page["image"] == source.read_bytes()  # a plain JPEG goes in as it is
        height, width = cv2.imread(str(source)).shape[:2]
        assert page["size"] == (width, height)
        stem = Path(page["source"]).stem
        split = page["source"].split("_")[0]
        regions = [r for _, r in parse_icdar_gt((icdar / f"{split}_gts" / f"gt_{stem}.txt").read_bytes(), "gt")]
        clamped = [np.clip(r.points, 0, [width - 1, height - 1]) for r in regions]  # the default policy: clip
        assert all(np.array_equal(got, want) for got, want in zip(page["points"], clamped, strict=True))
        assert page["texts"] == [r.text for r in regions] and page["ignore"] == [r.ignore for r in regions]
    assert any(page["ignore"] for page in pages) or not any("###" in p["texts"] for p in pages)
    # Workers and the layout change nothing in the records' bytes.
    paddle = as_paddle(copy(icdar, tmp_path))
    assert main(["tfrecords", "--dataset-dir", str(paddle), "--save-dir", str(two), "--workers", "2",
                 "--validation-ratio", "0.2"]) == 0
    for name in ("train_feature.tfrecords", "validation_feature.tfrecords", "test_feature.tfrecords"):
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
    assert json.loads((two / "manifest.json").read_text())["source"]["layout"] == "paddle_det"


def bad_dataset(icdar: Path, tmp_path: Path) -> Path:
    root = copy(icdar, tmp_path)
    gts = root / "train_gts"
    lines = (gts / "gt_img_2.txt").read_text(encoding="utf-8").splitlines()
    (gts / "gt_img_2.txt").write_text("\n".join([lines[0], "10,10,20,10,oops"] + lines[1:]) + "\n")
    (gts / "gt_img_3.txt").unlink()  # an image without ground truth
    (gts / "gt_img_99.txt").write_text("1,1,9,1,9,9,1,9,x\n")  # ground truth without an image
    # A bow tie (self-intersecting) on line 2 of img_4's ground truth.
    bow = (gts / "gt_img_4.txt").read_text(encoding="utf-8").splitlines()
    (gts / "gt_img_4.txt").write_text("\n".join([bow[0], "10,10,50,40,50,10,10,40,bow"] + bow[1:]) + "\n")
    (root / "train_images" / "img_5.jpg").write_bytes(b"\xff\xd8 not a picture \xff\xd9")
    return root


def test_bad_pages_are_named_by_file_and_line_and_skipped_on_request(icdar, tmp_path, capsys):
    root = bad_dataset(icdar, tmp_path)
    report = tmp_path / "report.json"
    assert main(["validate", "--dataset-dir", str(root), "--report", str(report)]) == 1
    err = capsys.readouterr().err
    assert "5 problem(s) in dataset" in err, err
    assert "train_gts/gt_img_2.txt:2: expected 8 coordinates x1,y1,...,x4,y4 before the transcription" in err
    assert "train_images/img_3.jpg: no ground truth train_gts/gt_img_3.txt for this image" in err
    assert "train_gts/gt_img_99.txt: no image for this ground truth in train_images/ (img_99.*)" in err
    assert "train_gts/gt_img_4.txt:2: the region's outline crosses or touches itself (train_images/img_4.jpg)" in err
    assert "not a decodable image" in err and "train_images/img_5.jpg" in err
    assert "Traceback" not in err
    kinds = json.loads(report.read_text())["problems_by_kind"]
    assert kinds == {"image_corrupt": 1, "image_missing": 1, "missing_annotations": 1, "self_intersecting": 1,
                     "too_few_coordinates": 1}
    out = tmp_path / "records"
    assert main(["tfrecords", "--dataset-dir", str(root), "--save-dir", str(out), "--on-error", "skip",
                 "--validation-ratio", "0"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["skipped"] == 5 and manifest["counts"]["train"] == TRAIN - 4
    spoiled = {"img_2.jpg", "img_3.jpg", "img_4.jpg", "img_5.jpg"}
    assert {p["source"] for p in pages_of(out, "train")} == {
        f"train_images/{path.name}" for path in (root / "train_images").iterdir() if path.name not in spoiled}


def test_points_outside_the_page_are_clamped_or_refused(icdar, tmp_path, capsys):
    root = copy(icdar, tmp_path)
    for split in ("train", "test"):
        shutil.rmtree(root / f"{split}_images")
        shutil.rmtree(root / f"{split}_gts")
        (root / f"{split}_images").mkdir()
        (root / f"{split}_gts").mkdir()
        cv2.imwrite(str(root / f"{split}_images" / "page.png"), np.full((60, 100, 3), 255, np.uint8))
        (root / f"{split}_gts" / "gt_page.txt").write_text("\ufeff-5,10,40,10,40,30,-5,30,a,b\n"
                                                           "50,5,90,5,90,20,50,20,###\n")
    assert main(["validate", "--dataset-dir", str(root), "--points-outside", "refuse"]) == 1
    assert "train_gts/gt_page.txt:1: 2 of 4 point(s) outside the 100x60 image (train_images/page.png)" in \
        capsys.readouterr().err
    out = tmp_path / "records"
    assert main(["tfrecords", "--dataset-dir", str(root), "--save-dir", str(out), "--validation-ratio", "0"]) == 0
    (page,) = pages_of(out, "train")
    assert page["texts"] == ["a,b", "###"] and page["ignore"] == [False, True]
    assert page["points"][0].tolist() == [[0, 10], [40, 10], [40, 30], [0, 30]]
    assert page["image"] == (root / "train_images" / "page.png").read_bytes()


def test_paddle_label_errors_and_page_datasets_elsewhere(icdar, tmp_path, capsys):
    root = as_paddle(copy(icdar, tmp_path))
    label = root / "Train" / "label.txt"
    lines = label.read_text(encoding="utf-8").splitlines()
    lines[1] = lines[1].split("\t")[0] + '\t[{"transcription": "x", "points": [[0, 0], [5, 0], [5, 5]]}]'
    label.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["validate", "--dataset-dir", str(root)]) == 1
    err = capsys.readouterr().err
    assert "Train/label.txt:2: region 0: 3 point(s); a region needs 4 or more" in err
    # A charset, a conversion to a text-line layout, or a recogniser's training: each says what pages are.
    assert main(["charset", "build", "--dataset-dir", str(root)]) == 1
    assert "pages with text regions (paddle_det layout), which need no charset" in capsys.readouterr().err
    assert main(["convert", "--dataset-dir", str(root), "--to", "seed", "--out", str(tmp_path / "seed")]) == 1
    assert "convert writes text-line datasets from text-line datasets only" in capsys.readouterr().err
    from shadownet.errors import DataError
    from shadownet.learn.read_records import read_manifest

    records = tmp_path / "records"
    assert main(["tfrecords", "--dataset-dir", str(icdar), "--save-dir", str(records)]) == 0
    with pytest.raises(DataError, match="records of the detection task"):
        read_manifest(records)


def test_a_page_example_is_the_bytes_tensorflow_serialises_and_parses():
    import tensorflow as tf

    from shadownet.data.record_format import page_example

    points = [[(0.5, 1.0), (9.0, 1.0), (9.0, 4.25), (0.5, 4.25)], [(1, 1), (5, 1), (6, 3), (5, 5), (1, 5)]]
    ours = page_example(b"\x89PNG..", "png", 10, 6, "p/a b.png", points, [False, True], ["a,b", "###"])

    def feature(**kind):
        return tf.train.Feature(**kind)

    theirs = tf.train.Example(features=tf.train.Features(feature={
        "image/encoded": feature(bytes_list=tf.train.BytesList(value=[b"\x89PNG.."])),
        "image/format": feature(bytes_list=tf.train.BytesList(value=[b"png"])),
        "image/height": feature(int64_list=tf.train.Int64List(value=[6])),
        "image/source": feature(bytes_list=tf.train.BytesList(value=[b"p/a b.png"])),
        "image/width": feature(int64_list=tf.train.Int64List(value=[10])),
        "regions/count": feature(int64_list=tf.train.Int64List(value=[4, 5])),
        "regions/ignore": feature(int64_list=tf.train.Int64List(value=[0, 1])),
        "regions/points": feature(float_list=tf.train.FloatList(value=[v for r in points for p in r for v in p])),
        "regions/text": feature(bytes_list=tf.train.BytesList(value=[b"a,b", b"###"])),
    }))
    assert tf.train.Example.FromString(ours) == theirs
    assert ours == theirs.SerializeToString(deterministic=True)
    empty = page_example(b"x", "jpeg", 3, 3, "e.jpg", [], [], [])
    parsed = tf.io.parse_single_example(empty, {"regions/points": tf.io.VarLenFeature(tf.float32),
                                                "regions/count": tf.io.VarLenFeature(tf.int64),
                                                "regions/text": tf.io.VarLenFeature(tf.string)})
    assert [int(tf.size(parsed[k].values)) for k in ("regions/points", "regions/count", "regions/text")] == [0, 0, 0]
