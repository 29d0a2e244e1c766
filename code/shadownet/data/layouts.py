"""Where a dataset's samples are: the seed layout, an LMDB tree or an MJSynth tree, behind one interface.

A layout is a list of **parts**, each holding the samples of one split (its *role*): an annotation file
(seed, MJSynth) or an LMDB environment. Every sample has a **locator** ``(offset, line)`` found by one
cheap pass over its part (:meth:`Layout.index`): a byte offset and line number in a text file, or the
1-based sample index twice for LMDB. Locators are all that travels to the worker processes, which open
the part themselves (:meth:`Layout.open`) to read the sample's label and image bytes, so memory stays
flat in the dataset size and the parent does little more than write.

=========  =====================================================  ==========================================
layout     what the folder holds                                  parts (role)
=========  =====================================================  ==========================================
seed       ``Train/sample.txt``, ``Test/sample.txt``, images      Train → train, Test → test,
                                                                  ``Validation/sample.txt`` (optional)
lmdb       ``Train/``, ``Test/`` (``Validation/``) or the          every ``data.mdb`` under each, sorted
           release names ``training/``, ``validation/``,
           ``evaluation/``, each an LMDB environment or folders
mjsynth    ``annotation_{train,val,test}.txt``, ``lexicon.txt``   each annotation file present
=========  =====================================================  ==========================================
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol

import numpy as np

from ..choices import LAYOUTS
from ..errors import DataError
from .annotations import AnnotationIndex, LineError, Sample, read_sample


@dataclass(frozen=True)
class Part:
    """One source of samples: ``name`` relative to the dataset folder, as messages show it."""

    name: str
    role: str  # "train", "validation" or "test"


def location(file: str, line: int) -> str:
    """``Train/sample.txt:17`` for a text file, ``Train/data.mdb sample 1234`` for an LMDB environment."""
    return f"{file} sample {line}" if file.endswith(".mdb") else f"{file}:{line}"


class PartReader(Protocol):
    """An open part: samples by locator, images by sample. Raises LineError / ImageError on bad ones."""

    def sample(self, offset: int, line: int) -> Sample: ...

    def image(self, sample: Sample) -> bytes: ...

    def close(self) -> None: ...


class Layout:
    """Base of the three layouts; ``kind`` is one of ``choices.LAYOUTS``."""

    kind = ""

    def __init__(self, dataset_dir: Path, parts: list[Part]):
        self.dataset_dir = Path(dataset_dir)
        self.parts = tuple(parts)

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
        return {"dataset_dir": self.dataset_dir, "parts": self.parts}

    def __setstate__(self, state):
        self.dataset_dir, self.parts = state["dataset_dir"], state["parts"]


# -- the seed layout ----------------------------------------------------------------------------------

SEED_PARTS = (("Train/sample.txt", "train"), ("Validation/sample.txt", "validation"), ("Test/sample.txt", "test"))
SEED_REQUIRED = ("Train/sample.txt", "Test/sample.txt")


class SeedLayout(Layout):
    kind = "seed"

    @classmethod
    def find(cls, dataset_dir: Path) -> "SeedLayout":
        parts = [Part(name, role) for name, role in SEED_PARTS
                 if name in SEED_REQUIRED or (Path(dataset_dir) / name).is_file()]
        return cls(dataset_dir, parts)

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


def read_image_file(dataset_dir: Path, relative: str) -> bytes:
    from .images import ImageError

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
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# -- finding the layout -------------------------------------------------------------------------------


def detect(dataset_dir: Path, layout: str | None = None) -> Layout:
    """The layout of ``dataset_dir``: ``layout`` when given, else guessed from what the folder holds."""
    from .lmdb_tree import LmdbLayout
    from .mjsynth import MJSynthLayout

    dataset_dir = Path(dataset_dir)
    if not dataset_dir.is_dir():
        raise DataError(f"{dataset_dir}: dataset directory not found")
    kinds = {"seed": SeedLayout, "lmdb": LmdbLayout, "mjsynth": MJSynthLayout}
    assert tuple(kinds) == LAYOUTS
    if layout is not None:
        if layout not in kinds:
            raise DataError(f"--layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
        return kinds[layout].find(dataset_dir)
    if (dataset_dir / "Train" / "sample.txt").is_file():
        return SeedLayout.find(dataset_dir)
    if LmdbLayout.present(dataset_dir):
        return LmdbLayout.find(dataset_dir)
    if MJSynthLayout.present(dataset_dir):
        return MJSynthLayout.find(dataset_dir)
    raise DataError(
        f"{dataset_dir}: no dataset found: expected Train/sample.txt (seed layout), Train/.../data.mdb or "
        "training/.../data.mdb (LMDB), or annotation_train.txt (MJSynth); --layout names one"
    )


def iter_samples(layout: Layout, part: Part, offsets, lines, text_checks=False) -> Iterator[Sample | LineError]:
    """Every sample of a part in order (a LineError in place of one that cannot be read)."""
    reader = layout.open(part, text_checks)
    try:
        for offset, line in zip(offsets.tolist(), lines.tolist()):
            try:
                yield reader.sample(offset, line)
            except LineError as exc:
                yield exc
    finally:
        reader.close()
