"""Small file helpers shared by every stage that writes results."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import BinaryIO, Iterator

PARTIAL_SUFFIX = ".partial"


def partial_name(final: Path) -> Path:
    """Where ``final`` is written before it is complete (same folder, so rename is atomic)."""
    return final.with_name(f".{final.name}{PARTIAL_SUFFIX}")


@contextlib.contextmanager
def atomic_writer(final: Path) -> Iterator[BinaryIO]:
    """Open a temporary sibling of ``final`` for writing; rename it into place on success.

    On any exception the temporary file is removed and ``final`` is untouched,
    so a reader never sees a half-written file under its final name.
    """
    final = Path(final)
    tmp = partial_name(final)
    try:
        with open(tmp, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_bytes_atomic(final: Path, data: bytes) -> None:
    with atomic_writer(final) as handle:
        handle.write(data)


def write_text_atomic(final: Path, text: str) -> None:
    write_bytes_atomic(final, text.encode("utf-8"))


def with_suffix(path: str | Path, suffix: str) -> str | Path:
    """``path`` with its extension replaced by ``suffix``: a local Path, or an ``s3://``/``gs://`` key as text."""
    if isinstance(path, Path):
        return path.with_suffix(suffix)
    stem, dot, ext = path.rpartition(".")
    return (stem if dot and "/" not in ext else path) + suffix
