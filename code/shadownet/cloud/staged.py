"""Local copies of the objects under a store's prefix (``s3://`` in ``storage.py``, ``gs://`` in ``gcs.py``).

The store is the truth: a local file stands for an object only if it holds the object's bytes (checked against
the MD5 the store lists where it gives one), and a staged folder keeps no file the prefix does not hold, so a
copy left by an earlier run, another endpoint or a bucket emptied since is never taken for what is there now.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, Iterable

# The part size of a multipart upload here (boto3's default, set explicitly in storage.ObjectStore.upload): an S3
# ETag "MD5-N" is the MD5 of the N parts' MD5s, so a local file's can be computed to compare.
PART_SIZE = 8 * 1024 * 1024
_BLOCK = 1024 * 1024


def is_current(path: Path, size: int, modified: float, digest: str | None = None) -> bool:
    """Whether the local file ``path`` can stand for an object of ``size`` bytes last modified at ``modified``
    (a Unix time): it has that size and, where the store gives ``digest`` (the object's MD5 in hex, or an S3
    multipart ETag ``MD5-N``), the same content; without one, it is at least as new as the object."""
    try:
        stat = Path(path).stat()
    except FileNotFoundError:
        return False
    if stat.st_size != size:
        return False
    if digest is None:
        return stat.st_mtime >= modified
    return _digest(Path(path), digest) == digest.lower()


def _digest(path: Path, like: str) -> str | None:
    """``path``'s MD5 in hex, or its multipart ETag when ``like`` is one (None: a part count no upload with
    ``PART_SIZE`` parts gives)."""
    whole, dash, count = like.partition("-")
    if not dash:
        md5 = hashlib.md5(usedforsecurity=False)
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(_BLOCK), b""):
                md5.update(block)
        return md5.hexdigest()
    parts = []
    with open(path, "rb") as handle:
        while part := handle.read(PART_SIZE):
            parts.append(hashlib.md5(part, usedforsecurity=False).digest())
    if not count.isdigit() or int(count) != len(parts):
        return None
    return f"{hashlib.md5(b''.join(parts), usedforsecurity=False).hexdigest()}-{len(parts)}"


def prune(folder: Path, kept: Iterable[str], only: Callable[[str], bool] | None = None) -> None:
    """Remove the files under ``folder`` (those ``only(relative path)`` accepts) that ``kept`` (relative paths)
    does not name, and the folders that leaves empty; another process's download in progress (a name ending
    in ``.partial``) stays."""
    folder, kept = Path(folder), set(kept)
    for path in sorted(folder.rglob("*"), reverse=True):  # deepest first: a folder after its files
        relative = path.relative_to(folder).as_posix()
        if path.is_dir() and not path.is_symlink():
            if not any(path.iterdir()):
                path.rmdir()
        elif relative not in kept and not path.name.endswith(".partial") and (only is None or only(relative)):
            path.unlink()
