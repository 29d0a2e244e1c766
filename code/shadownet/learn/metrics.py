"""Recognition metrics and a contact sheet of predictions.

Pure Python, numpy and Pillow, so evaluation reports can be built and tested
without TensorFlow. :func:`summarize` returns the JSON-ready dict other tools
read; :func:`write_grid` draws images with their truth and prediction.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..fileio import write_bytes_atomic

DECIMALS = 6

# Grid geometry (pixels) and colours (RGB).
CELL_MIN_HEIGHT, CELL_MAX_HEIGHT, CELL_MAX_WIDTH, CELL_MIN_WIDTH = 32, 48, 240, 120
PAD = 6
FONT_SIZE = 13
RIGHT_COLOUR = (0, 140, 0)
WRONG_COLOUR = (200, 0, 0)
TEXT_COLOUR = (0, 0, 0)
BACKGROUND = (255, 255, 255)


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance between ``a`` and ``b`` over Unicode code points.

    Insertions, deletions and substitutions each cost 1. Two rows of the
    dynamic programme, so memory is O(min(len(a), len(b))).
    """
    if a == b:
        return 0
    # A shared prefix or suffix never changes the distance; dropping it is the cheap common case.
    start = 0
    while start < len(a) and start < len(b) and a[start] == b[start]:
        start += 1
    end_a, end_b = len(a), len(b)
    while end_a > start and end_b > start and a[end_a - 1] == b[end_b - 1]:
        end_a -= 1
        end_b -= 1
    a, b = a[start:end_a], b[start:end_b]
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            cost = previous[j - 1] + (char_a != char_b)
            deletion = previous[j] + 1
            insertion = current[j - 1] + 1
            current.append(min(cost, deletion, insertion))
        previous = current
    return previous[-1]


@dataclass
class Prediction:
    """One recognised sample. ``image`` is HxWx3 uint8 RGB (optional; only :func:`write_grid` needs it)."""

    source: str
    truth: str
    text: str
    confidence: float
    image: np.ndarray | None = None


def loose(text: str) -> str:
    """``text`` lowercased with every whitespace character removed: the form the loosest accuracy compares."""
    return "".join(text.lower().split())


def _normalized(distance: int, p: Prediction) -> float:
    return distance / max(len(p.truth), len(p.text), 1)


def summarize(predictions: list[Prediction], worst: int = 20) -> dict:
    """Accuracy figures for ``predictions``, as a JSON-ready dict.

    Keys:

    * ``num_samples``, ``num_correct``
    * ``word_accuracy``: share of samples whose text equals the truth exactly
      (the whole label, spaces and punctuation included: exact-line accuracy).
    * ``word_accuracy_case_insensitive``: the same after ``str.lower()`` on both.
    * ``word_accuracy_ignoring_case_and_spaces``: the same after ``str.lower()``
      and removing all whitespace (:func:`loose`) on both.
    * ``char_error_rate``: total edit distance / total truth length. When every
      truth is empty it is 0.0 if every prediction is empty too, else 1.0.
    * ``normalized_edit_distance``: mean over samples of
      ``edit_distance / max(len(truth), len(text), 1)``; 0 is perfect, 1 is all wrong.
    * ``mean_confidence``
    * ``worst_examples``: up to ``worst`` wrong samples, worst first (normalized
      edit distance descending, then confidence ascending, then source), each
      ``{"source", "truth", "prediction", "edit_distance", "confidence"}``.

    Rates are rounded to 6 decimals; an empty list gives 0 samples and 0.0 everywhere.
    """
    n = len(predictions)
    distances = [edit_distance(p.text, p.truth) for p in predictions]
    correct = sum(p.text == p.truth for p in predictions)
    correct_nocase = sum(p.text.lower() == p.truth.lower() for p in predictions)
    correct_loose = sum(loose(p.text) == loose(p.truth) for p in predictions)
    truth_chars = sum(len(p.truth) for p in predictions)
    if truth_chars:
        cer = sum(distances) / truth_chars
    else:
        cer = 0.0 if all(not p.text for p in predictions) else 1.0
    normalized = [_normalized(d, p) for d, p in zip(distances, predictions, strict=True)]

    def share(total: float) -> float:
        return round(float(total) / n, DECIMALS) if n else 0.0

    wrong = sorted(
        (i for i in range(n) if predictions[i].text != predictions[i].truth),
        key=lambda i: (-normalized[i], predictions[i].confidence, predictions[i].source),
    )
    return {
        "num_samples": n,
        "num_correct": correct,
        "word_accuracy": share(correct),
        "word_accuracy_case_insensitive": share(correct_nocase),
        "word_accuracy_ignoring_case_and_spaces": share(correct_loose),
        "char_error_rate": round(cer, DECIMALS),
        "normalized_edit_distance": share(sum(normalized)),
        "mean_confidence": share(sum(p.confidence for p in predictions)),
        "worst_examples": [
            {
                "source": predictions[i].source,
                "truth": predictions[i].truth,
                "prediction": predictions[i].text,
                "edit_distance": distances[i],
                "confidence": round(float(predictions[i].confidence), DECIMALS),
            }
            for i in wrong[: max(worst, 0)]
        ],
    }


