"""What every dataset layout is made of, and the registry that lists them: a leaf module, imported by each layout
(``seed_layout``, ``lmdb_tree``, ``mjsynth``, ``csv_table``, ``named_images``) and by ``layouts``, which
imports them all and finds a dataset's layout (``layouts.detect``).

A layout is a list of **parts**, each holding the samples of one split (its *role*): an annotation file,
an LMDB environment or a folder of images. Every sample has a **locator** ``(offset, line)`` found by one
cheap pass over its part (:meth:`Layout.index`). Locators are all that travels to the worker processes,
which open the part themselves (:meth:`Layout.open`) to read the sample's label and image bytes.

Declaring a layout is one class: a subclass of :class:`Layout` with a ``kind`` is registered by that
definition (``REGISTRY``), and ``detect`` tries the registered layouts in increasing ``rank``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, ClassVar, Iterator, Protocol

from ..errors import SettingError
from .annotations import LineError, Sample
from .images import ImageError

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class Part:
    """One source of samples: ``name`` relative to the dataset folder, as messages show it."""

    name: str
    role: str  # "train", "validation" or "test"


def location(file: str, line: int) -> str:
    """Where a sample is, for messages: ``Train/sample.txt:17`` for a line of a text file,
    ``Train/data.mdb sample 1234`` for an LMDB environment, and the file alone when the sample is a file of
    its own (line 0: an image of the named layout, ``Train/abcd_17.png``)."""
    if line == 0:
        return file
    return f"{file} sample {line}" if file.endswith(".mdb") else f"{file}:{line}"


@dataclass(frozen=True)
class LayoutOptions:
    """Settings a layout may need to read its dataset (the others ignore them)."""

    csv_delimiter: str = ";"  # the csv layout's column separator

    def __post_init__(self) -> None:
        if len(self.csv_delimiter) != 1 or self.csv_delimiter in '"\r\n':
            raise SettingError("csv_delimiter", f"must be one character other than a quote or a line break, "
                                                f"not {self.csv_delimiter!r}")


class PartReader(Protocol):
    """An open part: samples by locator, images by sample. Raises LineError / ImageError on bad ones."""

    def sample(self, offset: int, line: int) -> Sample: ...

    def image(self, sample: Sample) -> bytes: ...

    def close(self) -> None: ...


class PartWriter(Protocol):
    """One split of a layout being written by ``convert``: samples appended in order."""

    count: int

    def add(self, image: bytes, label: str) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


# kind -> layout class, filled by the class definitions (Layout.__init_subclass__).
REGISTRY: dict[str, type[Layout]] = {}


class Layout:
    """The base of every layout. A subclass declares:

    * ``kind``: the name ``--layout`` takes (its definition registers it), ``rank``: where ``detect`` tries it,
      ``unit``: what the report counts in each part, ``task``: what its samples train;
    * ``present(path)``: whether ``path`` (a folder, or a file for a layout read from one) looks like this
      layout; ``find(path, options)``: the layout of ``path`` with its parts, or DataError;
    * ``index``, ``open``, ``digests`` below; and ``writer`` when ``convert --to`` may write it.
    """

    kind: ClassVar[str] = ""
    rank: ClassVar[int] = 0
    unit: ClassVar[str] = "lines"
    # What its samples train: "recognition" (text lines and their labels) or "detection" (pages and their
    # regions, ``pages.page_layouts``). The records' manifest carries it to every later command.
    task: ClassVar[str] = "recognition"
    # ``writer(root, folder)``: a PartWriter of one split, ``root/folder``; None: convert cannot write this layout.
    writer: ClassVar[Callable[[Path, str], PartWriter] | None] = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.kind:
            if cls.kind in REGISTRY:
                raise TypeError(f"two layouts of kind {cls.kind!r}: {REGISTRY[cls.kind].__name__} and {cls.__name__}")
            REGISTRY[cls.kind] = cls

    def __init__(self, dataset_dir: Path, parts: list[Part], options: LayoutOptions | None = None):
        self.dataset_dir = Path(dataset_dir)
        self.parts = tuple(parts)
        self.options = options or LayoutOptions()

    @staticmethod
    def present(dataset_dir: Path) -> bool:
        raise NotImplementedError

    @classmethod
    def find(cls, dataset_dir: Path, options: LayoutOptions | None = None) -> Layout:
        raise NotImplementedError

    def index(self, part: Part) -> tuple[np.ndarray, np.ndarray]:
        """Locators of every sample of ``part``: ``(offsets int64, lines int32)``, in part order."""
        raise NotImplementedError

    def open(self, part: Part, text_checks: bool = False) -> PartReader:
        """A reader of ``part``. ``text_checks``: also the checks only the text pass makes (MJSynth's lexicon)."""
        raise NotImplementedError

    def digests(self, part: Part) -> dict[str, str]:
        """Name -> sha256 of what identifies the part's labels, for the manifest."""
        raise NotImplementedError

    def __getstate__(self):  # pickled into every work item: keep it to names
        return {"dataset_dir": self.dataset_dir, "parts": self.parts, "options": self.options}

    def __setstate__(self, state):
        self.dataset_dir, self.parts, self.options = state["dataset_dir"], state["parts"], state["options"]


def ordered() -> list[type[Layout]]:
    """The registered layouts in the order ``detect`` tries them."""
    return sorted(REGISTRY.values(), key=lambda cls: cls.rank)


def read_image_file(dataset_dir: Path, relative: str) -> bytes:
    """An image file's bytes; ``relative`` to ``dataset_dir`` (or absolute), as messages name it."""
    try:
        with open(Path(dataset_dir) / relative, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise ImageError("image_missing", f"image not found: {relative}") from None
    except IsADirectoryError:
        raise ImageError("image_unreadable", f"image path is a directory: {relative}") from None
    except OSError as exc:
        raise ImageError("image_unreadable", f"cannot read image {relative}: {exc.strerror}") from None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def iter_samples(layout: Layout, part: Part, offsets, lines, text_checks=False) -> Iterator[Sample | LineError]:
    """Every sample of a part in order (a LineError in place of one that cannot be read)."""
    reader = layout.open(part, text_checks)
    try:
        for offset, line in zip(offsets.tolist(), lines.tolist(), strict=True):
            try:
                yield reader.sample(offset, line)
            except LineError as exc:
                yield exc
    finally:
        reader.close()
