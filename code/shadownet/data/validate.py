"""Every check a sample must pass before it may enter a record, and the report of what failed.

Checks: malformed lines and bad UTF-8, paths outside the dataset, empty labels,
characters missing from the charset (after the case policy), labels too long
for the model's CTC time steps at the image's width, duplicate image paths
(within and across Train/Test), missing, unreadable, truncated or corrupt images.

The text checks run here over the annotation files; the image checks run in the
record writer's worker processes (``check_image``), so each image is decoded once.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..choices import CASE_POLICIES
from ..errors import DataError
from ..fileio import write_text_atomic
from .annotations import TEST_FILE, TRAIN_FILE, AnnotationIndex, LineError, Sample
from .charset import Charset
from .images import ImageError, ImageGeometry, ctc_min_steps, decode, time_steps

SHOWN_PROBLEMS = 5


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    code: str
    message: str
    image: str = ""

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


@dataclass(frozen=True)
class LabelPolicy:
    """How labels become class ids: the charset, case folding and the geometry limiting their length."""

    charset: Charset
    lowercase: bool
    geometry: ImageGeometry

    @classmethod
    def resolve(cls, charset: Charset, case: str, geometry: ImageGeometry) -> "LabelPolicy":
        """``auto`` lowercases when the charset has no uppercase letters, as the original did."""
        if case not in CASE_POLICIES:
            raise DataError(f"case policy must be one of {', '.join(CASE_POLICIES)}, not {case!r}")
        lowercase = case == "lower" or (case == "auto" and not charset.has_uppercase)
        return cls(charset, lowercase, geometry)

    def encode(self, sample: Sample) -> tuple[list[int], str]:
        """``(ids, text)`` for a sample's label, or raise LineError naming the problem."""
        if sample.label == "":
            raise LineError("empty_label", f"empty label for {sample.path}")
        text = sample.label.lower() if self.lowercase else sample.label
        unknown = self.charset.unknown(text)
        if unknown:
            shown = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in unknown[:5])
            raise LineError("unknown_character", f"character(s) not in the charset: {shown} in label {text!r}")
        ids = self.charset.encode(text)
        self.check_length(ids, text, self.geometry.widest)
        return ids, text

    def check_length(self, ids: list[int], text: str, width: int) -> None:
        needed, available = ctc_min_steps(ids), time_steps(width)
        if needed > available:
            raise LineError(
                "label_too_long",
                f"label {text!r} needs {needed} CTC time steps but an image {width} px wide gives {available}",
            )


def check_image(dataset_dir: Path, sample: Sample, ids: list[int], text: str, policy: LabelPolicy):
    """Read and decode a sample's image; returns ``(file bytes, decoded HxWx3 image)``.

    Raises ImageError or LineError with the problem. The label-length check uses
    the width the image will have once normalised.
    """
    try:
        with open(os.path.join(dataset_dir, sample.path), "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise ImageError("image_missing", f"image not found: {sample.path}") from None
    except IsADirectoryError:
        raise ImageError("image_unreadable", f"image path is a directory: {sample.path}") from None
    except OSError as exc:
        raise ImageError("image_unreadable", f"cannot read image {sample.path}: {exc.strerror}") from None
    try:
        image = decode(data, min_height=policy.geometry.height)
    except ImageError as exc:
        raise ImageError(exc.code, f"{exc}: {sample.path}") from None
    height, width = image.shape[:2]
    policy.check_length(ids, text, policy.geometry.target_width(width, height))
    return data, image


@dataclass
class Scan:
    """Result of the text pass: which lines of each file are usable, and what was wrong with the rest."""

    indexes: dict[str, AnnotationIndex]
    usable: dict[str, np.ndarray]  # bool mask per file, aligned with the index's lines
    problems: list[Problem] = field(default_factory=list)


def scan_annotations(dataset_dir: Path, policy: LabelPolicy) -> Scan:
    """Run the text checks over Train/ and Test/sample.txt (one streaming pass each)."""
    indexes = {name: AnnotationIndex(dataset_dir, name) for name in (TRAIN_FILE, TEST_FILE)}
    usable = {name: np.zeros(len(index), dtype=bool) for name, index in indexes.items()}
    problems: list[Problem] = []
    # Duplicates are found on 8-byte path digests so that memory stays small for large datasets.
    digests, owners = [], []
    for name, index in indexes.items():
        for i, item in index:
            line = int(index.line_numbers[i])
            if isinstance(item, LineError):
                problems.append(Problem(name, line, item.code, str(item)))
                continue
            try:
                policy.encode(item)
            except LineError as exc:
                problems.append(Problem(name, line, exc.code, str(exc), item.path))
                continue
            usable[name][i] = True
            digests.append(int.from_bytes(hashlib.blake2b(item.path.encode(), digest_size=8).digest(), "little"))
            owners.append((name, i))
    problems.extend(_mark_duplicates(indexes, usable, np.asarray(digests, dtype=np.uint64), owners))
    problems.sort(key=lambda p: (p.file != TRAIN_FILE, p.line))
    return Scan(indexes, usable, problems)


def _mark_duplicates(indexes, usable, digests: np.ndarray, owners) -> list[Problem]:
    """Every repeat of an image path after its first occurrence (Train before Test) is a problem."""
    order = np.argsort(digests, kind="stable")
    sorted_digests = digests[order]
    repeats = np.nonzero(sorted_digests[1:] == sorted_digests[:-1])[0] + 1
    problems = []
    first_of = {}
    for pos in repeats:
        first = pos
        while first > 0 and sorted_digests[first - 1] == sorted_digests[pos]:
            first -= 1
        first_of[int(order[pos])] = int(order[first])
    for dup, first in sorted(first_of.items()):
        name, i = owners[dup]
        first_name, first_i = owners[first]
        sample, original = indexes[name].read(i), indexes[first_name].read(first_i)
        if sample.path != original.path:  # a digest collision, not a duplicate
            continue
        usable[name][i] = False
        problems.append(
            Problem(name, sample.line, "duplicate", f"duplicate of {original.where} ({sample.path})", sample.path)
        )
    return problems


def summary(problems: list[Problem], dataset_dir: Path, hint: bool = True) -> str:
    """The short message a user sees: the first few offenders and where to find the rest."""
    lines = [f"{len(problems)} problem(s) in dataset {dataset_dir}:"]
    lines += [f"  {p}" for p in problems[:SHOWN_PROBLEMS]]
    if len(problems) > SHOWN_PROBLEMS:
        lines.append(f"  ... and {len(problems) - SHOWN_PROBLEMS} more")
    if hint:
        lines.append("Nothing was written. Use --report FILE to list them all, or --on-error skip to leave them out.")
    return "\n".join(lines)


def write_report(path: Path, dataset_dir: Path, on_error: str, counts: dict, problems: list[Problem]) -> None:
    report = {
        "dataset_dir": str(dataset_dir),
        "on_error": on_error,
        "ok": not problems,
        "counts": counts,
        "num_problems": len(problems),
        "problems_by_kind": _count_by_code(problems),
        # With --on-error skip, each of these was left out of the records.
        "problems": [asdict(p) for p in problems],
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(report, ensure_ascii=False, indent=2) + "\n")


def _count_by_code(problems: list[Problem]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for p in problems:
        counts[p.code] = counts.get(p.code, 0) + 1
    return dict(sorted(counts.items()))
