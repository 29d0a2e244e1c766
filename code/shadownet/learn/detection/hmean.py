"""The ICDAR 2015 detection score (precision, recall and their H-mean, "DetEval IoU"), without TensorFlow.

The protocol of the Robust Reading Competition's script for Challenge 4 task 1 (and MMOCR's
``HmeanIOUMetric`` with its "vanilla" strategy), per image:

1. Detections scoring under ``score_threshold`` (when scores are given) are dropped, as if never made.
2. A detection is *discarded*, counted neither way, when its overlap with any one don't-care ground truth
   covers more than ``ignore_threshold`` of the detection's own area.
3. One-to-one greedy matching between counted ground truths and counted detections, in the reference's
   order: ground truths in input order, and for each the first detection in input order, not yet matched,
   whose IoU is *strictly greater* than ``iou_threshold`` (the reference's ``>``: two halves of a box, IoU
   exactly 0.5 each, match nothing). Not best-IoU-first: a later, better detection can lose its ground
   truth to an earlier one that merely passes.
4. Precision = matched / counted detections, recall = matched / counted ground truths.

The dataset's numbers come from counts summed over all images, not from per-image numbers averaged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from ...data.pages import polygons


@dataclass(frozen=True)
class ImageScore:
    """One image's outcome. Indices are into the inputs of ``score_image``: ``pairs`` are
    ``(gt index, detection index)`` in the order matched, with their IoU in ``ious``."""

    gt: int  # counted ground truths (don't-care ones excluded)
    detections: int  # counted detections (dropped and discarded ones excluded)
    pairs: tuple[tuple[int, int], ...]
    ious: tuple[float, ...]
    discarded: tuple[int, ...]  # detections over a don't-care region
    dropped: tuple[int, ...]  # detections under the score threshold
    missed: tuple[int, ...]  # counted ground truths left unmatched
    false_positives: tuple[int, ...]  # counted detections left unmatched

    @property
    def matched(self) -> int:
        return len(self.pairs)

    @property
    def recall(self) -> float:
        """The reference's convention: 1 for an image with nothing to find."""
        return self.matched / self.gt if self.gt else 1.0

    @property
    def precision(self) -> float:
        """The reference's convention: with nothing to find, 1 without detections and 0 with any; with
        something to find and no detections, 0."""
        if self.detections:
            return self.matched / self.detections
        return 1.0 if self.gt == 0 else 0.0

    @property
    def hmean(self) -> float:
        return _hmean(self.precision, self.recall)


def _hmean(precision: float, recall: float) -> float:
    total = precision + recall
    return 0.0 if total == 0 else 2 * precision * recall / total


def _boxes(points: list[np.ndarray]) -> np.ndarray:
    """``[N, 4]`` bounding boxes (x0, y0, x1, y1): pairs whose boxes do not meet overlap by nothing."""
    if not points:
        return np.zeros((0, 4))
    return np.stack([np.concatenate([p.min(0), p.max(0)]) for p in points])


def _meet(box_a: np.ndarray, box_b: np.ndarray) -> bool:
    return bool(box_a[0] < box_b[2] and box_b[0] < box_a[2] and box_a[1] < box_b[3] and box_b[1] < box_a[3])


def score_image(gt_polygons: Sequence, gt_ignore: Sequence[bool], det_polygons: Sequence,
                iou_threshold: float = 0.5, ignore_threshold: float = 0.5, *,
                det_scores: Sequence[float] | None = None, score_threshold: float | None = None) -> ImageScore:
    """Score one image's detections against its ground truth (see the module's protocol).

    ``gt_polygons`` and ``det_polygons``: ``[N, 2]`` point arrays (any N >= 3, either orientation);
    ``gt_ignore``: one flag a ground truth, True for don't-care. ``det_scores`` (one a detection) and
    ``score_threshold`` go together: detections scoring under it are dropped. Raises ValueError for
    inputs of mismatched lengths or a polygon that is not ``[N >= 3, 2]`` finite points.
    """
    gts = [polygons.as_points(p) for p in gt_polygons]
    dets = [polygons.as_points(p) for p in det_polygons]
    ignore = [bool(flag) for flag in gt_ignore]
    if len(ignore) != len(gts):
        raise ValueError(f"{len(gts)} ground-truth polygons but {len(ignore)} ignore flags")
    if (det_scores is None) != (score_threshold is None):
        raise ValueError("det_scores and score_threshold go together")
    if det_scores is not None and len(det_scores) != len(dets):
        raise ValueError(f"{len(dets)} detections but {len(det_scores)} scores")
    dropped = [] if det_scores is None else [d for d, s in enumerate(det_scores) if s < score_threshold]
    gt_boxes, det_boxes = _boxes(gts), _boxes(dets)

    discarded = []
    dont_care = [g for g, flag in enumerate(ignore) if flag]
    for d in sorted(set(range(len(dets))) - set(dropped)):
        own = polygons.filled_area(dets[d])
        if own <= 0 or not dont_care:  # the reference: a detection of no area is never discarded
            continue
        for g in dont_care:  # each region on its own, as the reference does (not their union)
            if not _meet(gt_boxes[g], det_boxes[d]):
                continue
            if polygons.intersection_area(gts[g], dets[d]) / own > ignore_threshold:
                discarded.append(d)
                break

    counted_gts = [g for g, flag in enumerate(ignore) if not flag]
    counted_dets = sorted(set(range(len(dets))) - set(dropped) - set(discarded))
    taken: set[int] = set()
    pairs, ious = [], []
    for g in counted_gts:
        for d in counted_dets:
            if d in taken or not _meet(gt_boxes[g], det_boxes[d]):
                continue
            overlap = polygons.iou(gts[g], dets[d])
            if overlap > iou_threshold:
                pairs.append((g, d))
                ious.append(overlap)
                taken.add(d)
                break
    matched_gts = {g for g, _ in pairs}
    return ImageScore(
        gt=len(counted_gts), detections=len(counted_dets), pairs=tuple(pairs), ious=tuple(ious),
        discarded=tuple(discarded), dropped=tuple(dropped),
        missed=tuple(g for g in counted_gts if g not in matched_gts),
        false_positives=tuple(d for d in counted_dets if d not in taken))


def summarize(scores: Iterable[ImageScore]) -> dict:
    """The dataset's score from summed counts: ``precision`` = matched / detections (0 without detections),
    ``recall`` = matched / gt (0 without ground truth), ``hmean`` (0 when both are 0), and the sums
    ``images``, ``gt``, ``detections``, ``matched``. Per-image conventions (an empty image scoring 1) play
    no part here."""
    images = gt = detections = matched = 0
    for score in scores:
        images += 1
        gt += score.gt
        detections += score.detections
        matched += score.matched
    precision = matched / detections if detections else 0.0
    recall = matched / gt if gt else 0.0
    return {"precision": precision, "recall": recall, "hmean": _hmean(precision, recall), "images": images,
            "gt": gt, "detections": detections, "matched": matched}
