"""Drawing one synthetic sample: fonts, words, and the text-line and captcha renderers of ``synth`` (and the way to
the ``sentences`` and ``pages`` kinds).

Pure functions of a ``numpy`` random generator: the same generator state draws the same image, on any
machine, whichever process draws it.
"""

from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np

from ..choices import SYNTH_KINDS
from ..errors import ShadownetError
from .drawing import Renderer, fit, font_size, paint, place, text_mask
from .pages.synth_pages import icdar_gt, render_page
from .sentences import render_sentence

CAPTCHA_SIZE = (120, 40)  # width, height
CAPTCHA_LENGTH = 4

_DIGITS = "0123456789"
_CAPTCHA_CHARS = _DIGITS + "abcdefghijklmnopqrstuvwxyz"


# -- fonts and words -------------------------------------------------------------------------------


# -- rendering -------------------------------------------------------------------------------------


def render(kind: str, rng: np.random.Generator, renderer: Renderer | None = None) -> tuple[np.ndarray, str]:
    """Render one sample of ``kind``: an (H, W, 3) uint8 RGB image and its label.

    ``rng`` is a numpy Generator and the only source of randomness, so the
    same generator state always gives the same image. ``renderer`` defaults
    to the built-in font only. A ``pages`` sample's label is its ICDAR 2015
    ground truth (``pages.synth_pages.icdar_gt``: one line a region).
    """
    if kind not in SYNTH_KINDS:
        raise ShadownetError(f"unknown synthetic kind {kind!r}; choose one of {', '.join(SYNTH_KINDS)}")
    renderer = renderer or Renderer.create()
    if kind == "captcha":
        return _render_captcha(rng, renderer)
    if kind == "sentences":
        return render_sentence(rng, renderer)
    if kind == "pages":
        image, regions = render_page(rng, renderer)
        return image, icdar_gt(regions, image.shape[1], image.shape[0])
    if kind == "digits":
        text = _random_number(rng, int(rng.integers(3, 9)))
        return _render_line(text, int(rng.integers(32, 49)), rng, renderer), text
    text = _random_line_text(rng, renderer.words)
    return _render_line(text, int(rng.integers(32, 65)), rng, renderer), text


def _random_number(rng: np.random.Generator, length: int) -> str:
    # Real numbers rarely start with 0, except 0 itself.
    first = _DIGITS[int(rng.integers(1 if length > 1 else 0, 10))]
    return first + "".join(_DIGITS[i] for i in rng.integers(0, 10, size=length - 1))


def _random_line_text(rng: np.random.Generator, words: Sequence[str]) -> str:
    if rng.random() < 0.25:
        return _random_number(rng, int(rng.integers(1, 8)))
    word = words[int(rng.integers(len(words)))]
    case = rng.random()
    if case < 0.6:
        return word
    if case < 0.85:
        return word.capitalize()
    return word.upper()


def _background_colours(rng: np.random.Generator, light: bool) -> tuple[np.ndarray, np.ndarray]:
    """Two nearby colours for a gradient, within 180..255 (light) or 0..100 (dark)."""
    base = rng.integers(205, 256, size=3) if light else rng.integers(0, 76, size=3)
    other = np.clip(base + rng.integers(-25, 26, size=3), 0, 255)
    return base.astype(np.float32), other.astype(np.float32)


def _background(height: int, width: int, colours: tuple[np.ndarray, np.ndarray], rng) -> np.ndarray:
    """A linear gradient between the two ``colours`` in a random direction, float32 RGB."""
    theta = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    along = xs * math.cos(theta) + ys * math.sin(theta)
    span = float(along.max() - along.min()) or 1.0
    t = ((along - along.min()) / span)[..., None]
    return colours[0] * (1 - t) + colours[1] * t


