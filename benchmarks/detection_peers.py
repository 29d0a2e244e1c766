"""Other text detectors on a page set in the ICDAR 2015 layout, for the detection benchmark: the same image files.

* ``paddle``: PP-OCRv4's text detector (``ch_PP-OCRv4_det_infer.onnx``, a DB network) as the
  ``rapidocr-onnxruntime`` wheel ships it, on onnxruntime's CPU provider (its default thread counts), with the
  wheel's default settings (its ``config.yaml``: a page over 2000 px on the long side scaled down to it, a short
  side under 736 px scaled up to 736, both sides then rounded to multiples of 32; binarisation 0.3, box score 0.5,
  unclip ratio 1.6, dilation on). Only its detection step runs
  (``RapidOCR()(image_path, use_det=True, use_cls=False, use_rec=False)``): its quadrilaterals, corners clockwise
  from the top-left, in the page's pixels, scored as 4-point polygons. Nothing is filtered by a recogniser's
  confidence (no recognition runs); the mean page size is in the figures because the 736 px rescale depends on it.
* ``tesseract``: the ``tesseract`` binary (Tesseract 5, English data: Debian's ``tesseract-ocr``), one process per
  page, ``tesseract PAGE - -l eng tsv``: its default page segmentation (``--psm 3``, automatic, no orientation
  detection) and LSTM engine. Each level-4 row of the TSV (a text line) holding at least one word (level 5) whose
  text is not empty or whitespace is a detection, its axis-aligned box as a 4-point polygon. Reported as skipped
  when not installed. Its environment is this process's: without ``OMP_THREAD_LIMIT`` it starts OpenMP threads,
  which on a busy machine can make it several times slower than ``OMP_THREAD_LIMIT=1``.

Every system is scored by ``shadownet.learn.detection.hmean`` (the ICDAR 2015 protocol: one-to-one matching at
IoU > 0.5, a detection over 50 % inside one ``###`` region discarded; counts summed over the pages), the one the
benchmark uses for shadownet's own detector. Each peer reports that summary (``precision``, ``recall``,
``hmean``, ``images``, ``gt``, ``detections``, ``matched``), ``ms_per_page`` (wall time of the loop over the pages,
the model already loaded, no warm-up run; it includes decoding each image file, and for Tesseract starting one
process a page; scoring is not timed) and the mean page size in pixels. No peer is trained or adapted to the set.

    python benchmarks/detection_peers.py DATASET_DIR [--split test] [--peers paddle,tesseract]   # JSON line a peer
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

PEERS = ("paddle", "tesseract")
RAPIDOCR_VERSION = "1.4.4"  # benchmarks/requirements-peers.txt pins the same
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")

Page = tuple[Path, list[np.ndarray], list[bool]]  # image file, ground-truth polygons, their don't-care flags
Detect = Callable[[Path], list[np.ndarray]]


class PeerFailed(Exception):
    """A peer could not read one page: it counts as a page without detections, and the run says how many failed."""


def _natural(name: str) -> list:
    """``img_2`` before ``img_10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def read_icdar_split(root: Path, split: str) -> list[Page]:
    """``(image path, ground-truth polygons, don't-care flags)`` for every page of ``root/<split>_images``, its
    ground truth from ``root/<split>_gts/gt_<image stem>.txt``; in natural order of the image names. Raises
    FileNotFoundError for a missing folder, ValueError when an image has no ground truth or a ground truth no
    image, and parse_icdar_gt's LineError for a bad line."""
    from shadownet.data.pages.annotations import parse_icdar_gt

    images_dir, gts_dir = Path(root) / f"{split}_images", Path(root) / f"{split}_gts"
    for folder in (images_dir, gts_dir):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such folder (ICDAR 2015 layout: {split}_images/, {split}_gts/)")
    images = sorted((path for path in images_dir.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES),
                    key=lambda path: _natural(path.name))
    wanted = {f"gt_{path.stem}.txt" for path in images}
    if len(wanted) != len(images):
        raise ValueError(f"{images_dir}: two images share a name stem, so they would share one ground truth")
    missing = [path.name for path in images if not (gts_dir / f"gt_{path.stem}.txt").is_file()]
    if missing:
        raise ValueError(f"{gts_dir}: no ground truth for {len(missing)} image(s), e.g. gt_{Path(missing[0]).stem}.txt")
    orphans = sorted(path.name for path in gts_dir.glob("gt_*.txt") if path.name not in wanted)
    if orphans:
        raise ValueError(f"{images_dir}: no image for {len(orphans)} ground truth file(s), e.g. {orphans[0]}")
    pages = []
    for path in images:
        gt_file = gts_dir / f"gt_{path.stem}.txt"
        regions = [region for _, region in parse_icdar_gt(gt_file.read_bytes(), str(gt_file))]
        pages.append((path, [region.points for region in regions], [region.ignore for region in regions]))
    return pages


