"""The csv layout, tf.crnn's datasets: one ``<image path><delimiter><label>`` row a line, read as a layout.

The dataset is a folder holding ``train.csv`` and optionally ``validation.csv`` and ``test.csv``, or one
``.csv`` file given as ``--dataset-dir`` (all of it train: ``tfrecords`` carves validation from it by
``--validation-ratio``; the charset JSONs are beside it). Rules:

* The delimiter is ``;`` unless ``--csv-delimiter`` says otherwise; a row splits at its first delimiter, so the
  label is the rest of the row, delimiters included. A field in double quotes is unquoted as a spreadsheet
  writes it (``a.png;"x;y"`` has the label ``x;y``, ``""`` is one quote).
* An image path is absolute, or relative to the folder of the CSV file.
* A header row is tolerated: the first row is skipped when its path field has no ``.``, ``/`` or ``\\``
  and names no file (``path;label``, ``image;text``, ``FILENAME,IDENTITY``).
* UTF-8 (a byte-order mark is skipped), blank lines ignored, ``\\n`` or ``\\r\\n`` endings; a label cannot
  hold a line break.
"""

from __future__ import annotations

import csv
import os
import posixpath
from pathlib import Path

from ..errors import DataError
from .annotations import AnnotationIndex, LineError, Sample
from .layout_base import Layout, LayoutOptions, Part, read_image_file, sha256_file

CSV_PARTS = (("train.csv", "train"), ("validation.csv", "validation"), ("test.csv", "test"))


def split_row(text: str, delimiter: str) -> tuple[str, str]:
    """``(image path, label)`` of one row (without its line ending); LineError when it has no delimiter."""
    try:
        fields = next(csv.reader([text], delimiter=delimiter, quotechar='"', strict=True))
    except csv.Error as exc:
        raise LineError("malformed_line", f"not a CSV row ({exc}): {text[:80]!r}") from None
    path = fields[0].strip() if fields else ""
    if len(fields) < 2 or not path:
        raise LineError("malformed_line", f"expected '<image path>{delimiter}<label>', found {text[:80]!r}")
    label = delimiter.join(fields[1:])
    return path if os.path.isabs(path) else posixpath.normpath(path), label


def decode_row(raw: bytes) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LineError("invalid_utf8", f"not valid UTF-8 (byte {exc.start})") from None
    return text[:-1] if text.endswith("\r") else text


class CsvLayout(Layout):
    kind = "csv"
    rank = 40

    @staticmethod
    def present(dataset_dir: Path) -> bool:
        path = Path(dataset_dir)
        if path.is_file():
            return path.suffix.lower() == ".csv"
        return (path / "train.csv").is_file()

    @classmethod
    def find(cls, dataset_dir: Path, options: LayoutOptions | None = None) -> "CsvLayout":
        path = Path(dataset_dir)
        if path.is_file():  # one CSV file: all of it is train
            return cls(path.parent, [Part(path.name, "train")], options)
        if not (path / "train.csv").is_file():
            raise DataError(f"{path}: no train.csv (a CSV dataset is a folder with train.csv, and optionally "
                            "validation.csv and test.csv, or one .csv file)")
        return cls(path, [Part(name, role) for name, role in CSV_PARTS if (path / name).is_file()], options)

    def index(self, part):
        index = AnnotationIndex(self.dataset_dir, part.name)
        offsets, lines = index.offsets, index.line_numbers
        if len(offsets) and self._is_header(index):
            offsets, lines = offsets[1:], lines[1:]
        return offsets, lines

    def _is_header(self, index: AnnotationIndex) -> bool:
        with open(index.path, "rb") as handle:
            handle.seek(int(index.offsets[0]))
            raw = handle.readline().rstrip(b"\n")
        try:
            path, _ = split_row(decode_row(raw), self.options.csv_delimiter)
        except LineError:
            return False
        return not any(c in path for c in "./\\") and not (self.dataset_dir / path).exists()

    def open(self, part, text_checks=False):
        return CsvReader(self.dataset_dir, part.name, self.options.csv_delimiter)

    def digests(self, part):
        return {part.name: sha256_file(self.dataset_dir / part.name)}


class CsvReader:
    def __init__(self, dataset_dir: Path, name: str, delimiter: str):
        self.dataset_dir, self.name, self.delimiter = Path(dataset_dir), name, delimiter
        self.handle = open(self.dataset_dir / name, "rb")

    def sample(self, offset: int, line: int) -> Sample:
        self.handle.seek(offset)
        path, label = split_row(decode_row(self.handle.readline().rstrip(b"\n")), self.delimiter)
        return Sample(self.name, line, path, label)

    def image(self, sample: Sample) -> bytes:
        return read_image_file(self.dataset_dir, sample.path)  # an absolute path stays itself

    def close(self) -> None:
        self.handle.close()
