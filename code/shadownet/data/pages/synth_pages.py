"""The ``pages`` kind of ``synth``: page images and their text lines, for training text detection (DBNet).

A page: 480-1000 x 360-800 px of paper (flat or a gradient, often blotchy or grainy; one page in ten dark), a
few text blocks (paragraphs, headings, rows of a label and a value), each line a text of the ``sentences`` kind
(words, numbers, prices, dates, codes, punctuation) cut at a space to fit, in a font of the ``Renderer`` at
12-40 px and an ink far from the paper in luminance; some blocks slightly rotated; shapes that are not text
(rules, frames, boxes, blobs, scribbles, leaders, stripes) kept clear of the text; then a slight whole-page
rotation and perspective, applied to the image and to every box with the same matrix, and mild photo faults.

Regions: one per text line, the rectangle through the centres of the line's outermost ink pixels, rotated and
warped as its pixels are: four corners clockwise from the text's top-left, with exactly the drawn text. Lines
are at least ``GAP`` px apart before the page warp, so boxes never overlap. About one line in 25 is drawn tiny
(6-9 px) or faint and marked ``###`` (don't care).

Like the other kinds, a pure function of the numpy Generator it is given.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import ImageFont

from ..drawing import Renderer, paint, text_mask
from ..sentences import sentence_text
from .annotations import DONT_CARE
from .page_look import blend, degrade, distractor, ink_colour, paper, paper_colour

PAGE_WIDTH = (480, 1000)
PAGE_HEIGHT = (360, 800)
TEXT_SIZE = (12, 40)
GAP = 4  # the least distance between two lines' boxes, and between a box and a distractor, before the page warp
DONT_CARE_SHARE = 0.04
_SEPARATORS = frozenset("-/&#+")  # the sentences kind's separator tokens: a cut line does not end on one


@dataclass
class _Page:
    image: np.ndarray  # float32 RGB
    paper: np.ndarray  # its base colour
    margin: int  # text keeps this far from the edges, so the page warp keeps it inside
    taken: np.ndarray = field(init=False)  # uint8: 1 on every line's box grown by GAP
    regions: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.taken = np.zeros(self.image.shape[:2], np.uint8)


@dataclass(frozen=True)
class _Style:
    """What the lines of one block share."""

    choice: int  # the Renderer's font number
    font: ImageFont.FreeTypeFont
    ink: np.ndarray
    angle: float  # degrees, counter-clockwise
    align: int  # 0 left, 1 right, 2 centre


def render_page(rng: np.random.Generator, renderer: Renderer | None = None
                ) -> tuple[np.ndarray, list[tuple[np.ndarray, str]]]:
    """One page: an (H, W, 3) uint8 RGB image and its regions, each ``(points, text)``: ``points`` a float32
    ``[4, 2]`` array of (x, y) pixel centres clockwise from the text's top-left, ``text`` the line or ``###``.
    ``renderer`` defaults to Pillow's built-in font only."""
    renderer = renderer or Renderer.create()
    width = int(rng.integers(PAGE_WIDTH[0], PAGE_WIDTH[1] + 1))
    height = int(rng.integers(PAGE_HEIGHT[0], PAGE_HEIGHT[1] + 1))
    base = paper_colour(rng, dark=bool(rng.random() < 0.1))
    page = _Page(paper(height, width, base, rng), base, margin=round(0.03 * min(width, height)) + 4)
    for _ in range(int(rng.integers(4, 12))):
        _block(page, rng, renderer)
    for _ in range(int(rng.integers(0, 8))):
        _distractor(page, rng)
    image, regions = _warp_page(page, rng)
    return degrade(image, rng), regions


def icdar_gt(regions: list[tuple[np.ndarray, str]], width: int, height: int) -> str:
    """The ICDAR 2015 ground truth of a page's regions: ``x1,y1,...,x4,y4,text`` lines, integer pixels inside
    the ``width`` x ``height`` image, each ending in ``\\n``."""
    lines = []
    for points, text in regions:
        corners = np.clip(np.rint(points), 0, [width - 1, height - 1]).astype(np.int64)
        lines.append(",".join(str(int(v)) for v in corners.reshape(-1)) + f",{text}\n")
    return "".join(lines)


