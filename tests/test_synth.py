"""The synthetic-data stage: layout, determinism, splits, labels and image sizes."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from shadownet.data.charset import Charset
from shadownet.data.synth import (
    KINDS,
    SynthConfig,
    generate,
    holdout_mask,
    image_relpath,
    render,
)
from shadownet.errors import ShadownetError

PRESET = Charset.from_preset("digits_lower")


def tree_hashes(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def read_samples(root: Path, split: str) -> list[tuple[str, str]]:
    lines = (root / split / "sample.txt").read_text(encoding="utf-8").splitlines()
    return [tuple(line.split(" ")) for line in lines]


@pytest.fixture(scope="module")
def lines_run(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("lines") / "out"
    summary = generate(SynthConfig(out_dir=out, count=50, kind="lines", seed=3, test_ratio=0.2))
    return out, summary


def test_layout_and_summary(lines_run):
    out, summary = lines_run
    assert summary["train"] == 40 and summary["test"] == 10
    assert summary["charset"] == "digits_lower"
    train, test = read_samples(out, "Train"), read_samples(out, "Test")
    assert len(train) == 40 and len(test) == 10
    paths = [path for path, _ in train + test]
    assert sorted(paths) == [image_relpath(i) for i in range(50)]
    # Lines are in index order within each split.
    assert [p for p, _ in train] == sorted(p for p, _ in train)
    assert image_relpath(123) == "/images/000/000123.jpg"
    assert image_relpath(1234567) == "/images/1234/1234567.jpg"
    for path in paths:
        assert (out / path.lstrip("/")).is_file()
    # No temp files left behind.
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]


def test_dictionaries_are_the_preset(lines_run):
    out, _ = lines_run
    assert Charset.load(out) == PRESET
    assert Charset.load(out).sha256 == PRESET.sha256


def test_lines_labels_and_images(lines_run):
    out, _ = lines_run
    samples = read_samples(out, "Train") + read_samples(out, "Test")
    for path, label in samples:
        assert label and not PRESET.unknown(label.lower()), label
        assert re.fullmatch(r"[a-z]+|[A-Z][a-z]*|[A-Z]+|[0-9]{1,7}", label), label
        image = cv2.imread(str(out / path.lstrip("/")), cv2.IMREAD_UNCHANGED)
        assert image is not None and image.ndim == 3 and image.shape[2] == 3
        assert 32 <= image.shape[0] <= 64
        assert image.shape[1] >= 8


def test_same_seed_same_bytes_whatever_workers(tmp_path):
    config = SynthConfig(out_dir=tmp_path / "one", count=40, kind="lines", seed=11, test_ratio=0.25)
    generate(config)
    two = SynthConfig(out_dir=tmp_path / "two", count=40, kind="lines", seed=11, test_ratio=0.25, workers=2)
    progress = []
    generate(two, progress=lambda done, total: progress.append((done, total)))
    first, second = tree_hashes(tmp_path / "one"), tree_hashes(tmp_path / "two")
    assert len(first) == 40 + 4
    assert first == second
    assert progress[-1] == (40, 40)
    assert [done for done, _ in progress] == sorted(done for done, _ in progress)


def test_rerun_is_identical_and_other_seed_differs(tmp_path):
    config = SynthConfig(out_dir=tmp_path / "a", count=30, kind="captcha", seed=5)
    generate(config)
    before = tree_hashes(tmp_path / "a")
    generate(config)  # over its own earlier output
    assert tree_hashes(tmp_path / "a") == before
    generate(SynthConfig(out_dir=tmp_path / "b", count=30, kind="captcha", seed=6))
    other = tree_hashes(tmp_path / "b")
    images = [name for name in before if name.startswith("images")]
    assert sum(before[name] != other[name] for name in images) == len(images)
    labels = [(tmp_path / run / "Train" / "sample.txt").read_text() for run in ("a", "b")]
    assert labels[0] != labels[1]


def test_captcha(tmp_path):
    summary = generate(SynthConfig(out_dir=tmp_path, count=30, kind="captcha", seed=1, test_ratio=0.1))
    assert (summary["train"], summary["test"]) == (27, 3)
    for path, label in read_samples(tmp_path, "Train") + read_samples(tmp_path, "Test"):
        assert re.fullmatch(r"[0-9a-z]{4}", label), label
        image = cv2.imread(str(tmp_path / path.lstrip("/")), cv2.IMREAD_UNCHANGED)
        assert image.shape == (40, 120, 3)


def test_digits(tmp_path):
    summary = generate(SynthConfig(out_dir=tmp_path, count=30, kind="digits", seed=2, test_ratio=0.0))
    assert (summary["train"], summary["test"]) == (30, 0)
    assert (tmp_path / "Test" / "sample.txt").read_text() == ""
    for path, label in read_samples(tmp_path, "Train"):
        assert re.fullmatch(r"[0-9]{3,8}", label), label
        image = cv2.imread(str(tmp_path / path.lstrip("/")), cv2.IMREAD_UNCHANGED)
        assert image.ndim == 3 and 32 <= image.shape[0] <= 48


@pytest.mark.parametrize("kind", KINDS)
def test_render_is_a_function_of_the_rng(kind):
    image, label = render(kind, np.random.default_rng([9, 4]))
    again, label_again = render(kind, np.random.default_rng([9, 4]))
    assert label == label_again and image.dtype == np.uint8 and image.ndim == 3
    assert np.array_equal(image, again)


@pytest.mark.parametrize("kind", KINDS)
def test_text_contrasts_with_its_background(kind):
    # Legibility proxy: the image spans a wide range of brightness (ink vs ground).
    for index in range(20):
        image, _ = render(kind, np.random.default_rng([0, index]))
        grey = image.astype(np.float32).mean(axis=2)
        assert np.percentile(grey, 99) - np.percentile(grey, 1) > 60


def test_holdout_mask_counts():
    for count, ratio in [(1, 0.5), (10, 0.0), (10, 0.99), (1000, 0.1), (7, 0.3)]:
        mask = holdout_mask(4, count, ratio)
        assert mask.shape == (count,)
        assert mask.sum() == min(round(count * ratio), count - 1)
    assert np.array_equal(holdout_mask(4, 100, 0.1), holdout_mask(4, 100, 0.1))
    assert not np.array_equal(holdout_mask(4, 100, 0.1), holdout_mask(5, 100, 0.1))


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"count": 0}, "count"),
        ({"count": -3}, "count"),
        ({"kind": "handwriting"}, "kind"),
        ({"test_ratio": 1.0}, "ratio"),
        ({"test_ratio": -0.1}, "ratio"),
        ({"workers": 0}, "workers"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_arguments(tmp_path, changes, message):
    config = SynthConfig(**{"out_dir": tmp_path / "out", "count": 5, **changes})
    with pytest.raises(ShadownetError, match=message):
        generate(config)
    assert not (tmp_path / "out").exists()


def test_bad_font_files(tmp_path):
    missing = tmp_path / "missing.ttf"
    with pytest.raises(ShadownetError, match="missing.ttf"):
        generate(SynthConfig(out_dir=tmp_path / "out", count=5, fonts=(missing,)))
    garbage = tmp_path / "garbage.ttf"
    garbage.write_bytes(b"not a font at all")
    with pytest.raises(ShadownetError, match="garbage.ttf"):
        generate(SynthConfig(out_dir=tmp_path / "out", count=5, fonts=(garbage,)))
    assert not (tmp_path / "out").exists()


def test_render_rejects_unknown_kind():
    with pytest.raises(ShadownetError):
        render("handwriting", np.random.default_rng(0))


def test_extra_font_file_is_used(tmp_path):
    from PIL import ImageFont

    font_file = tmp_path / "extra.ttf"
    font_file.write_bytes(ImageFont.load_default(size=20).font_bytes)
    config = SynthConfig(out_dir=tmp_path / "out", count=12, kind="lines", seed=1, fonts=(font_file,))
    assert generate(config)["train"] + 1 == 12
    plain = generate(SynthConfig(out_dir=tmp_path / "plain", count=12, kind="lines", seed=1))
    assert plain["train"] == 11
    # The extra font is one more choice, so the random streams (and bytes) change.
    assert tree_hashes(tmp_path / "out") != tree_hashes(tmp_path / "plain")