# -- contact sheet -------------------------------------------------------------------------


def _as_rgb(image: np.ndarray) -> Image.Image:
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ValueError(f"prediction image must be uint8, got {array.dtype}")
    if array.size == 0:
        raise ValueError(f"prediction image is empty (shape {array.shape})")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        return Image.fromarray(array, "L").convert("RGB")
    if array.ndim == 3 and array.shape[2] in (3, 4):
        return Image.fromarray(np.ascontiguousarray(array[:, :, :3]), "RGB")
    raise ValueError(f"prediction image must be HxWx3 RGB, got shape {array.shape}")


def _fit(image: Image.Image) -> Image.Image:
    """Height clamped to 32..48 keeping the aspect ratio; wider than 240 px is squeezed to 240.

    Squeezing keeps long lines legible, where shrinking them whole would leave a sliver a few pixels high.
    """
    width, height = image.size
    new_height = min(max(height, CELL_MIN_HEIGHT), CELL_MAX_HEIGHT)
    size = (max(1, min(round(width * new_height / height), CELL_MAX_WIDTH)), new_height)
    return image if size == image.size else image.resize(size, Image.Resampling.BILINEAR)


def _clip(text: str, font: ImageFont.ImageFont, width: int) -> str:
    """``text`` shortened with an ellipsis so it fits ``width`` pixels."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…"


def write_grid(path: Path, predictions: list[Prediction], columns: int = 4, max_items: int = 32) -> None:
    """Write a PNG contact sheet of up to ``max_items`` predictions, ``columns`` per row.

    Each cell shows the image (height 32..48 px, at most 240 px wide) above
    ``truth: ...`` in black and ``pred: ...`` in green when right, red when
    wrong. Predictions without an image are skipped; with none left the sheet
    just says so. The file is written atomically, and the same input always
    gives the same bytes.
    """
    font = ImageFont.load_default(size=FONT_SIZE)
    items = [(p, _fit(_as_rgb(p.image))) for p in predictions if p.image is not None][: max(max_items, 0)]
    columns = max(1, min(columns, len(items) or 1))
    line_height = FONT_SIZE + 4
    image_height = max((im.height for _, im in items), default=CELL_MIN_HEIGHT)
    text_width = max([CELL_MIN_WIDTH] + [im.width for _, im in items])
    cell_width = text_width + 2 * PAD
    cell_height = image_height + 2 * line_height + 2 * PAD
    rows = max(1, -(-len(items) // columns))
    sheet = Image.new("RGB", (columns * cell_width, rows * cell_height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    if not items:
        draw.text((PAD, PAD), "(no images)", fill=TEXT_COLOUR, font=font)
    for k, (p, image) in enumerate(items):
        x = (k % columns) * cell_width + PAD
        y = (k // columns) * cell_height + PAD
        sheet.paste(image, (x, y))
        y += image_height + 2
        draw.text((x, y), _clip(f"truth: {p.truth}", font, text_width), fill=TEXT_COLOUR, font=font)
        colour = RIGHT_COLOUR if p.text == p.truth else WRONG_COLOUR
        draw.text((x, y + line_height), _clip(f"pred: {p.text}", font, text_width), fill=colour, font=font)
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG", optimize=False)
    write_bytes_atomic(Path(path), buffer.getvalue())
