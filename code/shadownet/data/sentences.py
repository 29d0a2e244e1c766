"""The ``sentences`` kind of ``synth``: long mixed text lines with the degradations of photographed documents.

Text: 1-8 tokens (at most :data:`MAX_LENGTH` characters) of words from the shipped word list, numbers, prices,
dates, times, codes, percentages, phone-like numbers and punctuation, in mixed case; only characters of the
``ascii95`` charset preset, single spaces, none leading or trailing.

Image: the line in a random font of the :class:`~.drawing.Renderer` on a paper colour with enough contrast
(sometimes little), then each degradation with its own probability and strength: perspective, uneven light, blur,
lost resolution, noise and JPEG re-encoding.

Like the other kinds, a pure function of the numpy Generator it is given.
"""

from __future__ import annotations

import hashlib
import math
import struct
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import PIL

from ..errors import SettingError, ShadownetError
from .drawing import Renderer, fit, font_size, paint, place, text_mask

MAX_LENGTH = 40
MAX_TOKENS = 8
CHARSET_PRESET = "ascii95"
FONT_SUFFIXES = (".ttf", ".otf", ".ttc")

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_DIGITS = "0123456789"
_TRAILING = ",.:;!?"
_WRAPS = (("(", ")"), ('"', '"'), ("'", "'"))
_SEPARATORS = ("-", "/", "&", "#", "+", "-", "&")
_CURRENCIES = ("USD", "EUR", "GBP", "CHF")


# -- fonts -----------------------------------------------------------------------------------------


def fonts_in_dirs(folders: Sequence[Path]) -> tuple[Path, ...]:
    """Every .ttf/.otf/.ttc file under each folder (recursively), sorted by path within a folder.

    Raises SettingError("font_dir", ...) for a folder that is missing or holds no font.
    """
    found: list[Path] = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise SettingError("font_dir", f"{folder}: no such directory")
        fonts = sorted(p for p in folder.rglob("*") if p.suffix.lower() in FONT_SUFFIXES and p.is_file())
        if not fonts:
            raise SettingError("font_dir", f"{folder}: holds no .ttf, .otf or .ttc font")
        found.extend(fonts)
    return tuple(found)


# A private-use code point no text font draws: what a font draws for it is its .notdef glyph (the box or blank
# drawn for a character it lacks).
_NOT_A_CHARACTER = "\U0010fffd"


def missing_glyphs(path: Path, characters: str) -> str:
    """The characters of ``characters`` (spaces aside) that the font at ``path`` draws as its .notdef glyph."""
    from PIL import ImageFont

    font = ImageFont.truetype(str(path), size=24)

    def shape(character: str) -> tuple:
        mask = font.getmask(character)
        return mask.size, bytes(mask)

    notdef = shape(_NOT_A_CHARACTER)
    return "".join(c for c in characters if not c.isspace() and shape(c) == notdef)


SYMBOLIC = 12  # the OS/2 table's sFamilyClass (high byte) of symbol faces


def symbolic(path: Path) -> bool:
    """Whether the font's OS/2 table classes it as Symbolic. Such faces map the ASCII code points to dingbats or
    Greek letters (URW's D050000L and Standard Symbols PS draw ``Hello`` as stars or ``Hεllo``): glyphs, not the
    .notdef box, so ``missing_glyphs`` cannot tell them from text."""
    data = Path(path).read_bytes()
    try:
        start = struct.unpack_from(">I", data, 12)[0] if data[:4] == b"ttcf" else 0  # a collection: its first face
        for index in range(struct.unpack_from(">H", data, start + 4)[0]):
            tag, _, offset, length = struct.unpack_from(">4sIII", data, start + 12 + 16 * index)
            if tag == b"OS/2" and length >= 32:
                return struct.unpack_from(">h", data, offset + 30)[0] >> 8 == SYMBOLIC
    except struct.error:  # a short or odd table directory: FreeType opened it, so judge by the glyphs alone
        return False
    return False


