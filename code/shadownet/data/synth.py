"""Synthetic training data: render text images (drawn by ``render``) and write them in the seed layout.

Layout written under ``OUT`` (the same one the seed data set uses)::

    OUT/char_dict.json, OUT/ord_map.json
    OUT/Train/sample.txt, OUT/Test/sample.txt     "/images/000/000123.jpg coley"
    OUT/images/000/000123.jpg

The ``pages`` kind (page images for text detection, ``pages/synth_pages.py``) is written in the ICDAR 2015
layout instead, page ``index`` named ``img_<index + 1>`` whichever split it lands in::

    OUT/train_images/img_1.jpg, OUT/train_gts/gt_img_1.txt     "x1,y1,x2,y2,x3,y3,x4,y4,text" lines
    OUT/test_images/img_7.jpg,  OUT/test_gts/gt_img_7.txt

with no char_dict.json (a detector has no charset; the transcriptions use the ``ascii95`` preset's characters,
which the summary names). Each page's image is written before its ground truth, each under a temporary name
first, so a killed run leaves whole pairs (and at most an image without its ground truth per worker); a run
first removes the pages an earlier run left in those four folders (only ``img_<n>.jpg`` and ``gt_img_<n>.txt``).

Every sample is a pure function of ``(seed, index)``: it gets its own random
generator, and whether it lands in Test is decided by a permutation seeded
from ``(seed, count)``. So the output bytes do not depend on ``workers`` or on
how indices are split into chunks.

``workers > 1`` uses "spawn" worker processes, so a script that calls
:func:`generate` must guard its top level with ``if __name__ == "__main__":``.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from ..choices import SYNTH_KINDS
from ..errors import SettingError, ShadownetError
from ..fileio import partial_name, write_text_atomic
from ..parallel import ordered_map
from .charset import CHAR_DICT_FILE, ORD_MAP_FILE, Charset
from .render import Renderer, render
from .sentences import CHARSET_PRESET as SENTENCES_CHARSET
from .sentences import font_report, fonts_in_dirs, usable_fonts

KINDS = SYNTH_KINDS
CHARSET_PRESET = "digits_lower"
# The charset preset each kind writes (char_dict.json, ord_map.json); CHARSET_PRESET for the others.
KIND_CHARSETS = {"sentences": SENTENCES_CHARSET, "pages": SENTENCES_CHARSET}
PAGES = "pages"  # the kind written in the ICDAR 2015 layout
PAGE_FOLDERS = {"train": ("train_images", "train_gts"), "test": ("test_images", "test_gts")}
_PAGE_FILE = re.compile(r"\.?(img_[0-9]+\.jpg|gt_img_[0-9]+\.txt)(\.partial)?")  # and partial_name's
JPEG_QUALITY = 90
SPLIT_FILES = {"train": Path("Train") / "sample.txt", "test": Path("Test") / "sample.txt"}

# Distinct from any per-sample key [seed, index] (which has two entries), so
# the train/test split never shares a random stream with a sample.
_SPLIT_STREAM_TAG = 0x5717


@dataclass(frozen=True)
class SynthConfig:
    """What to generate; see :func:`generate`."""

    out_dir: Path
    count: int
    kind: str = "lines"
    seed: int = 0
    test_ratio: float = 0.1
    workers: int = 1
    fonts: tuple[Path, ...] = ()
    font_dirs: tuple[Path, ...] = ()  # every .ttf/.otf/.ttc under each, after ``fonts``

    def font_selection(self) -> tuple[tuple[Path, ...], list[dict]]:
        """(the font files drawn with besides the built-in one: ``fonts``, then those found in ``font_dirs`` that
        draw every character of the kind's charset; the fonts of ``font_dirs`` left out, with the reason)."""
        characters = Charset.from_preset(KIND_CHARSETS.get(self.kind, CHARSET_PRESET)).characters
        found, skipped = usable_fonts(fonts_in_dirs(self.font_dirs), "".join(characters))
        if self.font_dirs and not found:
            raise SettingError("font_dir", f"{', '.join(map(str, self.font_dirs))}: no font draws every character "
                                           f"of the {self.kind} charset ({skipped[0]['name']}: {skipped[0]['reason']})")
        return tuple(Path(f) for f in self.fonts) + found, skipped

    def font_files(self) -> tuple[Path, ...]:
        return self.font_selection()[0]


# -- writing a data set ----------------------------------------------------------------------------


def image_relpath(index: int) -> str:
    """Path of sample ``index`` as written in sample.txt: "/images/000/000123.jpg"."""
    return f"/images/{index // 1000:03d}/{index:06d}.jpg"


def page_relpaths(index: int, split: str) -> tuple[str, str]:
    """Where page ``index`` of the ``pages`` kind goes in ``split`` (train or test): its image and its ground
    truth, "train_images/img_1.jpg" and "train_gts/gt_img_1.txt" for index 0."""
    images, gts = PAGE_FOLDERS[split]
    return f"{images}/img_{index + 1}.jpg", f"{gts}/gt_img_{index + 1}.txt"


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """The generator that alone decides sample ``index`` of a run with ``seed``."""
    return np.random.default_rng([seed, index])


def holdout_mask(seed: int, count: int, test_ratio: float) -> np.ndarray:
    """Boolean mask over 0..count-1: True where the sample goes to Test.

    Exactly ``round(count * test_ratio)`` samples, capped so Train keeps at least one.
    """
    n_test = min(int(round(count * test_ratio)), count - 1)
    order = np.random.default_rng([seed, count, _SPLIT_STREAM_TAG]).permutation(count)
    mask = np.zeros(count, dtype=bool)
    mask[order[count - n_test :]] = True
    return mask


def _write_image(final: Path, index: int, image: np.ndarray) -> None:
    ok, encoded = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ShadownetError(f"could not encode sample {index} as JPEG")
    final.parent.mkdir(parents=True, exist_ok=True)
    # Temp name + rename: a killed run leaves either the whole image or none.
    tmp = partial_name(final)
    tmp.write_bytes(encoded.tobytes())
    os.replace(tmp, final)


def _write_chunk(task: tuple[str, str, int, tuple[str, ...], int, int, tuple[bool, ...]]) -> list[str]:
    """Render and write samples ``start .. stop-1``; return only their labels (a page's: its image's path).

    Runs in worker processes, so it takes plain picklable values and reads
    the fonts itself. ``tests`` (pages only) says which of them go to Test.
    """
    out_dir, kind, seed, font_files, start, stop, tests = task
    renderer = Renderer.create(tuple(Path(f) for f in font_files))
    labels = []
    for index in range(start, stop):
        image, label = render(kind, sample_rng(seed, index), renderer)
        if kind == PAGES:  # the image first: a ground truth file always has its whole image
            image_path, gt_path = page_relpaths(index, "test" if tests[index - start] else "train")
            _write_image(Path(out_dir) / image_path, index, image)
            (Path(out_dir) / gt_path).parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(Path(out_dir) / gt_path, label)
            label = image_path
        else:
            _write_image(Path(out_dir) / image_relpath(index).lstrip("/"), index, image)
        labels.append(label)
    return labels


def _chunks(count: int, workers: int) -> list[tuple[int, int]]:
    # Small enough to balance the workers and report progress, large enough that
    # per-task overhead (pickling, reading fonts) does not show.
    size = min(256, max(8, count // (workers * 8)))
    return [(start, min(start + size, count)) for start in range(0, count, size)]


def _labels_in_order(config: SynthConfig, font_files: tuple[Path, ...], is_test: np.ndarray,
                     progress) -> Iterator[str]:
    fonts = tuple(str(f) for f in font_files)
    tasks = (
        (str(config.out_dir), config.kind, config.seed, fonts, start, stop,
         tuple(bool(test) for test in is_test[start:stop]) if config.kind == PAGES else ())
        for start, stop in _chunks(config.count, config.workers)
    )
    done = 0
    with contextlib.closing(ordered_map(_write_chunk, tasks, config.workers)) as results:
        for labels in results:
            yield from labels
            done += len(labels)
            if progress is not None:
                progress(done, config.count)


def _validate(config: SynthConfig) -> None:
    def is_int(value) -> bool:
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

    if not is_int(config.count) or config.count < 1:
        raise ShadownetError(f"count must be a whole number of at least 1, got {config.count!r}")
    if config.kind not in KINDS:
        raise ShadownetError(f"unknown synthetic kind {config.kind!r}; choose one of {', '.join(KINDS)}")
    if not is_int(config.seed) or config.seed < 0:
        raise ShadownetError(f"seed must be a whole number >= 0, got {config.seed!r}")
    ratio = config.test_ratio
    if not isinstance(ratio, (int, float)) or isinstance(ratio, bool) or not 0.0 <= ratio < 1.0:
        raise ShadownetError(f"test ratio must be in [0, 1), got {ratio!r}")
    if not is_int(config.workers) or config.workers < 1:
        raise ShadownetError(f"workers must be a whole number of at least 1, got {config.workers!r}")
    out_dir = Path(config.out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ShadownetError(f"{out_dir}: exists and is not a directory")


def _invalidate_index(out_dir: Path) -> None:
    """Remove an earlier run's index files before overwriting its images.

    Otherwise a run killed midway would leave an old, complete-looking index
    pointing at a mix of old and new images.
    """
    for name in (CHAR_DICT_FILE, ORD_MAP_FILE, *map(str, SPLIT_FILES.values())):
        try:
            (out_dir / name).unlink()
        except FileNotFoundError:
            pass


def _remove_pages(out_dir: Path) -> None:
    """Remove the pages (and their temporary files) an earlier ``pages`` run left: the ICDAR 2015 layout has
    no index, so a page of an earlier run left behind would count as a page of this one."""
    for folder in (name for names in PAGE_FOLDERS.values() for name in names):
        if (out_dir / folder).is_dir():
            for path in (out_dir / folder).iterdir():
                if _PAGE_FILE.fullmatch(path.name) and path.is_file():
                    path.unlink()


def generate(config: SynthConfig, progress: Callable[[int, int], None] | None = None) -> dict:
    """Write ``config.count`` synthetic samples under ``config.out_dir`` in the seed layout.

    ``progress(done, total)`` is called after each chunk. Images are written
    first; sample.txt files and the JSON dictionaries last, so only a finished
    run looks like a data set (``pages``: the ICDAR 2015 layout, see the module's
    docstring). Same config -> byte-identical files, whatever
    ``workers``. Returns a summary: train/test counts, charset preset, the fonts drawn with
    (``fonts``: name, size and sha256 of each file), etc.
    """
    _validate(config)
    font_files, skipped_fonts = config.font_selection()
    Renderer.create(font_files)  # fail on a bad font before any work starts
    out_dir = Path(config.out_dir)
    preset = KIND_CHARSETS.get(config.kind, CHARSET_PRESET)
    charset = Charset.from_preset(preset)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        if config.kind == PAGES:
            _remove_pages(out_dir)
        else:
            _invalidate_index(out_dir)
    except OSError as exc:
        raise ShadownetError(f"{out_dir}: cannot write there ({exc.strerror or exc})") from None

    is_test = holdout_mask(config.seed, config.count, config.test_ratio)
    lines: dict[str, list[str]] = {"train": [], "test": []}
    for index, label in enumerate(_labels_in_order(config, font_files, is_test, progress)):
        lines["test" if is_test[index] else "train"].append(f"{image_relpath(index)} {label}\n")

    if config.kind != PAGES:  # pages: the ground truth files are written with their images, and no charset
        for split, relpath in SPLIT_FILES.items():
            (out_dir / relpath).parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(out_dir / relpath, "".join(lines[split]))
        charset.save(out_dir)
    return {
        "layout": "icdar2015" if config.kind == PAGES else "seed",
        "train": len(lines["train"]),
        "test": len(lines["test"]),
        "charset": preset,
        "kind": config.kind,
        "count": config.count,
        "seed": config.seed,
        "out_dir": str(out_dir),
        "fonts": font_report(font_files),
        "skipped_fonts": skipped_fonts,
    }