# -- text ------------------------------------------------------------------------------------------


def _block(page: _Page, rng: np.random.Generator, renderer: Renderer) -> None:
    """A heading, a paragraph or rows of label and value somewhere on the page; lines that do not fit in the
    free space are left out."""
    height, width = page.taken.shape
    kind = rng.random()
    if kind < 0.2:  # heading
        size, lines, columns = int(rng.integers(22, TEXT_SIZE[1] + 1)), 1, 1
    elif kind < 0.45:  # rows: label on the left, value on the right
        size, lines, columns = int(rng.integers(TEXT_SIZE[0], 25)), int(rng.integers(2, 9)), 2
    else:  # paragraph
        size, lines, columns = int(rng.integers(TEXT_SIZE[0], 29)), int(rng.integers(1, 11)), 1
    choice = renderer.pick(rng)
    font = renderer.font(choice, size)
    angle = float(rng.uniform(-6.0, 6.0)) if rng.random() < 0.2 else 0.0
    style = _Style(choice, font, ink_colour(rng, page.paper), angle, int(rng.integers(0, 3)) if columns == 1 else 0)
    ascent, descent = font.getmetrics()
    pitch = (ascent + descent) * rng.uniform(1.15, 1.8)
    room = width - 2 * page.margin
    left = page.margin + int(rng.integers(0, room // 2))
    block_width = int(rng.integers(min(160, width - page.margin - left), width - page.margin - left + 1))
    top = page.margin + pitch / 2
    middle = rng.uniform(top, max(top + 1.0, height - page.margin - pitch * (lines - 0.5)))
    for _ in range(lines):
        if middle > height - page.margin:
            break
        if columns == 1:
            _line(page, rng, renderer, style, left, block_width, middle)
        else:
            label_width = int(block_width * rng.uniform(0.45, 0.6))
            _line(page, rng, renderer, style, left, label_width, middle)
            right = _Style(choice, font, style.ink, angle, align=1)
            _line(page, rng, renderer, right, left + label_width + 2 * GAP, block_width - label_width - 2 * GAP,
                  middle)
        middle += pitch


def _fit(text: str, font: ImageFont.FreeTypeFont, room: int) -> str:
    """``text`` less as many words at its end as keep its ink within ``room`` px; "" when none fit."""
    def too_wide(line: str) -> bool:
        left, _, right, _ = font.getbbox(line)
        return right - left > room

    words = text.split(" ")
    while words and (words[-1] in _SEPARATORS or too_wide(" ".join(words))):
        words.pop()
    return " ".join(words)


def _line(page: _Page, rng: np.random.Generator, renderer: Renderer, style: _Style, left: int, room: int,
          middle: float) -> None:
    """One line of text in ``room`` px from ``left``, its line box's middle at row ``middle``, if it fits."""
    font, ink = style.font, style.ink
    dont_care = bool(rng.random() < DONT_CARE_SHARE)
    if dont_care and rng.random() < 0.5:
        font = renderer.font(style.choice, int(rng.integers(6, 10)))
    elif dont_care:
        ink = ink_colour(rng, page.paper, faint=True)
    text = _fit(sentence_text(rng, renderer.words), font, room)
    angle = style.angle + (float(rng.uniform(-1.0, 1.0)) if style.angle else 0.0)
    indent = int(rng.integers(0, max(1, room // 8))) if rng.random() < 0.3 else 0
    if not text:
        return
    flat, line_middle = text_mask(text, font, 0.0)
    mask, quad, line_middle = _rotate(flat, line_middle, angle)
    height, width = mask.shape
    x = (left + indent, left + room - width, left + (room - width) // 2)[style.align]
    y = round(middle - line_middle)
    quad = quad + np.float32([x, y])
    if not _free(page, quad, x, y, width, height):
        return
    page.image = paint(page.image, mask, y, x, ink)
    corners = np.rint(quad).astype(np.int32)
    cv2.fillConvexPoly(page.taken, corners, 1)
    cv2.polylines(page.taken, [corners], True, 1, thickness=2 * GAP + 1)
    page.regions.append((quad, DONT_CARE if dont_care else text))


def _rotate(mask: np.ndarray, middle: float, angle: float) -> tuple[np.ndarray, np.ndarray, float]:
    """``mask`` turned ``angle`` degrees about its centre: (the turned mask, the float32 [4, 2] corners of the
    ink's rectangle in it, clockwise from top-left, and the row of the line box's middle at the mask's centre)."""
    h, w = mask.shape
    corners = np.float32([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]])
    if not angle:
        return mask, corners, middle
    matrix = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, 1.0)
    outline = np.float32([[-1, -1], [w, -1], [w, h], [-1, h]]) @ matrix[:, :2].T + matrix[:, 2]
    low, high = np.floor(outline.min(axis=0)), np.ceil(outline.max(axis=0))
    matrix[:, 2] -= low
    size = (int(high[0] - low[0]) + 1, int(high[1] - low[1]) + 1)
    turned = cv2.warpAffine(mask, matrix, size, flags=cv2.INTER_LINEAR, borderValue=0)
    centre = matrix @ np.float64([(w - 1) / 2, middle, 1.0])
    return turned, (corners @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32), float(centre[1])


def _free(page: _Page, quad: np.ndarray, x: int, y: int, width: int, height: int) -> bool:
    """Whether a mask of ``width`` x ``height`` at (x, y) keeps the page's margin and its box ``quad`` is clear
    of every line placed (grown by GAP)."""
    rows, cols = page.taken.shape
    m = page.margin
    if x < m or y < m or x + width > cols - m or y + height > rows - m:
        return False
    local = np.zeros((height, width), np.uint8)
    cv2.fillConvexPoly(local, np.rint(quad - np.float32([x, y])).astype(np.int32), 1)
    return not np.any(local & page.taken[y : y + height, x : x + width])


# -- the rest of the page --------------------------------------------------------------------------


def _distractor(page: _Page, rng: np.random.Generator) -> None:
    """A shape that is not text, left out where it would touch a line's box (grown by GAP)."""
    mask = distractor(rng, *page.taken.shape)
    colour = ink_colour(rng, page.paper, faint=bool(rng.random() < 0.3))
    opacity = float(rng.uniform(0.5, 1.0))
    if not np.any((mask > 0) & (page.taken > 0)):
        page.image = blend(page.image, mask, colour, opacity)


def _warp_page(page: _Page, rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[np.ndarray, str]]]:
    """A slight rotation, scale and perspective of the whole page, boxes included; weaker (at last none) where
    the full one would move a box out of the image."""
    height, width = page.taken.shape
    source = np.float32([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]])
    angle, scale = float(rng.uniform(-3.0, 3.0)), float(rng.uniform(0.93, 1.02))
    jitter = rng.uniform(-1.0, 1.0, size=(4, 2)) * [0.025 * width, 0.025 * height]
    desk = np.clip(page.paper * rng.uniform(0.3, 0.8) + rng.uniform(-20, 20, size=3), 0, 255)
    replicate = bool(rng.random() < 0.5)
    boxes = np.float64([quad for quad, _ in page.regions]).reshape(-1, 1, 2)
    for strength in (1.0, 0.5, 0.25, 0.0):
        turn = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), angle * strength,
                                       1.0 + (scale - 1.0) * strength)
        target = source @ turn[:, :2].T + turn[:, 2] + jitter * strength
        matrix = cv2.getPerspectiveTransform(source, target.astype(np.float32))
        moved = cv2.perspectiveTransform(boxes, matrix).reshape(-1, 2) if len(boxes) else np.zeros((0, 2))
        if np.all((moved >= 1) & (moved <= [width - 2, height - 2])):
            break
    image = cv2.warpPerspective(page.image, matrix, (width, height), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE if replicate else cv2.BORDER_CONSTANT,
                                borderValue=tuple(float(c) for c in desk))
    quads = moved.reshape(-1, 4, 2).astype(np.float32)
    return image, [(quad, text) for quad, (_, text) in zip(quads, page.regions, strict=True)]
