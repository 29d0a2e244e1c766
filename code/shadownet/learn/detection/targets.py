"""DBNet's training targets for one page (Liao et al., AAAI 2020), numpy and OpenCV only.

Four float32 maps of the page's size: ``gt`` (the probability target: 1 inside each text region shrunk
by D), ``mask`` (where the probability loss counts), ``thresh`` (the threshold target, high along each
region's border) and ``thresh_mask`` (where the threshold loss counts). D is DBNet's offset

    D = area * (1 - r²) / perimeter,   r = shrink_ratio,

of the region's polygon (px² / px = px). The same D shrinks the region for ``gt`` and widens it for the
threshold band.

Shrinking and widening go by pixel distance, not polygon offsetting (no clipping library): the polygon
is rasterised with ``cv2.fillPoly`` and ``cv2.distanceTransform`` measures, from every pixel centre, the
Euclidean distance to the nearest pixel centre on the other side. Pixel conventions, all in one place:

* Pixel (row i, column j) is the point (x=j, y=i): coordinates are pixel centres.
* ``cv2.fillPoly`` rounds each edge to the nearest pixel centre and includes the pixels it lands on, so
  the polygon's border is taken to run through the centres of its boundary pixels. The signed distance
  of a centre to that border is ``s = d_in - 1`` inside (boundary pixels: 0) and ``s = -d_out`` outside,
  ``d_in`` / ``d_out`` being the distance transforms of the inside and of the outside. For an edge on
  integer coordinates along an axis this is exact.
* A region offset by D is rasterised as ``cv2.fillPoly`` would rasterise the exactly offset polygon,
  rounding to the nearest centre: shrunk = ``s > D - 1/2``, dilated = ``s >= -(D + 1/2)``. In the
  brief's words: shrunk = inside distance > D and dilated = outside distance <= D, the distances being
  taken to the midline between the last centre inside and the first outside (``d_in - 1/2``,
  ``d_out - 1/2``). E.g. x from 12 to 52 shrunk by 5.6 keeps centres x = 18 .. 46.
* The threshold value uses ``|s|``: exactly ``thresh_max`` on the boundary pixels.

Each region is computed in a window around it (its box widened by D + 2 px, cut to the image widened
by as much), not over the image: distances are then to the region's own border, even where the region
runs off the image (the image's edge is not a text edge), and a page costs its regions' sizes.
"""

from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np

from ...data.pages import polygons as geometry

_SHIFT = 4  # cv2.fillPoly's fractional bits: vertices placed to 1/16 px
_LIMIT = 2.0 ** 26  # |coordinate| beyond this would overflow fillPoly's int32 fixed point


def offset_distance(points, ratio: float) -> float:
    """DBNet's D for a polygon, in px: ``area * ratio / perimeter``; the shrink passes
    ``ratio = 1 - shrink_ratio²``, the detector's unclip its ``unclip_ratio``. 0 for no perimeter."""
    p = geometry.as_points(points)
    perimeter = float(np.sum(np.hypot(*(np.roll(p, -1, axis=0) - p).T)))
    return 0.0 if perimeter <= 0 else geometry.area(p) * ratio / perimeter


def _fill(canvas: np.ndarray, points: np.ndarray, value: float, origin=(0, 0)) -> None:
    """``cv2.fillPoly`` of ``points`` (image coordinates) onto ``canvas``, whose pixel (0, 0) is the image's
    pixel ``origin`` (x, y); vertices kept to 1/16 px."""
    fixed = np.round((points - np.asarray(origin, np.float64)) * (1 << _SHIFT)).astype(np.int32)
    cv2.fillPoly(canvas, [fixed], value, lineType=cv2.LINE_8, shift=_SHIFT)


