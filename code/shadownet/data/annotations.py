"""Reading ``Train/sample.txt`` / ``Test/sample.txt``: one ``<image path> <label>`` per line.

Rules (the seed's format, read exactly):

* The label is everything after the first space, spaces included; a line that
  contains a tab is ``<path>\\t<label>`` instead (the PaddleOCR / DTRB convention).
* The path is relative to the dataset directory, also when it starts with ``/``.
* UTF-8; blank lines are ignored; ``\\n`` and ``\\r\\n`` endings both work.

An :class:`AnnotationIndex` keeps only the byte offset and line number of each
line (12 bytes a sample), so a dataset of millions of lines is indexed without
holding its text in memory; :meth:`AnnotationIndex.read` fetches lines back.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

from ..errors import DataError

TRAIN_FILE = "Train/sample.txt"
TEST_FILE = "Test/sample.txt"


@dataclass(frozen=True, slots=True)
class Sample:
    """One annotation line: ``path`` is relative to the dataset directory, without a leading slash."""

    file: str
    line: int
    path: str
    label: str

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


class LineError(ValueError):
    """A line that cannot be read as ``<path> <label>``; ``code`` names the problem kind. ``file`` and ``line``,
    when given, say where the problem is when that is not the sample's own line (a page's ground-truth file)."""

    def __init__(self, code: str, message: str, file: str | None = None, line: int | None = None):
        super().__init__(message)
        self.code = code
        self.file, self.line = file, line


def parse_line(raw: bytes) -> tuple[str, str] | None:
    """Split one raw line (without its newline) into ``(path, label)``.

    Returns None for a blank line; raises :class:`LineError` for a malformed one.
    The label is returned exactly as written; an empty label is returned as ``""``
    (validation reports it, so that the report names its line).
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LineError("invalid_utf8", f"not valid UTF-8 (byte {exc.start})") from None
    if text.endswith("\r"):
        text = text[:-1]
    if not text.strip():
        return None
    if "\t" in text:
        path, _, label = text.partition("\t")
    else:
        path, sep, label = text.partition(" ")
        if not sep:
            raise LineError("malformed_line", f"expected '<image path> <label>', found {text[:80]!r}")
    return normalize_path(path), label


def normalize_path(path: str) -> str:
    """``/1/2/a.jpg`` -> ``1/2/a.jpg``; refuses empty paths and paths that leave the dataset."""
    stripped = path.strip().lstrip("/")
    if not stripped:
        raise LineError("malformed_line", "empty image path (expected '<image path> <label>')")
    normalized = posixpath.normpath(stripped)
    if normalized == ".." or normalized.startswith("../"):
        raise LineError("path_outside_dataset", f"image path {path!r} points outside the dataset directory")
    return normalized


def read_sample(handle: BinaryIO, name: str, offset: int, line: int) -> Sample:
    """The line at byte ``offset`` of an open annotation file (binary mode), as a Sample."""
    handle.seek(offset)
    parsed = parse_line(handle.readline().rstrip(b"\n"))
    if parsed is None:  # offsets come from an index of non-blank lines
        raise LineError("malformed_line", "blank line")
    return Sample(name, line, parsed[0], parsed[1])


class AnnotationIndex:
    """Line offsets of one annotation file; samples are read back on demand."""

    def __init__(self, dataset_dir: Path, relative_name: str):
        self.dataset_dir = Path(dataset_dir)
        self.name = relative_name
        self.path = self.dataset_dir / relative_name
        if not self.path.is_file():
            raise DataError(f"{self.path}: annotation file not found (expected {relative_name} in the dataset)")
        offsets, lines = [], []
        with open(self.path, "rb") as handle:
            offset = 0
            for number, raw in enumerate(handle, start=1):
                if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                    offset += 3
                    raw = raw[3:]
                if raw.strip():
                    offsets.append(offset)
                    lines.append(number)
                offset += len(raw)
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.line_numbers = np.asarray(lines, dtype=np.int32)

    def __len__(self) -> int:
        return len(self.offsets)

    def read(self, i: int) -> Sample:
        """The i-th non-blank line as a Sample; raises LineError when malformed."""
        with open(self.path, "rb") as handle:
            return read_sample(handle, self.name, int(self.offsets[i]), int(self.line_numbers[i]))

    def __iter__(self) -> Iterator[tuple[int, Sample | LineError]]:
        """All lines in file order: ``(i, Sample)`` or ``(i, LineError)``."""
        with open(self.path, "rb") as handle:
            for i, (offset, line) in enumerate(zip(self.offsets.tolist(), self.line_numbers.tolist(), strict=True)):
                try:
                    yield i, read_sample(handle, self.name, offset, line)
                except LineError as exc:
                    yield i, exc
