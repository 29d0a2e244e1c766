"""The detection task's dataset layouts: pages with their text regions, read as ``layout_base`` layouts.

=============  ========================================================  ====================================
layout         what the folder holds                                     parts (role)
=============  ========================================================  ====================================
icdar2015      ``train_images/`` + ``train_gts/gt_<image stem>.txt``      train, ``validation_*`` (optional),
               (``test_*``, ``validation_*``), or the release names       test (optional)
               ``ch4_training_images/`` + ``ch4_training_localization_
               transcription_gt/``, ``ch4_test_images/`` +
               ``Challenge4_Test_Task1_GT/``
paddle_det     ``Train/label.txt`` (``Validation/``, ``Test/``), or one    each label file present; one file:
               label file given as the dataset: ``<image path>\\t<JSON>``  train
=============  ========================================================  ====================================

A sample is a page: a :class:`PageSample`, whose ``regions`` are the parsed regions (``annotations.Region``)
and ``region_lines`` the annotation line of each, so that a region found bad once its image is open (a point
outside it) is named by file and line. Its ``label`` is empty: a page's text is in its regions.

Where problems are named: an ICDAR 2015 page is its image, found by listing the images folder; a bad line of
its ground truth is ``train_gts/gt_img_1.txt:3: ...``, an image without ground truth ``train_images/img_1.jpg:
...``, a ground-truth file without an image ``train_gts/gt_img_9.txt: ...``. A PaddleOCR page is a line of the
label file, ``Train/label.txt:5: ...``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import DataError
from ..annotations import AnnotationIndex, LineError, Sample
from ..layout_base import Layout, LayoutOptions, Part, read_image_file, sha256_file
from ..named_images import image_names
from .annotations import Region, numbered_lines, parse_icdar_line, parse_paddle_det_line

# (images folder, ground-truth folder, role), in the order parts are listed; the first pair of a role present wins.
ICDAR_FOLDERS = (
    ("train_images", "train_gts", "train"),
    ("ch4_training_images", "ch4_training_localization_transcription_gt", "train"),
    ("validation_images", "validation_gts", "validation"),
    ("test_images", "test_gts", "test"),
    ("ch4_test_images", "Challenge4_Test_Task1_GT", "test"),
)
PADDLE_PARTS = (("Train/label.txt", "train"), ("Validation/label.txt", "validation"), ("Test/label.txt", "test"))


@dataclass(frozen=True, slots=True)
class PageSample(Sample):
    """A page: ``path`` its image, ``file`` / ``line`` where its annotation is (line 0: a file of its own)."""

    regions: tuple[Region, ...] = ()
    region_lines: tuple[int, ...] = ()


def gt_name(image_name: str) -> str:
    """``img_1.jpg`` -> ``gt_img_1.txt``, ICDAR 2015's naming."""
    return f"gt_{os.path.splitext(image_name)[0]}.txt"


