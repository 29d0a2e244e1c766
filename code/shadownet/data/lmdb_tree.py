"""LMDB datasets, the layout of the scene-text benchmark releases (deep-text-recognition-benchmark, PaddleOCR,
PARSeq, mmocr): reading them as a layout, and writing them (``convert --to lmdb``).

One environment (a folder holding ``data.mdb``) has ``num-samples`` (a decimal string) and, for
i = 1 … n, ``image-%09d`` (the encoded image file's bytes) and ``label-%09d`` (UTF-8 text). A tree
holds ``Train/``, ``Test/`` and optionally ``Validation/``, or the release names ``training/``,
``validation/``, ``evaluation/``; each is an environment or a folder of them at any depth.

Environments are opened read-only and without the lock file, so a dataset on a read-only mount works
and any number of worker processes read it at once; each worker opens its own (LMDB handles do not
survive a fork).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from ..errors import DataError
from .annotations import LineError, Sample
from .images import ImageError
from .layout_base import Layout, LayoutOptions, Part

DATA_FILE = "data.mdb"
NUM_SAMPLES = b"num-samples"
# Folder name -> role. Test and evaluation sets become the test split.
ROLES = {"Train": "train", "training": "train", "Validation": "validation", "validation": "validation",
         "Test": "test", "evaluation": "test"}
KEY_FORMAT = "image-%09d / label-%09d"


def image_key(index: int) -> bytes:
    return b"image-%09d" % index


def label_key(index: int) -> bytes:
    return b"label-%09d" % index


def _environments(folder: Path) -> list[Path]:
    """Folders under ``folder`` (itself included) that hold a data.mdb, in sorted path order."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        if DATA_FILE in files:
            found.append(Path(root))
    return sorted(found, key=lambda p: p.relative_to(folder).parts)


def open_env(path: Path, name: str):
    import lmdb

    try:
        return lmdb.open(str(path), readonly=True, lock=False, readahead=False, meminit=False, max_readers=4,
                         subdir=True)
    except lmdb.Error as exc:
        raise DataError(f"{name}: not a readable LMDB environment ({exc})") from None


class LmdbLayout(Layout):
    kind = "lmdb"
    rank = 20
    unit = "samples"

    @staticmethod
    def writer(root: Path, folder: str) -> "LmdbWriter":
        return LmdbWriter(root / folder)

    @staticmethod
    def present(dataset_dir: Path) -> bool:
        return any((Path(dataset_dir) / folder).is_dir() and _environments(Path(dataset_dir) / folder)
                   for folder in ROLES)

    @classmethod
    def find(cls, dataset_dir: Path, options: LayoutOptions | None = None) -> "LmdbLayout":
        dataset_dir = Path(dataset_dir)
        parts = []
        for role in ("train", "validation", "test"):
            for folder in sorted(name for name, r in ROLES.items() if r == role):
                if (dataset_dir / folder).is_dir():
                    parts += [Part((env / DATA_FILE).relative_to(dataset_dir).as_posix(), role)
                              for env in _environments(dataset_dir / folder)]
        if not any(part.role == "train" for part in parts):
            raise DataError(f"{dataset_dir}: no LMDB environment (a folder with {DATA_FILE}) under Train/ or "
                            "training/")
        return cls(dataset_dir, parts, options)

    def _env(self, part: Part):
        return open_env((self.dataset_dir / part.name).parent, str(self.dataset_dir / part.name))

    def index(self, part):
        count = self.num_samples(part)
        indices = np.arange(1, count + 1, dtype=np.int64)
        return indices, indices.astype(np.int32)

    def num_samples(self, part: Part) -> int:
        env = self._env(part)
        try:
            with env.begin() as txn:
                raw = txn.get(NUM_SAMPLES)
        finally:
            env.close()
        if raw is None:
            raise DataError(f"{self.dataset_dir / part.name}: no 'num-samples' key: not a text-recognition LMDB "
                            f"(expected num-samples and {KEY_FORMAT})")
        text = raw.decode("ascii", "replace").strip()
        if not text.isdigit():
            raise DataError(f"{self.dataset_dir / part.name}: 'num-samples' is {text[:40]!r}, not a decimal count")
        return int(text)

    def open(self, part, text_checks=False):
        return LmdbReader(lambda: self._env(part), part.name)

    def digests(self, part):
        """Of the labels in order (hashing data.mdb itself would read every image a second time)."""
        count = self.num_samples(part)
        digest = hashlib.sha256(str(count).encode())
        reader = self.open(part)
        try:
            for index in range(1, count + 1):
                label = reader.raw_label(index) or b""
                digest.update(len(label).to_bytes(4, "little") + label)
        finally:
            reader.close()
        return {part.name: digest.hexdigest()}


class LmdbReader:
    """One open environment; a sample's path is ``<environment>/data.mdb#<index>``. An LMDB sample's locator
    is its index twice (offset and line), so ``image`` finds the key from ``sample.line``.

    The environment is a memory map: the pages a long pass touches stay in this process's resident set
    while it is open, so it is reopened every ``REOPEN_EVERY`` reads to keep memory flat.
    """

    REOPEN_EVERY = 1024

    def __init__(self, opener, name: str):
        self.opener, self.name, self.reads = opener, name, 0
        self.env = opener()
        self.txn = self.env.begin(buffers=False)

    def _count_read(self) -> None:
        self.reads += 1
        if self.reads % self.REOPEN_EVERY == 0:
            self.close()
            self.env = self.opener()
            self.txn = self.env.begin(buffers=False)

    def raw_label(self, index: int) -> bytes | None:
        self._count_read()
        return self.txn.get(label_key(index))

    def sample(self, offset: int, line: int) -> Sample:
        raw = self.raw_label(offset)
        if raw is None:
            raise LineError("missing_key", f"no key {label_key(offset).decode()} (num-samples counts it)")
        try:
            label = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LineError("invalid_utf8", f"label is not valid UTF-8 (byte {exc.start})") from None
        return Sample(self.name, line, f"{self.name}#{offset}", label)

    def image(self, sample: Sample) -> bytes:
        index = sample.line
        self._count_read()
        data = self.txn.get(image_key(index))
        if data is None:
            raise ImageError("image_missing", f"no key {image_key(index).decode()} (num-samples counts it)")
        return data

    def close(self) -> None:
        self.txn.abort()
        self.env.close()


class LmdbWriter:
    """Writes one environment: samples numbered from 1 in the order given, ``num-samples`` last."""

    COMMIT_EVERY = 1000

    def __init__(self, folder: Path):
        import lmdb

        folder.mkdir(parents=True, exist_ok=True)
        # The map is address space, not disk: data.mdb grows with what is written. meminit zeroes the unused
        # part of each page, so the same samples give the same data.mdb bytes.
        self.env = lmdb.open(str(folder), map_size=1 << 40, subdir=True, lock=True, readahead=False,
                             meminit=True, sync=False)
        self.count, self.closed = 0, False
        self.txn = self.env.begin(write=True)

    def add(self, image: bytes, label: str) -> None:
        self.count += 1
        self.txn.put(image_key(self.count), image)
        self.txn.put(label_key(self.count), label.encode("utf-8"))
        if self.count % self.COMMIT_EVERY == 0:
            self.txn.commit()
            self.txn = self.env.begin(write=True)

    def close(self) -> None:
        self.closed = True
        self.txn.put(NUM_SAMPLES, str(self.count).encode())
        self.txn.commit()
        self.env.sync(True)
        folder = Path(self.env.path())
        self.env.close()
        (folder / "lock.mdb").unlink(missing_ok=True)  # readers open without it

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            self.txn.abort()
            self.env.close()
