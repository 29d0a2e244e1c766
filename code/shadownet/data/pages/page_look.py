"""How a synthetic page looks, apart from its text: paper, ink colours, distractor shapes and photo-like faults.

Helpers of ``synth_pages``; like it, pure functions of the numpy Generator they are given. Images are float32
RGB (0..255) until :func:`degrade` returns uint8.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ...errors import ShadownetError
from ..sentences import uneven_light

_LUMA = np.float32([0.299, 0.587, 0.114])
MIN_CONTRAST = 80.0  # the least luminance gap between legible ink and its paper


def luminance(colour: np.ndarray) -> float:
    return float(np.dot(np.asarray(colour, np.float32), _LUMA))


def paper_colour(rng: np.random.Generator, dark: bool) -> np.ndarray:
    """A paper tone: light and slightly tinted (white, cream, grey, pale blue...), or dark for a dark page."""
    level = rng.uniform(15.0, 70.0) if dark else rng.uniform(185.0, 250.0)
    return np.clip(level + rng.uniform(-12.0, 12.0, size=3), 0, 255).astype(np.float32)


def paper(height: int, width: int, base: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A page of ``base`` colour: flat, or a gentle gradient, plus (often) a low-frequency texture and grain."""
    image = np.empty((height, width, 3), np.float32)
    image[:] = base
    if rng.random() < 0.5:  # a linear gradient towards a nearby tone
        theta = rng.uniform(0, 2 * math.pi)
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        along = xs * math.cos(theta) + ys * math.sin(theta)
        t = (along - along.min()) / (float(np.ptp(along)) or 1.0)
        image += t[..., None] * rng.uniform(-25.0, 25.0, size=3).astype(np.float32)
    if rng.random() < 0.6:  # blotchy paper: coarse noise, smoothly enlarged
        cell = int(rng.integers(8, 40))
        coarse = rng.normal(0.0, 1.0, size=(height // cell + 2, width // cell + 2)).astype(np.float32)
        field = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
        image += (field * rng.uniform(2.0, 7.0))[..., None]
    if rng.random() < 0.4:  # fine grain
        image += rng.normal(0.0, rng.uniform(1.0, 4.0), size=(height, width, 1)).astype(np.float32)
    return np.clip(image, 0, 255)


def ink_colour(rng: np.random.Generator, paper_rgb: np.ndarray, faint: bool = False) -> np.ndarray:
    """Ink for text on ``paper_rgb``: at least MIN_CONTRAST luminance away (black, grey or a colour), or, when
    ``faint``, only 12-30 levels away (illegible: such lines are marked don't-care)."""
    base = luminance(paper_rgb)
    darker = base > 127.0
    gap = rng.uniform(12.0, 30.0) if faint else rng.uniform(100.0, 220.0)
    level = float(np.clip(base - gap if darker else base + gap, 0.0, 255.0))
    tint = rng.uniform(-60.0, 60.0, size=3) if rng.random() < 0.3 and not faint else rng.uniform(-8, 8, size=3)
    colour = np.clip(level + tint - float(np.dot(tint, _LUMA)), 0, 255).astype(np.float32)
    if not faint and abs(luminance(colour) - base) < MIN_CONTRAST:  # clipped into low contrast: plain black/white
        colour = np.full(3, 0.0 if darker else 255.0, np.float32)
    return colour


# -- distractors: ink that is not text ---------------------------------------------------------------


def distractor(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A uint8 coverage mask (``height`` x ``width``) of one non-text shape: a rule, a frame, a filled box, a
    blob, a scribble, a dotted leader or barcode-like stripes."""
    mask = np.zeros((height, width), np.uint8)
    x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
    w, h = int(rng.integers(8, max(9, width // 2))), int(rng.integers(8, max(9, height // 3)))
    thickness = int(rng.integers(1, 4))
    shape = rng.random()
    if shape < 0.25:  # a rule, mostly horizontal or vertical
        if rng.random() < 0.8:
            end = (x + w, y) if rng.random() < 0.7 else (x, y + h)
        else:
            end = (x + int(rng.integers(-w, w + 1)), y + int(rng.integers(-h, h + 1)))
        cv2.line(mask, (x, y), end, 255, thickness, cv2.LINE_AA)
    elif shape < 0.4:  # a frame
        cv2.rectangle(mask, (x, y), (x + w, y + h), 255, thickness, cv2.LINE_AA)
    elif shape < 0.5:  # a filled box (a photo, a stamp)
        cv2.rectangle(mask, (x, y), (x + w // 3, y + h // 2), 255, -1)
    elif shape < 0.65:  # a blob: a filled ellipse or random polygon, softened
        if rng.random() < 0.5:
            axes = (max(2, w // 6), max(2, h // 3))
            cv2.ellipse(mask, (x, y), axes, float(rng.uniform(0, 180)), 0, 360, 255, -1, cv2.LINE_AA)
        else:
            angles = np.sort(rng.uniform(0, 2 * math.pi, size=int(rng.integers(5, 10))))
            radii = rng.uniform(0.4, 1.0, size=len(angles)) * min(w, h) / 3
            points = np.stack([x + radii * np.cos(angles), y + radii * np.sin(angles)], axis=1)
            cv2.fillPoly(mask, [np.rint(points).astype(np.int32)], 255, cv2.LINE_AA)
        mask = cv2.GaussianBlur(mask, (0, 0), float(rng.uniform(0.5, 2.5)))
    elif shape < 0.8:  # a scribble: a random walk
        steps = rng.normal(0.0, 1.0, size=(int(rng.integers(4, 12)), 2)) * [w / 4, h / 4]
        points = np.cumsum(steps, axis=0) + [x, y]
        cv2.polylines(mask, [np.rint(points).astype(np.int32)], False, 255, thickness, cv2.LINE_AA)
    elif shape < 0.9:  # a dotted or dashed leader
        dash, step = int(rng.integers(1, 6)), int(rng.integers(4, 10))
        for start in range(x, x + w, dash + step):
            cv2.line(mask, (start, y), (start + dash - 1, y), 255, thickness)
    else:  # barcode-like stripes
        left = x
        while left < x + w // 2:
            bar = int(rng.integers(1, 5))
            mask[y : y + h // 2 + 4, left : left + bar] = 255
            left += bar + int(rng.integers(1, 5))
    return mask


def blend(image: np.ndarray, mask: np.ndarray, colour: np.ndarray, opacity: float = 1.0) -> np.ndarray:
    """``colour`` laid over ``image`` through a full-size coverage ``mask``."""
    alpha = (mask.astype(np.float32) * (opacity / 255.0))[..., None]
    return image * (1.0 - alpha) + colour * alpha


# -- photo-like faults -----------------------------------------------------------------------------


def degrade(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each with its own probability: uneven light, slight blur, sensor noise, JPEG re-encoding; then uint8.

    Mild throughout: the smallest text (12 px) stays legible.
    """
    if rng.random() < 0.5:
        image = uneven_light(image, rng)
    if rng.random() < 0.35:
        image = cv2.GaussianBlur(image, (0, 0), float(rng.uniform(0.3, 1.0)))
    if rng.random() < 0.6:
        image = image + rng.normal(0.0, rng.uniform(1.5, 7.0), size=image.shape).astype(np.float32)
    image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    if rng.random() < 0.4:
        quality = int(rng.integers(35, 86))
        ok, encoded = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise ShadownetError("could not re-encode a page image as JPEG")
        image = np.ascontiguousarray(cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1])
    return image