def _finish(image: np.ndarray, rng: np.random.Generator, max_sigma: float) -> np.ndarray:
    """Optional slight blur and mild sensor noise, then back to uint8.

    Noise stays mild because the record writer re-encodes these as JPEG and
    noise is what makes a JPEG large.
    """
    if rng.random() < 0.3:
        image = cv2.GaussianBlur(image, (3, 3), float(rng.uniform(0.4, 0.9)))
    sigma = rng.uniform(0.0, max_sigma)
    image = image + rng.normal(0.0, sigma, size=image.shape).astype(np.float32)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _render_line(text: str, height: int, rng: np.random.Generator, renderer: Renderer) -> np.ndarray:
    """One token on one line, fully inside a ``height``-pixel-high image."""
    margin = 2
    choice = renderer.pick(rng)
    size = font_size(renderer, choice, height, rng, 0.55, 0.85)
    mask, middle = text_mask(text, renderer.font(choice, size), float(rng.uniform(-3.0, 3.0)))
    # Rotating a long word raises its ink box; shrink rather than crop.
    mask, scale = fit(mask, None, height - 2 * margin)
    top, left, width = place(mask, middle, scale, height, margin, rng, 0.08, max(margin + 1, height // 2))

    # Text in the opposite band of 0..255 from the background: >= ~80 apart per channel.
    light = bool(rng.random() < 0.75)
    image = _background(height, width, _background_colours(rng, light), rng)
    colour = rng.integers(0, 101, size=3) if light else rng.integers(180, 256, size=3)
    image = paint(image, mask, top, left, colour.astype(np.float32))
    return _finish(image, rng, max_sigma=6.0)


def _render_captcha(rng: np.random.Generator, renderer: Renderer) -> tuple[np.ndarray, str]:
    """Four characters in a fixed 120x40 image, each rotated, sized and placed on its own."""
    width, height = CAPTCHA_SIZE
    # Larger than the warp's reach (<= 1.5 px), so warping never pushes ink out.
    margin = 3
    text = "".join(_CAPTCHA_CHARS[i] for i in rng.integers(0, len(_CAPTCHA_CHARS), size=CAPTCHA_LENGTH))
    slot = (width - 2 * margin) / CAPTCHA_LENGTH

    # Dark characters on a light ground, like the classic captcha task.
    image = _background(height, width, _background_colours(rng, light=True), rng)
    for position, char in enumerate(text):
        font = renderer.font(renderer.pick(rng), int(rng.integers(28, 38)))
        mask, _ = text_mask(char, font, float(rng.uniform(-25.0, 25.0)))
        # Wide glyphs shrink to their slot so neighbours can touch but not merge.
        mask, _ = fit(mask, int(slot), height - 2 * margin)
        ink_h, ink_w = mask.shape
        centre = margin + slot * (position + 0.5) + rng.uniform(-3.0, 3.0)
        left = min(max(round(centre - ink_w / 2), margin), width - margin - ink_w)
        top = int(rng.integers(margin, height - margin - ink_h + 1))
        image = paint(image, mask, top, left, rng.integers(0, 91, size=3).astype(np.float32))

    image = _interference(image, rng)
    image = _warp(image, rng)
    return _finish(image, rng, max_sigma=4.0), text


def _interference(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A few thin lines and dots; thin and lighter than the text so they never hide a glyph."""
    height, width = image.shape[:2]
    image = np.ascontiguousarray(image)
    for _ in range(int(rng.integers(2, 5))):
        start = (int(rng.integers(0, width // 3)), int(rng.integers(0, height)))
        end = (int(rng.integers(2 * width // 3, width)), int(rng.integers(0, height)))
        colour = tuple(float(c) for c in rng.integers(100, 171, size=3))
        cv2.line(image, start, end, colour, thickness=1, lineType=cv2.LINE_AA)
    count = int(rng.integers(30, 81))
    xs = rng.integers(0, width, size=count)
    ys = rng.integers(0, height, size=count)
    image[ys, xs] = rng.integers(0, 256, size=(count, 3)).astype(np.float32)
    return image


def _warp(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A gentle sinusoidal displacement (at most 1.5 px) in both directions."""
    height, width = image.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    amp_x, amp_y = rng.uniform(0.5, 1.5, size=2)
    period_y, period_x = rng.uniform(20.0, 40.0), rng.uniform(40.0, 90.0)
    phase_x, phase_y = rng.uniform(0, 2 * math.pi, size=2)
    map_x = xs + amp_x * np.sin(2 * math.pi * ys / period_y + phase_x)
    map_y = ys + amp_y * np.sin(2 * math.pi * xs / period_x + phase_y)
    return cv2.remap(image, map_x.astype(np.float32), map_y.astype(np.float32),
                     interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
