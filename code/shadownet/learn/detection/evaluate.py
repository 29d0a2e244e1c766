"""A detector's pages scored by the ICDAR 2015 protocol: validation during training and ``shadownet evaluate``.

``score_pages`` runs the network over whole pages (``pipeline.page_dataset(training=False)``: the longer side
scaled to ``page_size``), turns each probability map into boxes in the stored page's pixels
(``postprocess.PostProcess``) and scores them against the page's regions (``hmean.score_image``). The split's
precision, recall and H-mean come from summed counts (``hmean.summarize``).

``evaluate`` is the command's: every page of a split once, a JSON report (the totals, then each page: its
counts and scores, its detections with their scores, the regions it missed) and a PNG of the first pages as
the network saw them: matched detections green, false alarms orange, missed regions red, don't-care grey.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
import tensorflow as tf

from ...errors import ShadownetError
from ...fileio import write_bytes_atomic, write_text_atomic
from .. import read_records
from ..run_dir import load_detector, report_name
from . import pipeline
from .hmean import score_image, summarize
from .postprocess import PostProcess

DRAWN_PAGES = 4
DRAWN_WIDTH = 640  # each page of the PNG is scaled to this width
GREEN, ORANGE, RED, GREY = (0, 170, 0), (255, 140, 0), (220, 0, 0), (150, 150, 150)  # RGB
TOTALS = ("precision", "recall", "hmean", "images", "gt", "detections", "matched")


def forward_fn(model):
    """The probability map of one page, compiled once for any page size."""
    return tf.function(lambda image: model(image, training=False)["prob"],
                       input_signature=[tf.TensorSpec([1, None, None, 3], tf.float32)])


def score_pages(forward, dataset, post: PostProcess, deadline: float | None = None, clock=time.monotonic,
                drawn: int = 0):
    """``(scores, pages)`` over ``dataset``, or ``(None, None)`` once ``deadline`` (a ``clock()`` time) passes
    between pages. ``pages``: per page, its source, ``ImageScore``, detections ``[(points, score)]``, true
    polygons and ignore flags, and for the first ``drawn`` the RGB picture of the page as scaled (with ``scale``,
    stored px per picture px)."""
    scores, pages = [], []
    for inputs, page in dataset:
        if deadline is not None and clock() >= deadline:
            return None, None
        prob = forward(inputs["image"])[0, :, :, 0].numpy()
        scale = page["scale"][0].numpy()
        width, height = (int(v) for v in page["image_size"][0].numpy())
        found = post.boxes(prob, float(scale[0]), float(scale[1]), image_size=(width, height))
        truth = pipeline.polygons(page["points"][0].numpy(), page["count"][0].numpy())
        ignore = [bool(v) for v in page["ignore"][0].numpy()]
        score = score_image(truth, ignore, [points for points, _ in found])
        scores.append(score)
        picture = None
        if len(pages) < drawn:
            picture = ((inputs["image"][0].numpy() + 1.0) * 127.5).clip(0, 255).astype(np.uint8)
        pages.append({"source": page["source"][0].numpy().decode("utf-8", "replace"), "score": score,
                      "found": found, "truth": truth, "ignore": ignore, "picture": picture, "scale": scale})
    return scores, pages


def draw(page: dict) -> np.ndarray:
    """The page's picture with its boxes (see the module's colours), RGB uint8."""
    picture = np.ascontiguousarray(page["picture"])
    score = page["score"]
    matched = {d for _, d in score.pairs}
    shapes = [(GREY, points) for points, flag in zip(page["truth"], page["ignore"], strict=True) if flag]
    shapes += [(RED, page["truth"][g]) for g in score.missed]
    shapes += [(GREEN if d in matched else ORANGE, points) for d, (points, _) in enumerate(page["found"])
               if d in matched or d in score.false_positives]
    for colour, points in shapes:
        outline = np.round(np.asarray(points, np.float32) / page["scale"]).astype(np.int32)
        cv2.polylines(picture, [outline], True, colour, 2)
    return picture


def evaluate(config) -> dict:
    """``shadownet evaluate`` of a detector (``config``: ``learn.evaluate.EvalConfig``); returns the report."""
    if config.lexicon:
        raise ShadownetError("--lexicon reads text; a detector's evaluation has no use for it")
    manifest = read_records.read_manifest(config.tfrecords_dir, task="detection")
    model, train_config = load_detector(config.model_dir, config.checkpoint)
    files = read_records.split_files(config.tfrecords_dir, config.split, manifest)
    expected = manifest["counts"][config.split]
    if not expected:
        raise ShadownetError(f"{config.tfrecords_dir}: the {config.split} split is empty")
    dataset = pipeline.page_dataset(files, batch_size=1, size=train_config.page_size, training=False)
    scores, pages = score_pages(forward_fn(model), dataset, PostProcess(), drawn=DRAWN_PAGES)
    if len(pages) != expected:
        raise ShadownetError(f"evaluated {len(pages)} pages but the {config.split} split has {expected}")
    totals = summarize(scores)
    report = {key: totals[key] for key in TOTALS} | {
        "split": config.split, "checkpoint": config.checkpoint, "model": train_config.model,
        "page_size": train_config.page_size, "iou_threshold": 0.5,
        "pages": [_page_report(page) for page in pages],
    }
    report_path = Path(config.report or Path(config.model_dir) / report_name(config.split))
    report_path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(report_path, json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    _write_sheet(Path(config.grid or report_path.with_suffix(".png")), [p for p in pages if p["picture"] is not None])
    return report


def _page_report(page: dict) -> dict:
    score = page["score"]
    return {"source": page["source"], "gt": score.gt, "detections": score.detections, "matched": score.matched,
            "precision": score.precision, "recall": score.recall, "hmean": score.hmean,
            "boxes": [{"points": np.round(points, 1).tolist(), "score": round(value, 4)}
                      for points, value in page["found"]],
            "missed": [np.round(page["truth"][g], 1).tolist() for g in score.missed]}


def _write_sheet(path: Path, pages: list[dict]) -> None:
    """The drawn pages one under the other, each scaled to ``DRAWN_WIDTH``; written atomically."""
    drawn = []
    for page in pages:
        picture = draw(page)
        height = max(1, round(picture.shape[0] * DRAWN_WIDTH / picture.shape[1]))
        drawn.append(cv2.resize(picture, (DRAWN_WIDTH, height), interpolation=cv2.INTER_AREA))
    sheet = np.concatenate(drawn) if drawn else np.full((32, DRAWN_WIDTH, 3), 255, np.uint8)
    ok, data = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ShadownetError(f"{path}: could not encode the pages")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, data.tobytes())
