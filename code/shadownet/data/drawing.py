"""What every synthetic kind draws with: the fonts and the word list (``Renderer``), a text's anti-aliased mask,
shrinking it to fit, and painting it into an image. A leaf of ``render`` (lines, captchas, digits) and
``sentences``: pure functions, the same inputs give the same pixels.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont, features

from ..errors import ShadownetError

# -- fonts and words -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Renderer:
    """The read-only inputs of rendering: font files and the word list.

    Built once per chunk of samples so a font file is read once, not once per
    image. ``fonts[i] is None`` stands for Pillow's built-in scalable font.
    """

    fonts: tuple[bytes | None, ...] = field(repr=False)
    words: tuple[str, ...] = field(repr=False)

    @classmethod
    def create(cls, font_files: Sequence[Path] = ()) -> "Renderer":
        """Built-in font plus ``font_files``; raises ShadownetError if one cannot be used."""
        if not features.check("freetype2"):
            raise ShadownetError("Pillow was built without FreeType; synthetic text cannot be rendered")
        fonts: list[bytes | None] = [None]
        for path in font_files:
            fonts.append(_read_font(Path(path)))
        return cls(tuple(fonts), _load_words())

    def pick(self, rng: np.random.Generator) -> int:
        """Which font to use, chosen by ``rng`` (an index for :meth:`font`)."""
        return int(rng.integers(len(self.fonts)))

    def font(self, choice: int, size: int) -> ImageFont.FreeTypeFont:
        """Font number ``choice`` at ``size`` pixels."""
        data = self.fonts[choice]
        if data is None:
            return ImageFont.load_default(size=size)
        return ImageFont.truetype(io.BytesIO(data), size=size)


def _read_font(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ShadownetError(f"font {path}: cannot read ({exc.strerror or exc})") from None
    try:
        ImageFont.truetype(io.BytesIO(data), size=20).getbbox("a0")
    except (OSError, ValueError) as exc:
        raise ShadownetError(f"font {path}: not a usable TrueType/OpenType font ({exc})") from None
    return data


def _load_words() -> tuple[str, ...]:
    text = resources.files("shadownet.data").joinpath("resources", "words.txt").read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


# -- drawing ---------------------------------------------------------------------------------------


def text_mask(text: str, font: ImageFont.FreeTypeFont, angle: float) -> tuple[np.ndarray, float]:
    """Anti-aliased coverage of ``text`` rotated by ``angle``, cropped to the ink.

    Returns the mask and the row (in the cropped mask) where the middle of the
    font's line box ended up, so lines can be placed by their line box rather
    than by their ink: "one" and "Typing" then sit at the same height.
    """
    ascent, descent = font.getmetrics()
    left, top, right, bottom = font.getbbox(text)
    # The canvas holds both the line box and the ink (some glyphs overshoot the line box).
    box_top, box_bottom = min(0, top), max(ascent + descent, bottom)
    pad = 4
    image = Image.new("L", (right - left + 2 * pad, box_bottom - box_top + 2 * pad), 0)
    ImageDraw.Draw(image).text((pad - left, pad - box_top), text, fill=255, font=font)
    # Offset of the line box's middle from the canvas centre; a rotation of a few
    # degrees about the centre leaves it nearly unchanged.
    offset = pad - box_top + (ascent + descent) / 2 - image.height / 2
    if angle:
        image = image.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    ink = image.getbbox()
    if ink is None:
        raise ShadownetError(f"the font renders no ink for {text!r}; it probably lacks these glyphs")
    return np.asarray(image.crop(ink)), image.height / 2 + offset - ink[1]


def fit(mask: np.ndarray, max_width: int | None, max_height: int) -> tuple[np.ndarray, float]:
    """Shrink ``mask`` (never enlarge) so it fits; returns it and the scale used."""
    scale = min(1.0, max_height / mask.shape[0])
    if max_width is not None:
        scale = min(scale, max_width / mask.shape[1])
    if scale >= 1.0:
        return mask, 1.0
    size = (max(1, int(mask.shape[1] * scale)), max(1, int(mask.shape[0] * scale)))
    return cv2.resize(mask, size, interpolation=cv2.INTER_AREA), scale


def paint(image: np.ndarray, mask: np.ndarray, top: int, left: int, colour: np.ndarray) -> np.ndarray:
    """Blend ``colour`` into ``image`` through ``mask`` placed at (top, left); the mask must fit."""
    height, width = mask.shape
    assert 0 <= top and top + height <= image.shape[0] and 0 <= left and left + width <= image.shape[1]
    region = image[top : top + height, left : left + width]
    alpha = (mask.astype(np.float32) / 255.0)[..., None]
    image[top : top + height, left : left + width] = region * (1 - alpha) + colour * alpha
    return image


def font_size(renderer: Renderer, choice: int, height: int, rng: np.random.Generator, low: float, high: float) -> int:
    """A size for font ``choice`` whose line box (ascent + descent, measured at 100 px) fills a random share in
    ``[low, high)`` of ``height``."""
    ascent, descent = renderer.font(choice, 100).getmetrics()
    return max(8, round(100 * height * rng.uniform(low, high) / (ascent + descent)))


def place(mask: np.ndarray, middle: float, scale: float, height: int, margin: int, rng: np.random.Generator,
          jitter: float, side: int) -> tuple[int, int, int]:
    """Where a text ``mask`` goes on a line ``height`` px high: (top, left, the line's width). The middle of its
    line box near the image's middle (within ``jitter`` x height), clamped so the ink stays inside; ``margin``
    to ``side`` px of paper left and right."""
    ink_h, ink_w = mask.shape
    top = round(height / 2 + rng.uniform(-jitter, jitter) * height - middle * scale)
    top = min(max(top, margin), height - margin - ink_h)
    left = int(rng.integers(margin, side + 1))
    return top, left, left + ink_w + int(rng.integers(margin, side + 1))
