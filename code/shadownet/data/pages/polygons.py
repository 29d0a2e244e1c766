"""Plane geometry of text regions: area, simplicity, convexity, clipping, intersection and IoU.

Points are float arrays of shape ``[N, 2]`` holding ``(x, y)`` pixel coordinates, ``N >= 3``, in either
orientation (clockwise or not); the polygon closes from the last point back to the first.

Intersections are exact: ``cv2.intersectConvexConvex`` when both polygons are convex, otherwise a sweep
over horizontal slabs (no approximation: see ``_slab_overlap``). A self-intersecting polygon is filled
there by the even-odd rule (a bow-tie covers both lobes).
"""

from __future__ import annotations

import cv2
import numpy as np


def as_points(points) -> np.ndarray:
    """``points`` as a float64 ``[N, 2]`` array; raises ValueError unless it is one with N >= 3 finite points."""
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 2 or len(p) < 3:
        raise ValueError(f"a polygon needs an [N, 2] array of points with N >= 3, not shape {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError("a polygon's points must be finite numbers")
    return p


def signed_area(points) -> float:
    """Shoelace area: positive when the points run counter-clockwise in a y-up frame (clockwise on screen)."""
    p = as_points(points)
    x, y = p[:, 0], p[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def area(points) -> float:
    """Absolute shoelace area in px²: exact for a simple polygon; for a self-intersecting one, lobes that
    wind in opposite senses cancel (a symmetric bow-tie has area 0)."""
    return abs(signed_area(points))


def _tolerance(p: np.ndarray) -> float:
    # Cross products below this count as zero, so that float noise does not decide collinearity.
    extent = float(np.max(np.ptp(p, axis=0))) or 1.0
    return 1e-12 * extent * extent


def _orient(a, b, c, tol: float) -> int:
    """-1, 0 or 1: the sign of the cross product (b - a) x (c - a), zero within ``tol``."""
    cross = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
    return 0 if abs(cross) <= tol else (1 if cross > 0 else -1)


def _within_box(a, b, c) -> bool:
    """Whether c (collinear with a and b) lies on the segment ab."""
    return min(a[0], b[0]) <= c[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= c[1] <= max(a[1], b[1])


def _segments_meet(a, b, c, d, tol: float) -> bool:
    """Whether segments ab and cd share any point: a proper crossing, a touch or a collinear overlap."""
    d1, d2 = _orient(c, d, a, tol), _orient(c, d, b, tol)
    d3, d4 = _orient(a, b, c, tol), _orient(a, b, d, tol)
    if d1 * d2 < 0 and d3 * d4 < 0:
        return True
    return ((d1 == 0 and _within_box(c, d, a)) or (d2 == 0 and _within_box(c, d, b))
            or (d3 == 0 and _within_box(a, b, c)) or (d4 == 0 and _within_box(a, b, d)))


def is_simple(points) -> bool:
    """Whether the polygon's boundary never meets itself.

    False for a repeated consecutive point (the last and first included), for two non-adjacent edges that
    cross, touch or overlap, and for two adjacent edges that fold back onto each other (a spike).
    """
    p = as_points(points)
    n, tol = len(p), _tolerance(p)
    if np.any(np.all(p == np.roll(p, -1, axis=0), axis=1)):
        return False
    pts = p.tolist()
    for i in range(n):
        a, b = pts[i], pts[(i + 1) % n]
        for j in range(i + 1, n):
            c, d = pts[j], pts[(j + 1) % n]
            if j == i + 1 or (i == 0 and j == n - 1):
                # Adjacent edges share a vertex; they meet elsewhere only when collinear and pointing back.
                first, second = ((a, b), (c, d)) if j == i + 1 else ((c, d), (a, b))
                u = (first[1][0] - first[0][0], first[1][1] - first[0][1])
                v = (second[1][0] - second[0][0], second[1][1] - second[0][1])
                if abs(u[0] * v[1] - u[1] * v[0]) <= tol and u[0] * v[0] + u[1] * v[1] < 0:
                    return False
            elif _segments_meet(a, b, c, d, tol):
                return False
    return True


def is_convex(points) -> bool:
    """Whether the polygon is simple and turns one way only (straight-through vertices allowed).

    A polygon with every turn straight (all points on one line) is not convex: it has no area.
    """
    p = as_points(points)
    edges = np.roll(p, -1, axis=0) - p
    turns = edges[:, 0] * np.roll(edges[:, 1], -1) - edges[:, 1] * np.roll(edges[:, 0], -1)
    tol = _tolerance(p)
    signs = np.sign(turns[np.abs(turns) > tol])
    if len(signs) == 0 or not (np.all(signs > 0) or np.all(signs < 0)):
        return False
    return is_simple(p)


def clip_to_image(points, width: int, height: int) -> tuple[np.ndarray, bool]:
    """Each point clamped into ``[0, width - 1] x [0, height - 1]``, and whether any point moved.

    A clamp per point, not a polygon clip: a region partly outside keeps its vertex count and its corners
    outside slide onto the border (what ``check_region``'s "clip" policy asks for). Float points keep
    their dtype; others come back as float64.
    """
    p = np.asarray(points)
    if not np.issubdtype(p.dtype, np.floating):
        p = p.astype(np.float64)
    clipped = np.clip(p, [0.0, 0.0], [width - 1.0, height - 1.0]).astype(p.dtype)
    return clipped, bool(np.any(clipped != p))


def _crossing_heights(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The y of every point where two edges of ``a`` and ``b`` together cross (a's own and b's own included:
    a self-intersecting polygon's edges swap order there too)."""
    starts = np.concatenate([a, b])
    ends = np.concatenate([np.roll(a, -1, axis=0), np.roll(b, -1, axis=0)])
    r = ends - starts
    diff = starts[None, :, :] - starts[:, None, :]  # [i, j]: start j - start i
    denom = r[:, None, 0] * r[None, :, 1] - r[:, None, 1] * r[None, :, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (diff[..., 0] * r[None, :, 1] - diff[..., 1] * r[None, :, 0]) / denom
        u = (diff[..., 0] * r[:, None, 1] - diff[..., 1] * r[:, None, 0]) / denom
    # Strictly inside both edges: a crossing at an edge's end is at a vertex, whose y is an event anyway.
    proper = (denom != 0) & (t > 0) & (t < 1) & (u > 0) & (u < 1)
    return (starts[:, None, 1] + np.where(proper, t, 0.0) * r[:, None, 1])[proper]


def _edge_xs(p: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """``[len(ys), N]``: where each edge of ``p`` meets each horizontal line y, NaN where it does not."""
    start, end = p, np.roll(p, -1, axis=0)
    low, high = np.minimum(start[:, 1], end[:, 1]), np.maximum(start[:, 1], end[:, 1])
    spans = (ys[:, None] > low) & (ys[:, None] < high)  # never true for a horizontal edge
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (ys[:, None] - start[:, 1]) / (end[:, 1] - start[:, 1])
    return np.where(spans, start[:, 0] + t * (end[:, 0] - start[:, 0]), np.nan)


def _slab_overlap(a: np.ndarray, b: np.ndarray) -> float:
    """The area of a ∩ b, both filled by the even-odd rule, exact up to float64 rounding.

    Cut the plane into horizontal slabs at every vertex's y and every y where two edges cross. Inside a
    slab no edge starts, ends or passes another, so the length of the overlap along a horizontal line is
    linear in y: its value at the slab's middle times the slab's height is the slab's area.
    """
    band = max(a[:, 1].min(), b[:, 1].min()), min(a[:, 1].max(), b[:, 1].max())
    ys = np.unique(np.concatenate([a[:, 1], b[:, 1], _crossing_heights(a, b), band]))
    ys = ys[(ys >= band[0]) & (ys <= band[1])]
    if len(ys) < 2:
        return 0.0
    middles, heights = (ys[:-1] + ys[1:]) / 2, np.diff(ys)
    xs = np.concatenate([_edge_xs(a, middles), _edge_xs(b, middles)], axis=1)
    owner = np.repeat([0, 1], [len(a), len(b)])
    order = np.argsort(xs, axis=1)  # NaN (no crossing) sorts last
    xs, owner = np.take_along_axis(xs, order, axis=1), owner[order]
    crossed = ~np.isnan(xs)
    # Walking right along the line, each crossing of a polygon's edge flips whether we are inside it.
    inside_a = np.cumsum(crossed & (owner == 0), axis=1) % 2 == 1
    inside_b = np.cumsum(crossed & (owner == 1), axis=1) % 2 == 1
    lengths = np.where(inside_a[:, :-1] & inside_b[:, :-1], np.diff(xs, axis=1), 0.0).sum(axis=1)
    return float(np.dot(lengths, heights))


def intersection_area(a, b) -> float:
    """The area (px²) of the overlap of polygons ``a`` and ``b``.

    Both convex: ``cv2.intersectConvexConvex`` (exact geometry in float32). Otherwise the slab sweep of
    ``_slab_overlap``, exact in float64 for any two polygons; a self-intersecting one is filled by the
    even-odd rule (a bow-tie: both lobes), unlike ``area``'s shoelace, which cancels them.
    """
    a, b = as_points(a), as_points(b)
    if is_convex(a) and is_convex(b):
        overlap, _ = cv2.intersectConvexConvex(a.astype(np.float32), b.astype(np.float32))
        return max(0.0, float(overlap))
    return _slab_overlap(a, b)


def filled_area(points) -> float:
    """The area a polygon covers: its shoelace area when it is simple, else its even-odd fill's area."""
    p = as_points(points)
    return area(p) if is_simple(p) else _slab_overlap(p, p)


def iou(a, b) -> float:
    """Intersection over union of two polygons, in [0, 1]; 0 when either covers no area."""
    a, b = as_points(a), as_points(b)
    overlap = intersection_area(a, b)
    union = filled_area(a) + filled_area(b) - overlap
    return 0.0 if union <= 0 or overlap <= 0 else min(1.0, overlap / union)
