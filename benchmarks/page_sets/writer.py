"""Pages and their ICDAR 2015 files.

In: the output folder, a page count, the seed, the face split and the split's name. ``make_pages`` writes
``OUT/<split>_images/img_<n>.jpg`` and ``OUT/<split>_gts/gt_img_<n>.txt`` and returns a summary. Page n is drawn
from ``page_rng(seed, split name, face split, n)`` alone, so the files do not depend on the number of workers.
``render_page`` makes one page: (photo, regions, facts).
"""

from __future__ import annotations

import multiprocessing
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from . import groff_pages, reportlab_pages
from .boxes import DONT_CARE, label_regions, pdf_lines
from .compose import compose
from .fonts import FAMILIES, Fonts, check_fonts, prepare_fonts, run
from .photo import photograph

SPLITS = ("train", "test")
FACE_SPLITS = ("train", "test")
LONG_SIDE = (600, 1000)  # px, the final image's long side
JPEG_QUALITY = (50, 90)


def page_rng(seed: int, split_name: str, faces: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, SPLITS.index(split_name) + 1, FACE_SPLITS.index(faces) + 1, index])


def render_page(rng: np.random.Generator, fonts: Fonts, work: Path) -> tuple[np.ndarray, list, dict]:
    """One page: (BGR image, regions ``(points [4, 2], text)``, facts: engine, kind, dpi, faces)."""
    doc = compose(rng, fonts)
    engine = "groff" if rng.random() < 0.5 else "reportlab"
    pdf = work / "page.pdf"
    (groff_pages if engine == "groff" else reportlab_pages).typeset(doc, pdf, fonts)
    check_fonts(pdf, fonts, {getattr(fonts.metrics[f], "groff_name" if engine == "groff" else "name")
                             for f in doc.faces()})
    border = tuple(float(v) for v in rng.uniform(0.03, 0.12, 2)) if rng.random() < 0.5 else (0.0, 0.0)
    width, height, lines = pdf_lines(pdf, fonts)
    long_px = float(rng.uniform(*LONG_SIDE))
    page_px = long_px / (1 + 2 * (border[0] if width >= height else border[1]))
    dpi = round(72.0 * page_px / max(width, height), 3)
    page = raster(pdf, dpi, fonts)
    scale = dpi / 72.0
    quads = np.float64([[[x0, y0], [x1, y0], [x1, y1], [x0, y1]] for x0, y0, x1, y1, _ in lines]) * scale
    photo, warped = photograph(page, quads.reshape(-1, 4, 2), rng, border)
    rows, cols = photo.shape[:2]
    regions = label_regions(lines, warped, scale, cols, rows)
    facts = {"engine": engine, "kind": doc.kind, "dpi": dpi, "columns": doc.columns,
             "families": sorted({f[:3] for f in doc.faces()}), "page": [doc.width, doc.height]}
    return photo, regions, facts


def raster(pdf: Path, dpi: float, fonts: Fonts) -> np.ndarray:
    """Page 1 of ``pdf`` as poppler's ``pdftoppm`` renders it at ``dpi`` (BGR uint8)."""
    root = pdf.with_suffix("")
    run(["pdftoppm", "-f", "1", "-l", "1", "-r", f"{dpi:.3f}", "-png", "-singlefile", str(pdf), str(root)], fonts.env)
    image = cv2.imread(str(root) + ".png", cv2.IMREAD_COLOR)  # BGR
    if image is None:
        raise RuntimeError(f"pdftoppm wrote no image for {pdf}")
    return image


def icdar_gt(regions: list) -> str:
    return "".join(",".join(str(int(round(v))) for v in points.reshape(-1)) + f",{text}\n" for points, text in regions)


_FONTS: Fonts | None = None


def _init(fonts: Fonts) -> None:
    global _FONTS
    _FONTS = fonts


def _make_one(job: tuple) -> dict:
    out, seed, faces, split_name, index = job
    rng = page_rng(seed, split_name, faces, index)
    with tempfile.TemporaryDirectory(dir=_FONTS.scratch) as work:
        photo, regions, facts = render_page(rng, _FONTS, Path(work))
    quality = int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1))
    ok, data = cv2.imencode(".jpg", photo, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    Path(out, f"{split_name}_images", f"img_{index}.jpg").write_bytes(data.tobytes())
    Path(out, f"{split_name}_gts", f"gt_img_{index}.txt").write_text(icdar_gt(regions), encoding="utf-8")
    return {**facts, "index": index, "lines": len(regions),
            "dont_care": sum(text == DONT_CARE for _, text in regions), "quality": quality}


def make_pages(out: Path, count: int, seed: int, faces: str, split_name: str, workers: int = 1) -> dict:
    """Writes ``count`` pages (img_1 ... img_count) of ``split_name`` in the ``faces`` split's faces under ``out``;
    returns a summary. The pages do not depend on ``workers``."""
    if faces not in FACE_SPLITS or split_name not in SPLITS:
        raise ValueError(f"faces and split_name must be one of {FACE_SPLITS}: {faces!r}, {split_name!r}")
    out = Path(out)
    for folder in (f"{split_name}_images", f"{split_name}_gts"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="page_datasets-") as scratch:
        fonts = prepare_fonts(faces, Path(scratch))
        jobs = [(str(out), seed, faces, split_name, index) for index in range(1, count + 1)]
        if workers <= 1:
            _init(fonts)
            results = [_make_one(job) for job in jobs]
        else:
            with multiprocessing.get_context("spawn").Pool(workers, initializer=_init, initargs=(fonts,)) as pool:
                results = list(pool.imap(_make_one, jobs, chunksize=1))
    engines, kinds = {}, {}
    for r in results:
        engines[r["engine"]] = engines.get(r["engine"], 0) + 1
        kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
    return {"split": split_name, "faces": faces, "pages": count, "lines": sum(r["lines"] for r in results),
            "dont_care": sum(r["dont_care"] for r in results), "engines": engines, "kinds": kinds,
            "seconds": round(time.perf_counter() - start, 2),
            "families": [f.name for f in FAMILIES[faces]]}
