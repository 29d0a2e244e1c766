"""The named layout, the captcha trainers' datasets (and Kaggle's captcha sets): image files whose names are their
labels, read as a layout.

``abcd.png`` and ``abcd_17.png`` both hold ``abcd``: the label is the file name up to its first ``_``, or up to
its extension. Image files are those directly in a folder (not in its subfolders) whose extension is one of
``IMAGE_EXTENSIONS``, in any case; other files (the charset JSONs) and hidden ones are not samples.

Splits: when the folder has a ``Train/`` subfolder of images, ``Train/``, ``Test/`` and ``Validation/`` are the
splits (each optional but Train). Otherwise the images in the folder itself are split: ``TEST_FRACTION`` of them,
chosen with the fixed seed ``SPLIT_SEED`` from the names in sorted order, are the test split (the same files
whatever ``--seed`` says), the rest train (``tfrecords`` carves validation from it by ``--validation-ratio``).

A sample is its file, so messages name the file alone (``Train/abcd_17.png: ...``: its line is 0).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from ..errors import DataError
from .annotations import LineError, Sample
from .layout_base import Layout, LayoutOptions, Part, read_image_file

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
FOLDERS = (("Train", "train"), ("Validation", "validation"), ("Test", "test"))
TEST_FRACTION = 0.1
SPLIT_SEED = 0
# Parts of a folder split by TEST_FRACTION: both are the folder itself, named by their role.
SPLIT_PARTS = (("(train)", "train"), ("(test)", "test"))

_listings: dict[str, tuple[int, list[str]]] = {}  # folder -> (its mtime, its image names), per process


def label_of(name: str) -> str:
    """``abcd_17.png`` -> ``abcd``; ``abcd.png`` -> ``abcd``."""
    return os.path.splitext(name)[0].split("_", 1)[0]


def image_names(folder: Path) -> list[str]:
    """The image files directly in ``folder``, sorted by name. Listed once per process while the folder is
    unchanged: each worker reads a chunk's samples by their place in this list."""
    key = str(folder)
    mtime = os.stat(folder).st_mtime_ns
    cached = _listings.get(key)
    if cached is None or cached[0] != mtime:
        with os.scandir(folder) as entries:
            names = sorted(entry.name for entry in entries if not entry.name.startswith(".")
                           and entry.name.lower().endswith(IMAGE_EXTENSIONS) and entry.is_file())
        cached = _listings[key] = (mtime, names)
    return cached[1]


def _has_images(folder: Path) -> bool:
    return folder.is_dir() and bool(image_names(folder))


def held_out_rows(count: int) -> np.ndarray:
    """Which of ``count`` sorted names are the test split of a folder without subfolders (sorted)."""
    return np.sort(np.random.default_rng(SPLIT_SEED).permutation(count)[: int(round(TEST_FRACTION * count))])


class NamedLayout(Layout):
    kind = "named"
    rank = 50
    unit = "images"

    @staticmethod
    def present(dataset_dir: Path) -> bool:
        return _has_images(Path(dataset_dir) / "Train") or _has_images(Path(dataset_dir))

    @classmethod
    def find(cls, dataset_dir: Path, options: LayoutOptions | None = None) -> "NamedLayout":
        root = Path(dataset_dir)
        if _has_images(root / "Train"):
            return cls(root, [Part(folder, role) for folder, role in FOLDERS if (root / folder).is_dir()], options)
        if _has_images(root):
            return cls(root, [Part(name, role) for name, role in SPLIT_PARTS], options)
        raise DataError(f"{root}: no image files named by their labels ({', '.join(IMAGE_EXTENSIONS)}) in the "
                        "folder or in Train/")

    def _folder(self, part: Part) -> str:
        """The part's folder relative to the dataset: ``Train``, or "" for the dataset folder itself."""
        return "" if part.name in dict(SPLIT_PARTS) else part.name

    def index(self, part):
        names = image_names(self.dataset_dir / self._folder(part))
        rows = np.arange(len(names), dtype=np.int64)
        if part.name in dict(SPLIT_PARTS):
            test = np.zeros(len(names), dtype=bool)
            test[held_out_rows(len(names))] = True
            rows = rows[test] if part.role == "test" else rows[~test]
        return rows, np.zeros(len(rows), dtype=np.int32)

    def open(self, part, text_checks=False):
        return NamedReader(self.dataset_dir, self._folder(part))

    def digests(self, part):
        """Of the part's file names in order (its labels)."""
        reader = self.open(part)
        offsets, _ = self.index(part)
        digest = hashlib.sha256()
        for offset in offsets.tolist():
            digest.update(reader.names[offset].encode("utf-8", "surrogateescape") + b"\n")
        return {part.name: digest.hexdigest()}


class NamedReader:
    """A folder of images; a sample's offset is its place among the folder's sorted image names."""

    def __init__(self, dataset_dir: Path, folder: str):
        self.dataset_dir, self.folder = Path(dataset_dir), folder
        self.names = image_names(self.dataset_dir / folder)

    def sample(self, offset: int, line: int) -> Sample:
        if offset >= len(self.names):
            raise LineError("image_missing", f"{self.folder or '.'}: the folder changed while it was read")
        path = f"{self.folder}/{self.names[offset]}" if self.folder else self.names[offset]
        return Sample(path, 0, path, label_of(self.names[offset]))

    def image(self, sample: Sample) -> bytes:
        return read_image_file(self.dataset_dir, sample.path)

    def close(self) -> None:
        pass