def _signed_distance(points: np.ndarray, origin, shape) -> np.ndarray:
    """float32 ``shape``: ``s`` of the module's conventions for each pixel centre of the window at ``origin``."""
    inside = np.zeros(shape, np.uint8)
    _fill(inside, points, 1, origin)
    d_in = cv2.distanceTransform(inside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    d_out = cv2.distanceTransform(1 - inside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    # Beyond the window counts as neither side: a distance with no other side in sight comes back ~1.8e19.
    return np.where(inside > 0, d_in - 1.0, -d_out).astype(np.float32)


def _window(points: np.ndarray, margin: int, height: int, width: int):
    """The window's origin (x, y) and shape (rows, columns), and the slices of the image and of the window
    where they meet; None when the window misses the image."""
    low = np.floor(points.min(axis=0)).astype(np.int64) - margin
    high = np.ceil(points.max(axis=0)).astype(np.int64) + margin
    x0, y0 = max(int(low[0]), -margin), max(int(low[1]), -margin)
    x1, y1 = min(int(high[0]), width - 1 + margin), min(int(high[1]), height - 1 + margin)
    ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x1, width - 1), min(y1, height - 1)
    if ix0 > ix1 or iy0 > iy1:
        return None
    image = (slice(iy0, iy1 + 1), slice(ix0, ix1 + 1))
    window = (slice(iy0 - y0, iy1 - y0 + 1), slice(ix0 - x0, ix1 - x0 + 1))
    return (x0, y0), (y1 - y0 + 1, x1 - x0 + 1), image, window


def _degenerate(points: np.ndarray) -> bool:
    """Under 1 px² of area, or a boundary that meets itself: no D to speak of."""
    return geometry.area(points) < 1.0 or not geometry.is_simple(points)


def min_side(points) -> float:
    """The short side (px) of the polygon's minimum-area rectangle (``cv2.minAreaRect``)."""
    (_, _), (w, h), _ = cv2.minAreaRect(np.asarray(points, np.float32))
    return float(min(w, h))


def db_targets(polygons: Sequence, ignore: Sequence[bool], height: int, width: int,
               shrink_ratio: float = 0.4, thresh_min: float = 0.3, thresh_max: float = 0.7,
               min_text_size: float = 8) -> dict:
    """DBNet's targets for one page of ``height`` x ``width`` pixels.

    ``polygons``: one ``[N >= 3, 2]`` array of ``(x, y)`` pixel coordinates a region, in the image as the
    network sees it (after any augmentation), either orientation, points off the image allowed;
    ``ignore``: one flag a region, True for don't-care. Returns float32 ``[height, width]`` maps:

    * ``gt``: 1 inside each counted region shrunk by D (``shrink_ratio`` r), else 0;
    * ``mask``: 1 where the probability loss counts; 0 over the whole polygon of each region that is
      don't-care, degenerate (area under 1 px² or self-intersecting), too small (short side of its
      minimum-area rectangle under ``min_text_size`` px) or whose shrunk region vanishes;
    * ``thresh``: ``thresh_min + (thresh_max - thresh_min) * (1 - min(|s| / D, 1))`` over each counted
      region's band (|s| <= D, s the signed distance to its border in px), the max where bands
      overlap; ``thresh_min`` elsewhere;
    * ``thresh_mask``: 1 over the union of the counted regions dilated by D, else 0.

    Regions that are not counted get no ``gt`` and no band, as in DBNet. Raises ValueError for a
    polygon that is not finite ``[N >= 3, 2]`` points or has a coordinate beyond ±2**26, for mismatched
    lengths, an empty image or thresholds out of order.
    """
    if len(polygons) != len(ignore):
        raise ValueError(f"{len(polygons)} polygons but {len(ignore)} ignore flags")
    if height < 1 or width < 1:
        raise ValueError(f"an image of {width}x{height} pixels has nothing to fill")
    if not 0 <= thresh_min <= thresh_max <= 1 or not 0 <= shrink_ratio < 1:
        raise ValueError("need 0 <= thresh_min <= thresh_max <= 1 and 0 <= shrink_ratio < 1")
    gt = np.zeros((height, width), np.float32)
    mask = np.ones((height, width), np.float32)
    thresh = np.full((height, width), thresh_min, np.float32)
    thresh_mask = np.zeros((height, width), np.float32)
    for raw, dont_care in zip(polygons, ignore, strict=True):
        points = geometry.as_points(raw)
        if np.any(np.abs(points) > _LIMIT):
            raise ValueError(f"a polygon's coordinates must lie within ±{_LIMIT:.0f} px")
        if dont_care or _degenerate(points) or min_side(points) < min_text_size:
            _fill(mask, points, 0)
            continue
        distance = offset_distance(points, 1 - shrink_ratio ** 2)
        placed = _window(points, int(math.ceil(distance)) + 2, height, width)
        if placed is None:  # wholly off the image
            continue
        origin, shape, image, window = placed
        s = _signed_distance(points, origin, shape)
        shrunk = s > distance - 0.5
        if not shrunk.any():
            _fill(mask, points, 0)
            continue
        gt[image] = np.maximum(gt[image], shrunk[window])
        thresh_mask[image] = np.maximum(thresh_mask[image], s[window] >= -(distance + 0.5))
        closeness = np.clip(1.0 - np.abs(s[window]) / distance, 0.0, 1.0)
        thresh[image] = np.maximum(thresh[image], thresh_min + (thresh_max - thresh_min) * closeness)
    return {"gt": gt, "mask": mask, "thresh": thresh, "thresh_mask": thresh_mask}