def usable_fonts(paths: Sequence[Path], characters: str) -> tuple[tuple[Path, ...], list[dict]]:
    """(the fonts of ``paths`` that draw every one of ``characters`` as text, the others with the reason): a folder
    of system fonts holds symbol and script faces whose boxes or symbols would be labelled as text."""
    kept, skipped = [], []
    for path in paths:
        try:
            missing = missing_glyphs(path, characters)
        except OSError as exc:  # not a font Pillow's FreeType can open
            skipped.append({"name": Path(path).name, "reason": f"cannot be opened ({exc})"})
            continue
        if symbolic(path):
            skipped.append({"name": Path(path).name, "reason": "a symbol font (OS/2 family class Symbolic): it "
                                                              "draws letters as symbols"})
        elif missing:
            skipped.append({"name": Path(path).name, "reason": f"no glyph for {missing[:20]!r}"
                            + (f" and {len(missing) - 20} more" if len(missing) > 20 else "")})
        else:
            kept.append(Path(path))
    return tuple(kept), skipped


def font_report(font_files: Sequence[Path]) -> list[dict]:
    """Which fonts a run draws with: the built-in one (with Pillow's version), then each file's name, size, sha256."""
    report = [{"name": f"built-in (Pillow {PIL.__version__})"}]
    for path in font_files:
        data = Path(path).read_bytes()
        report.append({"name": Path(path).name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    return report


# -- text ------------------------------------------------------------------------------------------


def _digits(rng: np.random.Generator, length: int) -> str:
    first = _DIGITS[int(rng.integers(1 if length > 1 else 0, 10))]
    return first + "".join(_DIGITS[i] for i in rng.integers(0, 10, size=length - 1))


def _grouped(number: str) -> str:
    """1299 -> 1,299."""
    head = len(number) % 3 or 3
    groups = [number[:head]] + [number[i : i + 3] for i in range(head, len(number), 3)]
    return ",".join(groups)


def _word(rng: np.random.Generator, words: Sequence[str]) -> str:
    word = words[int(rng.integers(len(words)))]
    case = rng.random()
    if case < 0.45:
        return word
    if case < 0.7:
        return word.capitalize()
    if case < 0.88:
        return word.upper()
    flips = rng.random(len(word)) < 0.5
    return "".join(c.upper() if flip else c for c, flip in zip(word, flips, strict=True))


def _number(rng: np.random.Generator) -> str:
    whole = _digits(rng, int(rng.integers(1, 6)))
    if rng.random() < 0.4:
        return f"{whole}.{_digits(rng, int(rng.integers(1, 4)))[::-1]}"
    return _grouped(whole) if len(whole) > 3 and rng.random() < 0.5 else whole


def _price(rng: np.random.Generator) -> str:
    amount = f"{_grouped(_digits(rng, int(rng.integers(1, 6))))}.{int(rng.integers(0, 100)):02d}"
    style = rng.random()
    if style < 0.45:
        return "$" + amount
    if style < 0.75:
        return amount
    return f"{amount} {_CURRENCIES[int(rng.integers(len(_CURRENCIES)))]}"


def _date(rng: np.random.Generator) -> str:
    year, month, day = int(rng.integers(1950, 2040)), int(rng.integers(1, 13)), int(rng.integers(1, 29))
    style = rng.random()
    if style < 0.35:
        return f"{year}-{month:02d}-{day:02d}"
    if style < 0.7:
        return f"{day:02d}/{month:02d}/{year}"
    month_name = _MONTHS[month - 1]
    return f"{day} {month_name.upper() if rng.random() < 0.2 else month_name} {year}"


def _time(rng: np.random.Generator) -> str:
    return f"{int(rng.integers(0, 24)):02d}:{int(rng.integers(0, 60)):02d}"


def _code(rng: np.random.Generator) -> str:
    if rng.random() < 0.5:
        letters = "".join(_UPPER[i] for i in rng.integers(0, 26, size=int(rng.integers(1, 4))))
        return f"{letters}-{_digits(rng, int(rng.integers(2, 6)))}"
    pool = _UPPER + _DIGITS
    head = "".join(pool[i] for i in rng.integers(0, len(pool), size=int(rng.integers(3, 6))))
    return f"{head}-{_digits(rng, int(rng.integers(2, 4)))}"


def _percent(rng: np.random.Generator) -> str:
    whole = str(int(rng.integers(0, 101)))
    return f"{whole}.{int(rng.integers(0, 10))}%" if rng.random() < 0.4 else f"{whole}%"


def _phone(rng: np.random.Generator) -> str:
    style = rng.random()
    if style < 0.35:
        return f"({_digits(rng, 3)}) {_digits(rng, 3)}-{_DIGITS[int(rng.integers(10))]}{_digits(rng, 3)}"
    if style < 0.7:
        return f"{_digits(rng, 3)}-{_digits(rng, 3)}-{_digits(rng, 4)}"
    return f"+{int(rng.integers(1, 100))} {_digits(rng, 2)} {_digits(rng, 4)} {_digits(rng, 4)}"


# The kinds of token and how often each comes: (cumulative share, maker); the rest, from SEPARATOR_SHARE, separators.
_TOKEN_KINDS = ((0.5, _word), (0.6, _number), (0.68, _price), (0.75, _date), (0.79, _time), (0.85, _code),
                (0.9, _percent), (0.94, _phone))
_SEPARATOR_SHARE = _TOKEN_KINDS[-1][0]


def _token(rng: np.random.Generator, words: Sequence[str], first: bool) -> str:
    """One token; a separator (``-``, ``/``, ``&`` ...) only between others, never ``first``."""
    kind = rng.random() * (_SEPARATOR_SHARE if first else 1.0)
    maker = next((make for share, make in _TOKEN_KINDS if kind < share), None)
    if maker is None:
        return _SEPARATORS[int(rng.integers(len(_SEPARATORS)))]
    token = maker(rng, words) if maker is _word else maker(rng)
    punctuation = rng.random()
    if punctuation < 0.2:
        token += _TRAILING[int(rng.integers(len(_TRAILING)))]
    elif punctuation < 0.27:
        opening, closing = _WRAPS[int(rng.integers(len(_WRAPS)))]
        token = opening + token + closing
    elif punctuation < 0.3:
        token = "#" + token
    return token


def sentence_text(rng: np.random.Generator, words: Sequence[str]) -> str:
    """1-8 tokens joined by single spaces, at most MAX_LENGTH characters.

    A token that would make the line too long ends it there (the line keeps at least its first token, cut at
    MAX_LENGTH characters if that token alone is longer, which the generators above never make).
    """
    tokens: list[str] = []
    length = -1
    for _ in range(int(rng.integers(1, MAX_TOKENS + 1))):
        token = _token(rng, words, first=not tokens)
        if tokens and length + 1 + len(token) > MAX_LENGTH:
            break
        tokens.append(token)
        length += 1 + len(token)
    while tokens[-1] in _SEPARATORS:  # a separator separates: it does not end a line (nor start one)
        tokens.pop()
    return " ".join(tokens)[:MAX_LENGTH].strip()


# -- image -----------------------------------------------------------------------------------------


def _colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, bool]:
    """Paper and ink colours, usually far apart in brightness, sometimes (15 %) only 75-105 levels apart.

    The flag says whether the contrast is low (then the line is spared blur and lost resolution, which would
    make it illegible).
    """
    low = bool(rng.random() < 0.15)
    contrast = rng.uniform(75.0, 105.0) if low else rng.uniform(115.0, 210.0)
    dark_on_light = rng.random() < 0.85
    if dark_on_light:
        paper = rng.uniform(contrast + 20.0, 255.0)
        ink = paper - contrast
    else:
        paper = rng.uniform(0.0, 255.0 - contrast - 20.0)
        ink = paper + contrast
    paper_rgb = np.clip(paper + rng.uniform(-18.0, 18.0, size=3), 0, 255)
    ink_rgb = np.clip(ink + rng.uniform(-25.0, 25.0, size=3), 0, 255)
    return paper_rgb.astype(np.float32), ink_rgb.astype(np.float32), low


def _perspective(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each corner moved inwards (never out, so no ink leaves the image): a tilted or skewed page."""
    height, width = image.shape[:2]
    source = np.float32([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]])
    dx = rng.uniform(0.0, min(0.04 * width, 0.6 * height), size=4)
    dy = rng.uniform(0.0, 0.08 * height, size=4)
    inwards = np.float32([[1, 1], [-1, 1], [-1, -1], [1, -1]])
    target = source + inwards * np.stack([dx, dy], axis=1).astype(np.float32)
    matrix = cv2.getPerspectiveTransform(source, target.astype(np.float32))
    return cv2.warpPerspective(image, matrix, (width, height), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)


def uneven_light(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Multiply by a light field: a linear gradient in a random direction or a vignette."""
    height, width = image.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    strength = rng.uniform(0.15, 0.4)
    if rng.random() < 0.6:
        theta = rng.uniform(0, 2 * math.pi)
        along = xs * math.cos(theta) + ys * math.sin(theta)
        span = float(along.max() - along.min()) or 1.0
        shade = (along - along.min()) / span
    else:
        cx, cy = rng.uniform(0.2, 0.8) * width, rng.uniform(0.0, 1.0) * height
        distance = np.hypot((xs - cx) / width, (ys - cy) / height)
        shade = distance / (float(distance.max()) or 1.0)
    return image * (1.0 - strength * shade)[..., None]


def _blur(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gaussian (out of focus) or motion blur, weaker on shorter (smaller-text) images."""
    reach = image.shape[0] / 64.0
    if rng.random() < 0.6:
        return cv2.GaussianBlur(image, (0, 0), float(rng.uniform(0.4, 0.4 + 0.9 * reach)))
    length = int(rng.integers(3, 4 + round(3 * reach)))
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0
    rotation = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), float(rng.uniform(0, 180)), 1.0)
    kernel = cv2.warpAffine(kernel, rotation, (length, length))
    return cv2.filter2D(image, -1, kernel / max(float(kernel.sum()), 1e-6), borderType=cv2.BORDER_REPLICATE)


def _lose_resolution(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    height, width = image.shape[:2]
    factor = rng.uniform(max(0.35, 18.0 / height), 0.8)  # at least 18 px high in between
    small = cv2.resize(image, (max(1, round(width * factor)), max(1, round(height * factor))),
                       interpolation=cv2.INTER_AREA)
    method = cv2.INTER_NEAREST if rng.random() < 0.3 else cv2.INTER_LINEAR
    return cv2.resize(small, (width, height), interpolation=method)


def _jpeg(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    quality = int(rng.integers(15, 76))
    ok, encoded = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ShadownetError("could not re-encode a sentence image as JPEG")
    return np.ascontiguousarray(cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1])


def render_sentence(rng: np.random.Generator, renderer: Renderer) -> tuple[np.ndarray, str]:
    """One ``sentences`` sample: an (H, W, 3) uint8 RGB image 32..64 px high, and its label."""
    text = sentence_text(rng, renderer.words)
    height = int(rng.integers(32, 65))
    choice = renderer.pick(rng)
    size = font_size(renderer, choice, height, rng, 0.6, 0.85)
    angle = float(rng.uniform(-1.5, 1.5)) if rng.random() < 0.3 else 0.0
    margin = 3
    mask, middle = text_mask(text, renderer.font(choice, size), angle)
    mask, scale = fit(mask, None, height - 2 * margin)
    top, left, width = place(mask, middle, scale, height, margin, rng, 0.06, max(margin + 1, height // 3))

    paper, ink, low_contrast = _colours(rng)
    image = np.empty((height, width, 3), np.float32)
    image[:] = paper
    image = paint(image, mask, top, left, ink)
    if rng.random() < 0.5:
        image = _perspective(image, rng)
    if rng.random() < 0.5:
        image = uneven_light(image, rng)
    blurred = bool(rng.random() < 0.4) and not low_contrast
    if blurred:
        image = _blur(image, rng)
    if rng.random() < (0.1 if blurred else 0.3) and not low_contrast:
        image = _lose_resolution(image, rng)
    if rng.random() < 0.6:
        image = image + rng.normal(0.0, rng.uniform(2.0, 12.0), size=image.shape).astype(np.float32)
    image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        image = _jpeg(image, rng)
    return image, text
