"""Text regions of page images: ICDAR 2015 ground truth and PaddleOCR detection labels.

ICDAR 2015 (one ``gt_<image stem>.txt`` per image), one region per line::

    x1,y1,x2,y2,x3,y3,x4,y4,transcription

* UTF-8 with or without a BOM; ``\\n`` or ``\\r\\n`` endings; blank lines are skipped.
* Coordinates are integers or decimals (spaces around them allowed). The transcription is everything after
  the 8th comma, commas included, exactly as written (not unquoted); a line of 8 numbers and nothing
  after them is a region with the empty transcription.
* ``###`` marks a don't-care region: ``ignore=True``, and its text stays ``"###"`` as the file says.

PaddleOCR (one label file for many images), one image per line::

    <image path>\\t[{"transcription": "...", "points": [[x, y], ...]}, ...]

4 or more points a region; ``###`` or ``"difficult": true`` marks a don't-care region.

Errors are :class:`~shadownet.data.annotations.LineError`\\ s with a problem ``code``. ``parse_icdar_gt``
and ``parse_paddle_det`` know the file, so their messages start with ``file:line:``;
``parse_paddle_det_line`` sees one line and, like ``parse_line``, leaves naming it to the caller.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

from ..annotations import LineError, normalize_path
from . import polygons

DONT_CARE = "###"
POLICIES = ("clip", "refuse")  # check_region: what a point outside the image does
CLIPPED = "clipped_points"  # check_region's one problem that is a note, not an error: the region is kept
_BOM = b"\xef\xbb\xbf"
_CORNERS = ("x1", "y1", "x2", "y2", "x3", "y3", "x4", "y4")


@dataclass(frozen=True, eq=False)  # eq=False: comparing ndarray fields has no single truth value
class Region:
    """One text region: ``points`` a float32 ``[N, 2]`` array of ``(x, y)`` pixels; ``ignore`` marks a
    don't-care region (unreadable text: neither a miss nor a false positive when scored)."""

    points: np.ndarray
    text: str
    ignore: bool


@dataclass(frozen=True, eq=False)
class Page:
    """One image and its regions, from line ``line`` of annotation file ``file``."""

    image: str
    regions: tuple[Region, ...]
    file: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


def numbered_lines(data: bytes):
    """``(line number, raw line)`` without the BOM and line endings, blank lines included."""
    if data.startswith(_BOM):
        data = data[len(_BOM):]
    for number, raw in enumerate(data.split(b"\n"), start=1):
        yield number, raw[:-1] if raw.endswith(b"\r") else raw


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LineError("invalid_utf8", f"not valid UTF-8 (byte {exc.start})") from None


def _number(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):  # float() also reads "nan" and "inf", which are no coordinates
        raise LineError("non_numeric_coordinate", f"coordinate {name} is not a number: {text.strip()[:40]!r}")
    return value


def parse_icdar_line(raw: bytes) -> Region | None:
    """One ICDAR 2015 line (without its line ending) as a Region; None for a blank line.

    Raises LineError ``invalid_utf8``, ``too_few_coordinates`` (fewer than 8 comma-separated fields) or
    ``non_numeric_coordinate``; the message does not name the line (``parse_icdar_gt`` does).
    """
    text = _decode(raw)
    if not text.strip():
        return None
    fields = text.split(",", 8)
    if len(fields) < 8:
        raise LineError("too_few_coordinates", f"expected 8 coordinates x1,y1,...,x4,y4 before the "
                                               f"transcription, found {len(fields)} field(s): {text[:80]!r}")
    values = [_number(field, name) for field, name in zip(fields[:8], _CORNERS, strict=True)]
    transcription = fields[8] if len(fields) == 9 else ""
    points = np.asarray(values, dtype=np.float32).reshape(4, 2)
    return Region(points, transcription, transcription == DONT_CARE)


def parse_icdar_gt(data: bytes, file: str) -> list[tuple[int, Region]]:
    """All regions of one ICDAR 2015 ground-truth file (its bytes; ``file`` names it in messages), each with
    its line number. Raises LineError at the first bad line, its message starting ``file:line:``."""
    regions = []
    for number, raw in numbered_lines(data):
        try:
            region = parse_icdar_line(raw)
        except LineError as exc:
            raise LineError(exc.code, f"{file}:{number}: {exc}") from None
        if region is not None:
            regions.append((number, region))
    return regions


def _point_list(points, index: int) -> np.ndarray:
    if not isinstance(points, list):
        raise LineError("non_numeric_point", f"region {index}: points is not a list of [x, y] pairs")
    if len(points) < 4:
        raise LineError("too_few_points", f"region {index}: {len(points)} point(s); a region needs 4 or more")
    for k, point in enumerate(points):
        # bool is an int to Python, but true/false in a label is a mistake, not a coordinate
        if (not isinstance(point, list) or len(point) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                           for v in point)):
            raise LineError("non_numeric_point", f"region {index}: point {k} is not a pair of numbers [x, y]: "
                                                 f"{json.dumps(point)[:40]}")
    return np.asarray(points, dtype=np.float32)


