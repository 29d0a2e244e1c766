"""Turning a source image file into the bytes stored in a record, by the model's input geometry.

Stored images are 3-channel JPEG (default) or PNG, ``geometry.HEIGHT`` (32) px high, as wide as
``geometry``'s width rule makes them: the aspect ratio's width clamped to ``[MIN_WIDTH, max_width]``
(``keep_ratio``), or ``FIXED_WIDTH`` (``fixed``: 100x32, as the original trained).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .. import geometry
from ..choices import IMAGE_FORMATS, INPUT_MODES
from ..geometry import WIDTH_DOWNSAMPLE, time_steps  # noqa: F401  (records are validated against them)


@dataclass(frozen=True)
class ImageGeometry:
    """How records store images: the input mode and widest width (the rest is ``geometry``'s), and the encoding."""

    mode: str = "keep_ratio"
    max_width: int = 800
    image_format: str = "jpeg"
    jpeg_quality: int = 90
    png_compression: int = 3

    height = geometry.HEIGHT
    fixed_width = geometry.FIXED_WIDTH
    min_width = geometry.MIN_WIDTH

    def __post_init__(self) -> None:
        if self.mode not in INPUT_MODES:
            raise ValueError(f"input mode must be one of {INPUT_MODES}, not {self.mode!r}")
        if self.image_format not in IMAGE_FORMATS:
            raise ValueError(f"image format must be one of {IMAGE_FORMATS}, not {self.image_format!r}")
        if not self.min_width <= self.max_width:
            raise ValueError(f"need {WIDTH_DOWNSAMPLE} <= min_width <= max_width")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError("jpeg quality must be within 1..100")

    def target_width(self, width: int, height: int) -> int:
        """Width of a ``width`` x ``height`` source image once normalised."""
        return geometry.input_width(width, height, self.mode, self.max_width)

    @property
    def widest(self) -> int:
        return self.fixed_width if self.mode == "fixed" else self.max_width

    def to_dict(self) -> dict:
        shape = geometry.describe(self.mode, self.max_width)
        downsample = shape.pop("width_downsample")
        out = {key: shape.pop(key) for key in ("height", "channels", "mode")}
        out |= {"format": self.image_format, **shape}
        if self.image_format == "jpeg":
            out["jpeg_quality"] = self.jpeg_quality
        else:
            out["png_compression"] = self.png_compression
        out["width_downsample"] = downsample
        return out


def ctc_min_steps(ids: list[int]) -> int:
    """Fewest time steps CTC needs for this label: one per character, plus a blank between repeats."""
    return len(ids) + sum(1 for a, b in zip(ids, ids[1:], strict=False) if a == b)


class ImageError(ValueError):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def _looks_complete(data: bytes) -> bool:
    """Truncated JPEG/PNG files still decode (grey-filled) with only a warning; catch them here."""
    if data[:2] == b"\xff\xd8":
        return b"\xff\xd9" in data[-1024:]
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return b"IEND" in data[-64:]
    return True


def decode(data: bytes, min_height: int = 0, exif_orientation: bool = True) -> np.ndarray:
    """Decode file bytes to an HxWx3 uint8 BGR array, or raise ImageError.

    With ``min_height``, a JPEG at least twice that high is decoded at 1/2, 1/4 or 1/8 size
    (libjpeg scales in the DCT domain: far cheaper than a full decode, and a clean downscale),
    never below ``min_height``. ``exif_orientation=False``: the pixels as stored, not turned as the EXIF
    tag says (a page's annotations are in the stored frame).
    """
    if not data:
        raise ImageError("image_corrupt", "image file is empty")
    if not _looks_complete(data):
        raise ImageError("image_corrupt", "image file is truncated")
    flag = _decode_flag(data, min_height) | (0 if exif_orientation else cv2.IMREAD_IGNORE_ORIENTATION)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    if image is None or image.size == 0:
        raise ImageError("image_corrupt", "not a decodable image (corrupt or unsupported format)")
    return image


_REDUCED = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2))


def _decode_flag(data: bytes, min_height: int) -> int:
    height = jpeg_height(data) if min_height else None
    if height:
        for factor, flag in _REDUCED:
            if height // factor >= min_height:
                return flag
    return cv2.IMREAD_COLOR


def jpeg_height(data: bytes) -> int | None:
    """Image height from a JPEG's frame header, without decoding; None if not found."""
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        # Start-of-frame markers (baseline, progressive, ...): C0-CF except DHT (C4), JPG (C8), DAC (CC).
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return int.from_bytes(data[i + 5 : i + 7], "big")
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return None


def normalize(data: bytes, image: np.ndarray, geometry: ImageGeometry) -> tuple[bytes, int, int]:
    """A decoded source image (and its file bytes) -> (encoded bytes, width, height) as stored in a record."""
    height, width = image.shape[:2]
    target = (geometry.target_width(width, height), geometry.height)
    if (width, height) == target and _can_pass_through(data, geometry):
        # Already the right size and format: keep the original bytes (no generation loss, no encode cost).
        return data, width, height
    if (width, height) != target:
        # Bilinear is clean down to half size and 3x cheaper than area averaging; below half
        # size it would skip pixels, so area averaging takes over.
        halving_more = target[0] * 2 < width or target[1] * 2 < height
        image = cv2.resize(image, target, interpolation=cv2.INTER_AREA if halving_more else cv2.INTER_LINEAR)
    return encode(image, geometry), target[0], target[1]


def encode(image: np.ndarray, geometry: ImageGeometry) -> bytes:
    if geometry.image_format == "jpeg":
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, geometry.jpeg_quality])
    else:
        ok, buf = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, geometry.png_compression])
    if not ok:
        raise ImageError("image_corrupt", "could not encode the normalised image")
    return buf.tobytes()


def _can_pass_through(data: bytes, geometry: ImageGeometry) -> bool:
    # EXIF may rotate the image on decode and Adobe markers flag CMYK, neither of which
    # TensorFlow's decoder handles the way OpenCV's does: re-encode those.
    if geometry.image_format == "jpeg" and data[:2] == b"\xff\xd8":
        header = data[:65536]
        return b"Exif\x00\x00" not in header and b"Adobe" not in header
    return False