def _gt_names(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    with os.scandir(folder) as entries:
        return sorted(e.name for e in entries if e.name.startswith("gt_") and e.name.endswith(".txt") and e.is_file())


class Icdar2015Layout(Layout):
    kind = "icdar2015"
    task = "detection"
    rank = 5
    unit = "pages"

    @staticmethod
    def present(dataset_dir: Path) -> bool:
        root = Path(dataset_dir)
        return any(role == "train" and (root / images).is_dir() and (root / gts).is_dir()
                   for images, gts, role in ICDAR_FOLDERS)

    @classmethod
    def find(cls, dataset_dir: Path, options: LayoutOptions | None = None) -> "Icdar2015Layout":
        root, parts, roles = Path(dataset_dir), [], set()
        for images, gts, role in ICDAR_FOLDERS:
            if role not in roles and (root / images).is_dir() and (root / gts).is_dir():
                parts.append(Part(images, role))
                roles.add(role)
        if "train" not in roles:
            raise DataError(f"{root}: no ICDAR 2015 training pages (expected train_images/ and train_gts/, or "
                            "ch4_training_images/ and ch4_training_localization_transcription_gt/)")
        return cls(root, parts, options)

    def index(self, part):
        entries = _icdar_entries(self.dataset_dir, part.name)
        return np.arange(len(entries), dtype=np.int64), np.zeros(len(entries), dtype=np.int32)

    def open(self, part, text_checks=False):
        return IcdarReader(self.dataset_dir, part.name)

    def digests(self, part):
        """Of the part's pages in order: each image's name and its ground truth's bytes."""
        gts = _gt_folder(part.name)
        digest = hashlib.sha256()
        for image, gt in _icdar_entries(self.dataset_dir, part.name):
            digest.update(f"{image}\0{gt}\0".encode("utf-8", "surrogateescape"))
            if gt is not None and image is not None:
                digest.update(sha256_file(self.dataset_dir / gts / gt).encode())
        return {gts: digest.hexdigest()}


def _gt_folder(images: str) -> str:
    return next(gts for folder, gts, _ in ICDAR_FOLDERS if folder == images)


def _icdar_entries(dataset_dir: Path, images: str) -> list[tuple[str | None, str | None]]:
    """The part's pages: ``(image name, ground-truth name)`` for every image (its ground truth None when there
    is none), then ``(None, name)`` for each ground-truth file that no image has, by name."""
    names = image_names(Path(dataset_dir) / images)
    gts = set(_gt_names(Path(dataset_dir) / _gt_folder(images)))
    entries = [(name, gt_name(name) if gt_name(name) in gts else None) for name in names]
    claimed = {gt for _, gt in entries}
    return entries + [(None, gt) for gt in sorted(gts - claimed)]


class IcdarReader:
    """A page by its place among the part's entries (``_icdar_entries``)."""

    def __init__(self, dataset_dir: Path, images: str):
        self.dataset_dir, self.images, self.gts = Path(dataset_dir), images, _gt_folder(images)
        self.entries = _icdar_entries(self.dataset_dir, images)

    def sample(self, offset: int, line: int) -> PageSample:
        if offset >= len(self.entries):
            raise LineError("image_missing", f"{self.images}: the folder changed while it was read")
        image, gt = self.entries[offset]
        if image is None:
            where = f"{self.gts}/{gt}"
            raise LineError("image_missing", f"no image for this ground truth in {self.images}/ "
                                              f"({gt[3:-4]}.*)", file=where, line=0)
        path = f"{self.images}/{image}"
        if gt is None:
            raise LineError("missing_annotations", f"no ground truth {self.gts}/{gt_name(image)} for this image",
                            file=path, line=0)
        where = f"{self.gts}/{gt}"
        data = read_gt(self.dataset_dir / where, where)
        regions, lines = [], []
        for number, raw in numbered_lines(data):
            try:
                region = parse_icdar_line(raw)
            except LineError as exc:
                raise LineError(exc.code, str(exc), file=where, line=number) from None
            if region is not None:
                regions.append(region)
                lines.append(number)
        return PageSample(where, 0, path, "", tuple(regions), tuple(lines))

    def image(self, sample: Sample) -> bytes:
        return read_image_file(self.dataset_dir, sample.path)

    def close(self) -> None:
        pass


def read_gt(path: Path, where: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise LineError("unreadable_annotations", f"cannot read it: {exc.strerror}", file=where, line=0) from None


class PaddleDetLayout(Layout):
    kind = "paddle_det"
    task = "detection"
    rank = 6
    unit = "pages"

    @staticmethod
    def present(dataset_dir: Path) -> bool:
        path = Path(dataset_dir)
        if path.is_file():
            return path.suffix.lower() == ".txt" and _looks_like_paddle_det(path)
        return (path / PADDLE_PARTS[0][0]).is_file() and _looks_like_paddle_det(path / PADDLE_PARTS[0][0])

    @classmethod
    def find(cls, dataset_dir: Path, options: LayoutOptions | None = None) -> "PaddleDetLayout":
        path = Path(dataset_dir)
        if path.is_file():  # one label file: all of it is train, its image paths relative to its folder
            return cls(path.parent, [Part(path.name, "train")], options)
        if not (path / PADDLE_PARTS[0][0]).is_file():
            raise DataError(f"{path}: no {PADDLE_PARTS[0][0]} (a PaddleOCR detection dataset is a folder with "
                            "Train/label.txt, and optionally Validation/label.txt and Test/label.txt, or one "
                            "label file)")
        return cls(path, [Part(name, role) for name, role in PADDLE_PARTS if (path / name).is_file()], options)

    def index(self, part):
        index = AnnotationIndex(self.dataset_dir, part.name)
        return index.offsets, index.line_numbers

    def open(self, part, text_checks=False):
        return PaddleReader(self.dataset_dir, part.name)

    def digests(self, part):
        return {part.name: sha256_file(self.dataset_dir / part.name)}


def _looks_like_paddle_det(path: Path) -> bool:
    """Whether the first non-blank line is ``<path>\\t[...``: a detection label, not a recognition one."""
    try:
        with open(path, "rb") as handle:
            for raw in handle:
                if raw.strip():
                    _, tab, rest = raw.partition(b"\t")
                    return bool(tab) and rest.lstrip().startswith(b"[")
    except OSError:
        return False
    return False


class PaddleReader:
    def __init__(self, dataset_dir: Path, name: str):
        self.dataset_dir, self.name = Path(dataset_dir), name
        self.handle = open(self.dataset_dir / name, "rb")

    def sample(self, offset: int, line: int) -> PageSample:
        self.handle.seek(offset)
        raw = self.handle.readline().rstrip(b"\n")
        raw = raw[:-1] if raw.endswith(b"\r") else raw
        parsed = parse_paddle_det_line(raw)
        if parsed is None:  # offsets come from an index of non-blank lines
            raise LineError("malformed_line", "blank line")
        path, regions = parsed
        return PageSample(self.name, line, path, "", tuple(regions), (line,) * len(regions))

    def image(self, sample: Sample) -> bytes:
        return read_image_file(self.dataset_dir, sample.path)

    def close(self) -> None:
        self.handle.close()
