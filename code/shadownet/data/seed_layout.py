"""The seed layout: ``Train/sample.txt`` and ``Test/sample.txt`` (``Validation/sample.txt`` optional), one
``<image path> <label>`` a line (``annotations``), images anywhere under the dataset folder. Read as a layout,
and written by ``convert --to seed``.
"""

from __future__ import annotations

from pathlib import Path

from .annotations import AnnotationIndex, Sample, read_sample
from .layout_base import Layout, LayoutOptions, Part, read_image_file, sha256_file

SEED_PARTS = (("Train/sample.txt", "train"), ("Validation/sample.txt", "validation"), ("Test/sample.txt", "test"))
SEED_REQUIRED = ("Train/sample.txt", "Test/sample.txt")


class SeedWriter:
    """``FOLDER/sample.txt`` and ``FOLDER/images/000000001.jpg`` ...; paths in sample.txt are relative to root."""

    def __init__(self, root: Path, folder: str):
        self.root, self.folder, self.count = root, folder, 0
        (root / folder / "images").mkdir(parents=True)
        self.lines = open(root / folder / "sample.txt", "w", encoding="utf-8", newline="\n")  # noqa: SIM115

    def add(self, image: bytes, label: str) -> None:
        self.count += 1
        relative = f"{self.folder}/images/{self.count:09d}.{extension(image)}"
        (self.root / relative).write_bytes(image)
        # A label with a tab needs the tab-separated form (the first tab splits); any other, a space.
        self.lines.write(f"{relative}{chr(9) if chr(9) in label else ' '}{label}\n")

    def close(self) -> None:
        self.lines.close()

    def abort(self) -> None:
        self.lines.close()


class SeedLayout(Layout):
    kind = "seed"
    rank = 10
    writer = SeedWriter

    @staticmethod
    def present(dataset_dir: Path) -> bool:
        return (Path(dataset_dir) / "Train" / "sample.txt").is_file()

    @classmethod
    def find(cls, dataset_dir: Path, options: LayoutOptions | None = None) -> "SeedLayout":
        parts = [Part(name, role) for name, role in SEED_PARTS
                 if name in SEED_REQUIRED or (Path(dataset_dir) / name).is_file()]
        return cls(dataset_dir, parts, options)

    def index(self, part):
        index = AnnotationIndex(self.dataset_dir, part.name)  # DataError when the file is missing
        return index.offsets, index.line_numbers

    def open(self, part, text_checks=False):
        return TextReader(self.dataset_dir, part.name)

    def digests(self, part):
        return {part.name: sha256_file(self.dataset_dir / part.name)}


class TextReader:
    """A ``<path> <label>`` annotation file; images are files under the dataset folder."""

    def __init__(self, dataset_dir: Path, name: str):
        self.dataset_dir, self.name = Path(dataset_dir), name
        self.handle = open(self.dataset_dir / name, "rb")

    def sample(self, offset: int, line: int) -> Sample:
        return read_sample(self.handle, self.name, offset, line)

    def image(self, sample: Sample) -> bytes:
        return read_image_file(self.dataset_dir, sample.path)

    def close(self) -> None:
        self.handle.close()


def extension(data: bytes) -> str:
    """The file name extension of encoded image bytes (what decodes them does not depend on it)."""
    for magic, ext in ((b"\xff\xd8", "jpg"), (b"\x89PNG", "png"), (b"BM", "bmp"), (b"GIF8", "gif"),
                       (b"II*\x00", "tif"), (b"MM\x00*", "tif")):
        if data.startswith(magic):
            return ext
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return "img"
