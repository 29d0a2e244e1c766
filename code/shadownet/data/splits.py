"""Which samples go where: the split plan (train shuffled, validation carved or the dataset's own, test),
the chunks it is cut into for the worker processes, and the samples a worker reads back from a chunk.

Shared by ``write_records`` (TFRecords) and ``convert`` (another layout).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from ..choices import SPLITS
from .annotations import Sample
from .layout_base import Layout

CHUNK_SIZE = 64


@dataclass(frozen=True)
class Rows:
    """Samples of one split, in order: which part (index into ``layout.parts``) and which row of it."""

    parts: np.ndarray  # int32
    rows: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.rows)

    def take(self, selection) -> "Rows":
        return Rows(self.parts[selection], self.rows[selection])


@dataclass(frozen=True)
class Chunk:
    """Consecutive positions of one split. Workers read the samples themselves, from their locators,
    so that the parent process (which shares the cores) does little more than write."""

    split: str
    start: int
    parts: np.ndarray
    offsets: np.ndarray
    lines: np.ndarray


def rows_of(scan, role: str) -> Rows:
    """The usable samples of every part with this role, in part order."""
    parts, rows = [np.zeros(0, np.int32)], [np.zeros(0, np.int64)]
    for p, part in enumerate(scan.layout.parts):
        if part.role == role:
            usable = np.nonzero(scan.usable[p])[0]
            parts.append(np.full(len(usable), p, np.int32))
            rows.append(usable.astype(np.int64))
    return Rows(np.concatenate(parts), np.concatenate(rows))


def plan_splits(scan, ratio: float, seed: int) -> dict[str, Rows]:
    """Samples per split: validation is the dataset's own, or a seeded sample of train; train is shuffled."""
    train = rows_of(scan, "train")
    order = np.random.default_rng(seed).permutation(len(train))
    if any(part.role == "validation" for part in scan.layout.parts):
        # Shuffled once here so that training reads well-mixed records even with a small shuffle buffer.
        return {"train": train.take(order), "validation": rows_of(scan, "validation"), "test": rows_of(scan, "test")}
    n_validation = int(round(ratio * len(train)))
    return {
        "train": train.take(order[n_validation:]),
        "validation": train.take(np.sort(order[:n_validation])),
        "test": rows_of(scan, "test"),
    }


def chunks(scan, plan: dict[str, Rows], blocks: dict[str, tuple[int, int]]) -> Iterator[Chunk]:
    for split in SPLITS:
        rows = plan[split]
        first, stop = blocks[split]
        for start in range(first, stop, CHUNK_SIZE):
            selected = rows.take(slice(start, min(start + CHUNK_SIZE, stop)))
            where = list(zip(selected.parts, selected.rows, strict=True))
            offsets = np.array([scan.offsets[p][r] for p, r in where], np.int64)
            lines = np.array([scan.lines[p][r] for p, r in where], np.int32)
            yield Chunk(split, start, selected.parts, offsets, lines)


class Readers:
    """The parts a worker has opened for one chunk, each opened once, all closed at the end."""

    def __init__(self, layout: Layout):
        self.layout, self.open = layout, {}

    def __getitem__(self, p: int):
        if p not in self.open:
            self.open[p] = self.layout.open(self.layout.parts[p])
        return self.open[p]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for reader in self.open.values():
            reader.close()


def chunk_samples(layout: Layout, chunk: Chunk) -> Iterator[tuple[object, Sample]]:
    """Worker side: ``(reader of its part, sample)`` for each position of a chunk, in order."""
    with Readers(layout) as readers:
        for p, offset, line in zip(chunk.parts.tolist(), chunk.offsets.tolist(), chunk.lines.tolist(), strict=True):
            reader = readers[p]
            yield reader, reader.sample(offset, line)
