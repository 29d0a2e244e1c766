"""`synth --kind pages`: page images with their text lines in the ICDAR 2015 layout, for text detection."""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import tree_digest
from shadownet.cli import main
from shadownet.data.drawing import Renderer
from shadownet.data.pages import polygons
from shadownet.data.pages.annotations import DONT_CARE, parse_icdar_gt
from shadownet.data.pages.synth_pages import PAGE_HEIGHT, PAGE_WIDTH, icdar_gt, render_page
from shadownet.data.synth import SynthConfig, generate, holdout_mask, page_relpaths

ASCII95 = {chr(code) for code in range(32, 127)}  # the sentences kind's alphabet (the ascii95 preset)
FOLDERS = ("train_images", "train_gts", "test_images", "test_gts")


def pages(root: Path) -> list[tuple[np.ndarray, list]]:
    """Every page under ``root``: (its image as RGB, its regions as parse_icdar_gt gives them)."""
    found = []
    for split in ("train", "test"):
        for gt in sorted((root / f"{split}_gts").glob("gt_img_*.txt")):
            image = cv2.imread(str(root / f"{split}_images" / f"{gt.stem[3:]}.jpg"), cv2.IMREAD_COLOR)
            assert image is not None, gt
            found.append((image[..., ::-1], [region for _, region in parse_icdar_gt(gt.read_bytes(), gt.name)]))
    return found


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("pages") / "out"
    return out, generate(SynthConfig(out_dir=out, count=5, kind="pages", seed=7, test_ratio=0.4))


def test_layout(run):
    out, summary = run
    assert (summary["train"], summary["test"], summary["layout"]) == (3, 2, "icdar2015")
    assert summary["charset"] == "ascii95" and summary["kind"] == "pages"
    is_test = holdout_mask(7, 5, 0.4)
    expected = set()
    for index in range(5):
        expected.update(page_relpaths(index, "test" if is_test[index] else "train"))
    assert page_relpaths(0, "train") == ("train_images/img_1.jpg", "train_gts/gt_img_1.txt")
    written = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert written == expected  # no char_dict.json, no sample.txt, no temporary files
    assert sorted(p.name for p in out.iterdir()) == sorted(FOLDERS)


def test_regions_parse_fit_and_do_not_overlap(run):
    out, _ = run
    found = pages(out)
    assert len(found) == 5
    for image, regions in found:
        height, width = image.shape[:2]
        assert PAGE_WIDTH[0] <= width <= PAGE_WIDTH[1] and PAGE_HEIGHT[0] <= height <= PAGE_HEIGHT[1]
        assert sum(not r.ignore for r in regions) >= 3
        for region in regions:
            points = region.points
            assert points.shape == (4, 2) and np.all(points == np.rint(points))
            assert np.all(points >= 0) and np.all(points[:, 0] <= width - 1) and np.all(points[:, 1] <= height - 1)
            assert polygons.is_simple(points) and polygons.area(points) > 10
            assert polygons.signed_area(points) > 0  # clockwise on screen
            top_left, top_right, _, bottom_left = points
            assert top_left[0] < top_right[0] and top_left[1] < bottom_left[1]  # starting at the top-left
            text = region.text
            assert text and (text == DONT_CARE) == region.ignore
            assert set(text) <= ASCII95 and text == text.strip() and "  " not in text, text
        for a, b in itertools.combinations(regions, 2):
            assert polygons.intersection_area(a.points, b.points) == 0.0, (a.text, b.text)


def test_each_box_holds_ink(run):
    """Inside a box, the pixels differ from the paper just around it (the ring 2-4 px outside): text, not
    paper. Over 4,000 lines of 200 pages: mean difference >= 11 levels, its 90th percentile >= 28."""
    out, _ = run
    kernel = np.ones((3, 3), np.uint8)
    for image, regions in pages(out):
        grey = image.astype(np.float32).mean(axis=2)
        for region in (r for r in regions if not r.ignore):
            inside = np.zeros(grey.shape, np.uint8)
            cv2.fillPoly(inside, [region.points.astype(np.int32)], 1)
            near = cv2.dilate(inside, kernel, iterations=2)
            ring = (cv2.dilate(inside, kernel, iterations=4) > 0) & (near == 0)
            paper = float(np.median(grey[ring]))
            difference = np.abs(grey[inside > 0] - paper)
            assert difference.mean() > 8 and np.percentile(difference, 90) > 25, region.text


def test_same_seed_same_bytes_whatever_workers_other_seed_differs(tmp_path, capsys):
    generate(SynthConfig(out_dir=tmp_path / "one", count=4, kind="pages", seed=5, test_ratio=0.25))
    assert main(["synth", "--kind", "pages", "--count", "4", "--seed", "5", "--test-ratio", "0.25",
                 "--workers", "2", "--out", str(tmp_path / "two")]) == 0
    assert "wrote 3 Train and 1 Test pages (ICDAR 2015 layout) to " in capsys.readouterr().err
    first = tree_digest(tmp_path / "one")
    assert first == tree_digest(tmp_path / "two") and len(first) == 8
    generate(SynthConfig(out_dir=tmp_path / "other", count=4, kind="pages", seed=6, test_ratio=0.25))
    other = tree_digest(tmp_path / "other")
    images = [name for name in first if name.endswith(".jpg")]
    assert not any(first[name] == other.get(name) for name in images)
    assert [first[n] for n in sorted(first) if "gts" in n] != [other[n] for n in sorted(other) if "gts" in n]


def test_a_rerun_replaces_the_earlier_pages(tmp_path):
    out = tmp_path / "out"
    generate(SynthConfig(out_dir=out, count=5, kind="pages", seed=1, test_ratio=0.4))
    (out / "train_gts" / "notes.txt").write_text("mine")
    generate(SynthConfig(out_dir=out, count=2, kind="pages", seed=2, test_ratio=0.0))
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == ["train_gts/gt_img_1.txt", "train_gts/gt_img_2.txt", "train_gts/notes.txt",
                       "train_images/img_1.jpg", "train_images/img_2.jpg"]


def test_render_page_is_a_function_of_the_rng():
    renderer = Renderer.create()
    image, regions = render_page(np.random.default_rng([3, 1]), renderer)
    again, regions_again = render_page(np.random.default_rng([3, 1]), renderer)
    assert np.array_equal(image, again) and image.dtype == np.uint8 and image.shape[2] == 3
    height, width = image.shape[:2]
    assert icdar_gt(regions, width, height) == icdar_gt(regions_again, width, height)
    assert all(points.dtype == np.float32 and points.shape == (4, 2) for points, _ in regions)