def parse_paddle_det_line(raw: bytes) -> tuple[str, list[Region]] | None:
    """One PaddleOCR detection line (without its line ending) as ``(image path, regions)``; None when blank.

    The path is normalised as ``sample.txt`` paths are (relative to the dataset, never outside it). Raises
    LineError ``invalid_utf8``, ``missing_tab``, ``bad_json``, ``not_a_list``, ``bad_entry`` (an entry that
    is not an object), ``missing_field`` (no ``points`` or ``transcription``, or a transcription that is not
    a string), ``too_few_points`` or ``non_numeric_point``, and ``normalize_path``'s ``malformed_line`` or
    ``path_outside_dataset`` for the path; messages do not name the line.
    """
    text = _decode(raw)
    if not text.strip():
        return None
    path, tab, label = text.partition("\t")
    if not tab:
        raise LineError("missing_tab", f"expected '<image path>\\t<JSON list of regions>', found {text[:80]!r}")
    path = normalize_path(path)
    try:
        entries = json.loads(label)
    except json.JSONDecodeError as exc:
        raise LineError("bad_json", f"regions of {path} are not valid JSON: {exc.msg} at character {exc.pos}") from None
    if not isinstance(entries, list):
        raise LineError("not_a_list", f"regions of {path} are a JSON {type(entries).__name__}, not a list")
    regions = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise LineError("bad_entry", f"region {index} of {path} is not a JSON object: {json.dumps(entry)[:40]}")
        missing = [key for key in ("transcription", "points") if key not in entry]
        if missing:
            raise LineError("missing_field", f"region {index} of {path} has no {' or '.join(missing)}")
        if not isinstance(entry["transcription"], str):
            raise LineError("missing_field", f"region {index} of {path}: transcription is not a string")
        points = _point_list(entry["points"], index)
        ignore = entry["transcription"] == DONT_CARE or entry.get("difficult") is True
        regions.append(Region(points, entry["transcription"], ignore))
    return path, regions


def parse_paddle_det(data: bytes, file: str) -> list[Page]:
    """Every page of a PaddleOCR detection label file (its bytes; ``file`` names it in Page and messages).
    Raises LineError at the first bad line, its message starting ``file:line:``."""
    pages = []
    for number, raw in numbered_lines(data):
        try:
            parsed = parse_paddle_det_line(raw)
        except LineError as exc:
            raise LineError(exc.code, f"{file}:{number}: {exc}") from None
        if parsed is not None:
            pages.append(Page(parsed[0], tuple(parsed[1]), file, number))
    return pages


def check_region(region: Region, width: int, height: int, policy: str = "clip"
                 ) -> tuple[Region, list[tuple[str, str]]]:
    """Check one region against its ``width`` x ``height`` image: ``(region to keep, problems)``.

    Problems are ``(code, message)``: ``too_few_points`` (under 4), ``self_intersecting``, ``zero_area``
    (under 1 px² inside the image), and for points outside ``[0, width-1] x [0, height-1]``:
    ``points_outside_image`` under the "refuse" policy, or under "clip" the note ``CLIPPED`` with the count
    of points clamped onto the border, the region returned holding the clamped points. Every problem but
    ``CLIPPED`` is an error. Pure: messages name the region's problem; the caller names the file and line.
    """
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {', '.join(POLICIES)}, not {policy!r}")
    points = np.asarray(region.points, dtype=np.float32)
    if points.ndim != 2 or points.shape[1] != 2 or len(points) < 4:
        count = len(points) if points.ndim == 2 else 0
        return region, [("too_few_points", f"{count} point(s); a region needs 4 or more")]
    problems = []
    # Simplicity is judged on the points as written: clamping can stack corners onto one border point.
    if not polygons.is_simple(points):
        problems.append(("self_intersecting", "the region's outline crosses or touches itself"))
    clipped, moved = polygons.clip_to_image(points, width, height)
    if moved:
        outside = int(np.count_nonzero(np.any(clipped != points, axis=1)))
        where = f"{outside} of {len(points)} point(s) outside the {width}x{height} image"
        if policy == "refuse":
            problems.append(("points_outside_image", where))
        else:
            problems.append((CLIPPED, f"{where}, clamped onto its border"))
            region = Region(clipped, region.text, region.ignore)
    kept = polygons.area(clipped)
    if kept < 1.0:
        problems.append(("zero_area", f"area {kept:.3g} px² inside the image (less than 1 px²)"))
    return region, problems
