"""Every check a sample must pass before it may enter a record, and the report of what failed.

Checks: malformed lines and bad UTF-8, paths outside the dataset, empty labels,
characters missing from the charset (after the case policy), labels too long
for the model's CTC time steps at the image's width, duplicate image paths
(within and across splits), missing, unreadable, truncated or corrupt images;
and what each layout adds (missing LMDB keys, MJSynth lexicon disagreements).

The text checks run here over every part of the layout (``scan_annotations``); the image
checks run in the worker processes (``check_image``), so each image is decoded once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..choices import CASE_POLICIES
from ..errors import DataError
from ..fileio import write_text_atomic
from .annotations import LineError, Sample
from .charset import Charset
from .images import ImageError, ImageGeometry, ctc_min_steps, decode, normalize, time_steps
from .layout_base import Layout, iter_samples, location
from .record_format import frame, text_line_example

SHOWN_PROBLEMS = 5


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    code: str
    message: str
    image: str = ""

    def __str__(self) -> str:
        return f"{location(self.file, self.line)}: {self.message}"


def problem_of(error: LineError | ImageError, file: str, line: int, image: str = "") -> Problem:
    """The Problem of an error met reading the sample at ``file:line``, or where the error says it is."""
    where_file, where_line = getattr(error, "file", None), getattr(error, "line", None)
    return Problem(where_file or file, line if where_line is None else where_line, error.code, str(error), image)


@dataclass(frozen=True)
class LabelPolicy:
    """How labels become class ids: the charset, case folding and the geometry limiting their length (the
    recognition task; ``pages.page_records.PagePolicy`` is the detection task's)."""

    charset: Charset
    lowercase: bool
    geometry: ImageGeometry
    case: str = "auto"
    task = "recognition"

    @classmethod
    def resolve(cls, charset: Charset, case: str, geometry: ImageGeometry) -> "LabelPolicy":
        """``auto`` lowercases when the charset has no uppercase letters, as the original did."""
        if case not in CASE_POLICIES:
            raise DataError(f"case policy must be one of {', '.join(CASE_POLICIES)}, not {case!r}")
        lowercase = case == "lower" or (case == "auto" and not charset.has_uppercase)
        return cls(charset, lowercase, geometry, case)

    def record(self, reader, sample: Sample, build: bool) -> bytes:
        """A text line's framed record (``b""`` when only validating); raises ImageError or LineError."""
        ids, text = self.encode(sample)  # passed the text checks already
        data, image = check_image(reader, sample, ids, text, self)
        if not build:
            return b""
        encoded, width, height = normalize(data, image, self.geometry)
        return frame(text_line_example(encoded, self.geometry.image_format, width, height, sample.path, ids, text))

    def manifest(self) -> dict:
        """The task's part of the records' manifest."""
        charset = self.charset
        return {
            "charset": {"characters": "".join(charset.characters), "size": charset.size,
                        "blank_index": charset.blank_index, "num_classes": charset.num_classes,
                        "sha256": charset.sha256},
            "case": {"policy": self.case, "lowercase": self.lowercase},
            "image": self.geometry.to_dict(),
        }

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


def check_image(reader, sample: Sample, ids: list[int], text: str, policy: LabelPolicy):
    """Read (through the part's reader) and decode a sample's image; returns ``(file bytes, HxWx3 image)``.

    Raises ImageError or LineError with the problem. The label-length check uses
    the width the image will have once normalised.
    """
    data = reader.image(sample)
    try:
        image = decode(data, min_height=policy.geometry.height)
    except ImageError as exc:
        raise ImageError(exc.code, f"{exc}: {sample.path}") from None
    height, width = image.shape[:2]
    policy.check_length(ids, text, policy.geometry.target_width(width, height))
    return data, image


@dataclass
class Scan:
    """Result of the text pass: the locators of every part's samples, which are usable, what was wrong."""

    layout: Layout
    offsets: list[np.ndarray]  # per part, aligned with layout.parts
    lines: list[np.ndarray]
    usable: list[np.ndarray]  # bool mask per part
    problems: list[Problem] = field(default_factory=list)

    def counts(self) -> dict[str, dict[str, int]]:
        return {part.name: {self.layout.unit: len(offsets)}
                for part, offsets in zip(self.layout.parts, self.offsets, strict=True)}

    def sort(self, problems: list[Problem]) -> None:
        """Problems in part order, then line (or sample) order; those named by their own file (line 0: the
        named layout's images) by file name."""
        order = {part.name: i for i, part in enumerate(self.layout.parts)}
        problems.sort(key=lambda p: (order.get(p.file, len(order)), p.line, p.file))


def scan_annotations(layout: Layout, policy: LabelPolicy) -> Scan:
    """Run the text checks over every part of the layout (one streaming pass each)."""
    scan = Scan(layout, [], [], [])
    # Duplicates are found on 8-byte path digests, kept in arrays (8 bytes a sample), so that memory stays
    # small for large datasets.
    digests = []
    for part in layout.parts:
        offsets, lines = layout.index(part)
        usable = np.zeros(len(offsets), dtype=bool)
        part_digests = np.zeros(len(offsets), dtype=np.uint64)
        scan.offsets.append(offsets)
        scan.lines.append(lines)
        scan.usable.append(usable)
        for i, item in enumerate(iter_samples(layout, part, offsets, lines, text_checks=True)):
            if isinstance(item, LineError):
                scan.problems.append(problem_of(item, part.name, int(lines[i])))
                continue
            try:
                policy.encode(item)
            except LineError as exc:
                scan.problems.append(Problem(item.file, item.line, exc.code, str(exc), item.path))
                continue
            usable[i] = True
            part_digests[i] = int.from_bytes(hashlib.blake2b(item.path.encode(), digest_size=8).digest(), "little")
        digests.append(part_digests)
    scan.problems.extend(_mark_duplicates(scan, digests))
    scan.sort(scan.problems)
    return scan


def _read(scan: Scan, p: int, i: int) -> Sample:
    layout, part = scan.layout, scan.layout.parts[p]
    reader = layout.open(part)
    try:
        return reader.sample(int(scan.offsets[p][i]), int(scan.lines[p][i]))
    finally:
        reader.close()


def _mark_duplicates(scan: Scan, part_digests: list[np.ndarray]) -> list[Problem]:
    """Every repeat of an image path after its first occurrence (in part order) is a problem."""
    rows = [np.nonzero(usable)[0] for usable in scan.usable]
    digests = (np.concatenate([d[r] for d, r in zip(part_digests, rows, strict=True)]) if rows
               else np.zeros(0, np.uint64))
    owner_part = np.concatenate([np.full(len(r), p, np.int32) for p, r in enumerate(rows)]) if rows else []
    owner_row = np.concatenate(rows) if rows else []
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
        p, i = int(owner_part[dup]), int(owner_row[dup])
        first_p, first_i = int(owner_part[first]), int(owner_row[first])
        sample, original = _read(scan, p, i), _read(scan, first_p, first_i)
        if sample.path != original.path:  # a digest collision, not a duplicate
            continue
        scan.usable[p][i] = False
        problems.append(Problem(sample.file, sample.line, "duplicate",
                                f"duplicate of {location(original.file, original.line)} ({sample.path})",
                                sample.path))
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
