"""Line boxes and the don't-care rules.

In: a PDF (its page 1) and the split's ``Fonts``. ``pdf_lines`` returns poppler's ``pdftotext -bbox-layout``
lines in points, cut at wide word gaps and clipped to the page. ``label_regions`` takes those lines and their
warped quadrilaterals in the photo and returns the ICDAR regions: ``(points [4, 2], text)``, the text ``###``
(don't care) for a line partly outside the image, too small to read or without a letter or digit; a line mostly
outside the image is dropped.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from .fonts import Fonts, run

MIN_TEXT_PX = 8  # a line box lower than this in the page raster is don't care
KEEP_INSIDE = 0.9  # share of a warped box inside the image to keep the line
DROP_INSIDE = 0.1  # below this share the line is dropped; between the two it is don't care
GAP_LINES = 1.5  # a pdftotext line is cut where two words stand more than this many line heights apart
DONT_CARE = "###"
XHTML = "{http://www.w3.org/1999/xhtml}"


def pdf_lines(pdf: Path, fonts: Fonts) -> tuple[float, float, list]:
    """(page width, page height, lines) of page 1 as ``pdftotext -bbox-layout`` reads it: each line
    ``(xMin, yMin, xMax, yMax, text)`` in points from the top-left, cut at wide gaps, clipped to the page."""
    root = ET.fromstring(run(["pdftotext", "-f", "1", "-l", "1", "-bbox-layout", str(pdf), "-"], fonts.env))
    page = next(root.iter(XHTML + "page"))
    width, height = float(page.get("width")), float(page.get("height"))
    lines = []
    for line in page.iter(XHTML + "line"):
        words = [(float(w.get("xMin")), float(w.get("yMin")), float(w.get("xMax")), float(w.get("yMax")),
                  (w.text or "").strip()) for w in line.iter(XHTML + "word")]
        words = sorted((w for w in words if w[4]), key=lambda w: w[0])
        if not words:
            continue
        pitch = float(line.get("yMax")) - float(line.get("yMin"))
        gaps = [b[0] - a[2] for a, b in zip(words, words[1:], strict=False)]
        wide = max(GAP_LINES * pitch, 2.0 * float(np.median(gaps))) if gaps else 0.0  # not a justified line's spaces
        parts = [[words[0]]]
        for word in words[1:]:
            if word[0] - parts[-1][-1][2] > wide:
                parts.append([word])
            else:
                parts[-1].append(word)
        merged = []
        for part in parts:  # a part without a letter or digit (a bullet, a dash) stays with its neighbour
            if merged and (not _readable(part) or not _readable(merged[-1])):
                merged[-1] = merged[-1] + part
            else:
                merged.append(part)
        for part in merged:
            x0, y0 = max(0.0, min(w[0] for w in part)), max(0.0, min(w[1] for w in part))
            x1, y1 = min(width, max(w[2] for w in part)), min(height, max(w[3] for w in part))
            if x1 > x0 and y1 > y0:
                lines.append((x0, y0, x1, y1, " ".join(w[4] for w in part)))
    return width, height, lines


def _readable(words: list) -> bool:
    return any(c.isalnum() for w in words for c in w[4])


def _clipped_share(quad: np.ndarray, width: int, height: int) -> float:
    """The share of the convex quadrilateral's area inside [0, width] x [0, height] (Sutherland-Hodgman)."""
    def area(points) -> float:
        if len(points) < 3:
            return 0.0
        p = np.asarray(points, np.float64)
        return 0.5 * abs(float(np.dot(p[:, 0], np.roll(p[:, 1], -1)) - np.dot(p[:, 1], np.roll(p[:, 0], -1))))

    total = area(quad)
    if total <= 0:
        return 0.0
    polygon = [tuple(p) for p in quad.astype(np.float64)]
    for axis, limit, keep_low in ((0, 0.0, False), (0, float(width), True), (1, 0.0, False), (1, float(height), True)):
        def inside(p, axis=axis, limit=limit, keep_low=keep_low) -> bool:
            return p[axis] <= limit if keep_low else p[axis] >= limit

        result = []
        for i, current in enumerate(polygon):
            previous = polygon[i - 1]
            if inside(current):
                if not inside(previous):
                    result.append(_cross(previous, current, axis, limit))
                result.append(current)
            elif inside(previous):
                result.append(_cross(previous, current, axis, limit))
        polygon = result
        if not polygon:
            return 0.0
    return area(polygon) / total


def _cross(a, b, axis: int, limit: float) -> tuple:
    t = (limit - a[axis]) / (b[axis] - a[axis])
    return (a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1]))


def label_regions(lines: list, quads: np.ndarray, scale: float, width: int, height: int) -> list:
    """The regions ``(points [4, 2], text)`` of ``lines`` (as ``pdf_lines`` returns them) whose warped ``quads``
    fall in a ``width`` x ``height`` image, ``scale`` pixels a point in the page raster, the points clipped to the
    image. The text is ``DONT_CARE`` for a line less than ``KEEP_INSIDE`` inside the image, under ``MIN_TEXT_PX`` tall
    in the raster or without a letter or digit; a line less than ``DROP_INSIDE`` inside is left out."""
    regions = []
    for (_, y0, _, y1, text), quad in zip(lines, quads, strict=True):
        share = _clipped_share(quad, width, height)
        if share < DROP_INSIDE:
            continue
        small = (y1 - y0) * scale < MIN_TEXT_PX
        keep = share >= KEEP_INSIDE and not small and any(c.isalnum() for c in text)
        points = np.clip(quad, 0, [width - 1, height - 1])
        regions.append((points, text if keep else DONT_CARE))
    return regions
