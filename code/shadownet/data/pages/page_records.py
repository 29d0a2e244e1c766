"""The detection task's checks and records: what ``tfrecords`` and ``validate`` do with a page.

The text pass has nothing left to check (a page layout's reader has parsed every region, and a bad row is
already a problem naming its file and line). The image pass (``PagePolicy.record``, in the worker processes)
decodes the page and checks each region against it (``annotations.check_region``): a self-intersecting or
zero-area region is a problem naming its annotation line; a point outside the image is clamped onto its border
(``points_outside="clip"``, the default) or is a problem (``"refuse"``). A page without regions is a page
without text, kept: it teaches the detector what is not text.

The stored page: the source bytes when they are a JPEG that TensorFlow decodes as OpenCV does (no EXIF
orientation, no Adobe colour transform) or an 8-bit PNG, and at most ``max_side`` pixels on its longer
side; otherwise the page re-encoded (JPEG quality 95 from a JPEG, PNG from anything else), shrunk to
``max_side`` with its regions scaled alike. EXIF orientation is ignored when decoding: annotations are in the
stored pixels' frame, as the datasets' own tools draw them.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ...errors import SettingError
from ..annotations import LineError
from ..images import ImageError, decode
from ..record_format import frame, page_example
from .annotations import CLIPPED, POLICIES, check_region

TASK = "detection"
MAX_SIDE = 2048  # a page's longer side in the records; the detector trains on crops far smaller
JPEG_QUALITY = 95


@dataclass(frozen=True)
class PagePolicy:
    """How pages become records: ``points_outside`` ("clip" or "refuse"), ``max_side`` in pixels."""

    points_outside: str = "clip"
    max_side: int = MAX_SIDE
    task = TASK

    def __post_init__(self) -> None:
        if self.points_outside not in POLICIES:
            raise SettingError("points_outside", f"must be one of {', '.join(POLICIES)}, "
                                                 f"not {self.points_outside!r}")
        if self.max_side < 32:
            raise SettingError("max_side", f"must be at least 32 pixels, not {self.max_side}")

    def encode(self, sample) -> None:
        """The text pass: a page's regions were checked as they were read."""

    def record(self, reader, sample, build: bool) -> bytes:
        """A page's framed record (``b""`` when only validating); raises ImageError or LineError."""
        data = reader.image(sample)
        try:
            image = decode(data, exif_orientation=False)
        except ImageError as exc:
            raise ImageError(exc.code, f"{exc}: {sample.path}") from None
        height, width = image.shape[:2]
        kept = []
        for region, line in zip(sample.regions, sample.region_lines, strict=True):
            region, problems = check_region(region, width, height, self.points_outside)
            errors = [(code, message) for code, message in problems if code != CLIPPED]
            if errors:
                code, message = errors[0]
                raise LineError(code, f"{message} ({sample.path})", file=sample.file, line=line)
            kept.append(region)
        if not build:
            return b""
        encoded, image_format, scale = self._stored(data, image)
        stored_height, stored_width = (round(height * scale[1]), round(width * scale[0])) if scale else (height, width)
        points = [[(float(x) * (scale[0] if scale else 1.0), float(y) * (scale[1] if scale else 1.0))
                   for x, y in region.points.tolist()] for region in kept]
        example = page_example(encoded, image_format, stored_width, stored_height, sample.path, points,
                               [region.ignore for region in kept], [region.text for region in kept])
        return frame(example)

    def _stored(self, data: bytes, image: np.ndarray) -> tuple[bytes, str, tuple[float, float] | None]:
        """``(bytes, format, scale)``: the page as stored, and ``(x, y)`` factors when it was shrunk."""
        height, width = image.shape[:2]
        scale = None
        if max(height, width) > self.max_side:
            factor = self.max_side / max(height, width)
            size = (max(1, round(width * factor)), max(1, round(height * factor)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            scale = (size[0] / width, size[1] / height)
        elif _passes_through(data):
            return data, "jpeg" if data[:2] == b"\xff\xd8" else "png", None
        if data[:2] == b"\xff\xd8":
            ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            image_format = "jpeg"
        else:
            ok, buffer = cv2.imencode(".png", image)
            image_format = "png"
        if not ok:
            raise ImageError("image_corrupt", "could not encode the page")
        return buffer.tobytes(), image_format, scale

    def manifest(self) -> dict:
        """The task's part of the records' manifest."""
        return {"pages": {"max_side": self.max_side, "points_outside": self.points_outside}}


def _passes_through(data: bytes) -> bool:
    if data[:2] == b"\xff\xd8":
        header = data[:65536]
        return b"Exif\x00\x00" not in header and b"Adobe" not in header
    # PNG: an IHDR chunk first, bit depth (byte 24) 8; TensorFlow decodes grey, RGB, RGBA and palettes to RGB
    return data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 25 and data[24] == 8
