"""MJSynth (Synth90k), the 9-million-image set the original CRNN_Tensorflow trained on, read as a layout.

The tree: JPEGs such as ``3000/6/501_UNIVERSAL_82748.jpg``; ``annotation_train.txt``,
``annotation_val.txt`` and ``annotation_test.txt`` with lines ``<path> <lexicon index>``; ``lexicon.txt``
with one word per line (index 0 is the first line). The label is the word between the first and the
last underscore of the file name, case included; the lexicon entry must agree with it case-insensitively,
or the sample is bad. A split whose annotation file is absent is empty.
"""

from __future__ import annotations

import posixpath
from pathlib import Path

from ..errors import DataError
from .annotations import AnnotationIndex, LineError, Sample, normalize_path
from .layout_base import Layout, LayoutOptions, Part, read_image_file, sha256_file

ANNOTATIONS = (("annotation_train.txt", "train"), ("annotation_val.txt", "validation"),
               ("annotation_test.txt", "test"))
LEXICON = "lexicon.txt"


class MJSynthLayout(Layout):
    kind = "mjsynth"
    rank = 30

    @staticmethod
    def present(dataset_dir: Path) -> bool:
        return any((Path(dataset_dir) / name).is_file() for name, _ in ANNOTATIONS)

    @classmethod
    def find(cls, dataset_dir: Path, options: LayoutOptions | None = None) -> "MJSynthLayout":
        parts = [Part(name, role) for name, role in ANNOTATIONS if (Path(dataset_dir) / name).is_file()]
        if not parts:
            raise DataError(f"{dataset_dir}: no MJSynth annotation file ({', '.join(n for n, _ in ANNOTATIONS)})")
        return cls(dataset_dir, parts, options)

    def index(self, part):
        index = AnnotationIndex(self.dataset_dir, part.name)
        return index.offsets, index.line_numbers

    def open(self, part, text_checks=False):
        return MJSynthReader(self.dataset_dir, part.name, self.lexicon() if text_checks else None)

    def lexicon(self) -> list[str]:
        """``lexicon.txt``, read once per process that checks labels (a few MB for the real 88,172 words)."""
        cached = self.__dict__.get("_lexicon")
        if cached is None:
            path = self.dataset_dir / LEXICON
            try:
                text = path.read_bytes().decode("utf-8")
            except FileNotFoundError:
                raise DataError(f"{path}: lexicon not found (an MJSynth tree has {LEXICON} beside its "
                                "annotation files)") from None
            except UnicodeDecodeError as exc:
                line = path.read_bytes()[: exc.start].count(b"\n") + 1
                raise DataError(f"{path}:{line}: not valid UTF-8") from None
            cached = self.__dict__["_lexicon"] = [word.rstrip("\r") for word in text.split("\n")]
        return cached

    def digests(self, part):
        return {part.name: sha256_file(self.dataset_dir / part.name),
                LEXICON: sha256_file(self.dataset_dir / LEXICON)}


def word_of(path: str) -> str:
    """``3000/6/501_UNIVERSAL_82748.jpg`` -> ``UNIVERSAL``."""
    stem = posixpath.splitext(posixpath.basename(path))[0]
    first, last = stem.find("_"), stem.rfind("_")
    if first < 0 or last <= first + 1:
        raise LineError("malformed_line", f"file name {posixpath.basename(path)!r} is not "
                                          "<number>_<word>_<lexicon index>.jpg")
    return stem[first + 1 : last]


class MJSynthReader:
    def __init__(self, dataset_dir: Path, name: str, lexicon: list[str] | None):
        self.dataset_dir, self.name, self.lexicon = Path(dataset_dir), name, lexicon
        self.handle = open(self.dataset_dir / name, "rb")

    def sample(self, offset: int, line: int) -> Sample:
        self.handle.seek(offset)
        raw = self.handle.readline().rstrip(b"\r\n")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LineError("invalid_utf8", f"not valid UTF-8 (byte {exc.start})") from None
        fields = text.split()
        if len(fields) != 2 or not fields[1].isdigit():
            raise LineError("malformed_line", f"expected '<image path> <lexicon index>', found {text[:80]!r}")
        path = normalize_path(fields[0])
        word = word_of(path)
        if self.lexicon is not None:
            index = int(fields[1])
            # The last element of the split is the text after the final newline: not a word.
            size = len(self.lexicon) - (self.lexicon[-1] == "")
            if index >= size:
                raise LineError("lexicon_index", f"lexicon index {index} is out of range ({LEXICON} has "
                                                 f"{size} words): {path}")
            if self.lexicon[index].lower() != word.lower():
                raise LineError("lexicon_mismatch", f"file name says {word!r} but {LEXICON} line {index + 1} "
                                                    f"says {self.lexicon[index]!r}: {path}")
        return Sample(self.name, line, path, word)

    def image(self, sample: Sample) -> bytes:
        return read_image_file(self.dataset_dir, sample.path)

    def close(self) -> None:
        self.handle.close()