def _paddle() -> tuple[str, Detect] | str:
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError:
        return (f"rapidocr-onnxruntime not installed (pip install --no-deps rapidocr-onnxruntime=={RAPIDOCR_VERSION}"
                ", see benchmarks/requirements-peers.txt)")
    from importlib.metadata import version

    engine = RapidOCR()

    def detect(path: Path) -> list[np.ndarray]:
        # Detection only, the answer ([4 corners] per box, [seconds]) or (None, None) for a page without boxes.
        boxes, _ = engine(str(path), use_det=True, use_cls=False, use_rec=False)
        return [np.asarray(box, dtype=np.float32).reshape(4, 2) for box in boxes or []]

    return f"PP-OCRv4 detector (rapidocr-onnxruntime {version('rapidocr-onnxruntime')})", detect


def tesseract_lines(tsv: str) -> list[np.ndarray]:
    """The text lines of ``tesseract ... tsv`` output: each level-4 row with a non-blank word (a level-5 row of
    the same page, block, paragraph and line), as its axis-aligned box's 4 corners, clockwise from the top-left."""
    rows = [line.split("\t") for line in tsv.splitlines()[1:] if line.strip()]  # the first line names the columns
    inked = {tuple(row[1:5]) for row in rows if row[0] == "5" and len(row) > 11 and row[11].strip()}
    lines = []
    for row in rows:
        if row[0] == "4" and tuple(row[1:5]) in inked:
            left, top, width, height = (float(value) for value in row[6:10])
            lines.append(np.array([[left, top], [left + width, top], [left + width, top + height],
                                   [left, top + height]], dtype=np.float32))
    return lines


def _tesseract() -> tuple[str, Detect] | str:
    binary = shutil.which("tesseract")
    if not binary:
        return "tesseract not installed (apt install tesseract-ocr)"
    found = subprocess.run([binary, "--version"], capture_output=True, text=True)
    name = (found.stdout or found.stderr).splitlines()[0].strip() if (found.stdout or found.stderr) else "tesseract"

    def detect(path: Path) -> list[np.ndarray]:
        done = subprocess.run([binary, str(path), "-", "-l", "eng", "tsv"], capture_output=True, text=True)
        if done.returncode:
            raise PeerFailed(f"{path.name}: tesseract exited {done.returncode}: {done.stderr.strip()[-200:]}")
        return tesseract_lines(done.stdout)

    return f"{name} -l eng tsv (default --psm 3), level-4 lines", detect


LOADERS = {"paddle": _paddle, "tesseract": _tesseract}


def mean_page_size(pages: list[Page]) -> tuple[float, float]:
    """Mean width and height in pixels (from the files' headers)."""
    from PIL import Image

    sizes = []
    for path, _, _ in pages:
        with Image.open(path) as image:
            sizes.append(image.size)
    if not sizes:
        return 0.0, 0.0
    widths, heights = zip(*sizes, strict=True)
    return sum(widths) / len(sizes), sum(heights) / len(sizes)


def run(peer: str, pages: list[Page]) -> dict:
    """One peer's figures on the pages, or ``{"skipped": why}`` when it is not installed."""
    from shadownet.learn.detection.hmean import score_image, summarize

    loaded = LOADERS[peer]()
    if isinstance(loaded, str):
        return {"skipped": loaded}
    name, detect = loaded
    detections, failures = [], []
    began = time.perf_counter()
    for path, _, _ in pages:
        try:
            detections.append(detect(path))
        except PeerFailed as failure:
            detections.append([])
            failures.append(str(failure))
    seconds = time.perf_counter() - began
    summary = summarize(score_image(gt_polygons, gt_ignore, found)
                        for (_, gt_polygons, gt_ignore), found in zip(pages, detections, strict=True))
    width, height = mean_page_size(pages)
    figures = {"engine": name,
               **{key: round(value, 6) if isinstance(value, float) else value for key, value in summary.items()},
               "ms_per_page": round(1000 * seconds / max(len(pages), 1), 1),
               "mean_page_width": round(width, 1), "mean_page_height": round(height, 1)}
    if failures:
        figures["failed_pages"] = len(failures)
        figures["first_failure"] = failures[0]
    return figures


def parse_peers(value: str) -> tuple[str, ...]:
    """``paddle,tesseract`` -> the names; ``none`` or empty -> (); raises ValueError naming an unknown one."""
    names = tuple(name.strip() for name in value.split(",") if name.strip() and name.strip() != "none")
    unknown = [name for name in names if name not in PEERS]
    if unknown:
        raise ValueError(f"unknown peer {unknown[0]!r}; known: {', '.join(PEERS)}, none")
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset_dir", type=Path, help="a page set in the ICDAR 2015 layout")
    parser.add_argument("--split", default="test", help="its <split>_images/ and <split>_gts/ are read (default: test)")
    parser.add_argument("--peers", default=",".join(PEERS), help=f"a list of {', '.join(PEERS)}, or none")
    args = parser.parse_args()
    try:
        peers = parse_peers(args.peers)
        pages = read_icdar_split(args.dataset_dir, args.split)
    except (ValueError, FileNotFoundError) as error:  # LineError is a ValueError
        parser.error(str(error))
    if not pages:
        parser.error(f"{args.dataset_dir / (args.split + '_images')}: no images")
    for peer in peers:
        print(json.dumps({"peer": peer, "split": args.split, **run(peer, pages)}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
