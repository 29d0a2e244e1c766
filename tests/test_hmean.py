"""The ICDAR 2015 H-mean scorer: hand-worked cases of the protocol; nothing here imports TensorFlow."""


import numpy as np
import pytest

from shadownet.learn.detection.hmean import ImageScore, score_image, summarize


def box(x0, y0, x1, y1):
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=float)


GT = box(0, 0, 20, 10)  # 200 px²


def test_perfect_match():
    score = score_image([GT], [False], [GT.copy()])
    assert (score.gt, score.detections, score.matched) == (1, 1, 1)
    assert score.pairs == ((0, 0),) and score.ious == pytest.approx((1.0,))
    assert (score.precision, score.recall, score.hmean) == (1.0, 1.0, 1.0)
    assert score.missed == () and score.false_positives == ()


def test_a_detection_split_in_two_halves_matches_nothing():
    # Each half: IoU = 100 / 200 = 0.5 exactly, and a pair must be strictly over the threshold.
    halves = [box(0, 0, 10, 10), box(10, 0, 20, 10)]
    score = score_image([GT], [False], halves)
    assert (score.gt, score.detections, score.matched) == (1, 2, 0)
    assert score.missed == (0,) and score.false_positives == (0, 1)
    assert (score.precision, score.recall, score.hmean) == (0.0, 0.0, 0.0)
    # With a lower threshold the first half (input order) takes the ground truth; the second is left over.
    lower = score_image([GT], [False], halves, iou_threshold=0.4)
    assert lower.pairs == ((0, 0),) and lower.false_positives == (1,)
    assert (lower.precision, lower.recall) == (0.5, 1.0)


def test_two_ground_truths_merged_into_one_detection():
    # Each word 100 px²; the detection covers both and the gap: 220 px². IoU 100 / 220 each.
    gts = [box(0, 0, 10, 10), box(12, 0, 22, 10)]
    score = score_image(gts, [False, False], [box(0, 0, 22, 10)])
    assert (score.gt, score.detections, score.matched) == (2, 1, 0)
    assert score.missed == (0, 1) and score.false_positives == (0,)
    assert (score.precision, score.recall) == (0.0, 0.0)


def test_a_detection_over_a_dont_care_region_is_discarded():
    gts = [GT, box(50, 0, 70, 10)]  # the second is don't-care ("###")
    dets = [GT.copy(),
            box(52, 0, 72, 10),  # 180 of its 200 px² over the don't-care region: 0.9 > 0.5, discarded
            box(60, 0, 80, 10)]  # 100 of 200 px²: 0.5 is not over 0.5, so it counts (a false positive)
    score = score_image(gts, [False, True], dets)
    assert score.discarded == (1,)
    assert (score.gt, score.detections, score.matched) == (1, 2, 1)  # the don't-care gt is no miss
    assert score.false_positives == (2,) and score.missed == ()
    assert (score.precision, score.recall) == (0.5, 1.0)
    # A don't-care region is never matched, even by a detection of exactly its outline (also discarded).
    same = score_image(gts, [False, True], [box(50, 0, 70, 10)])
    assert same.discarded == (0,) and (same.gt, same.detections, same.matched) == (1, 0, 0)


def test_duplicate_detections_one_matches_the_other_is_a_false_positive():
    # Input order, not best IoU first: detection 0 (IoU 190 / 210) takes the gt before the exact detection 1.
    dets = [box(1, 0, 21, 10), GT.copy()]
    score = score_image([GT], [False], dets)
    assert score.pairs == ((0, 0),) and score.ious == pytest.approx((190 / 210,))
    assert score.false_positives == (1,)
    assert (score.precision, score.recall) == (0.5, 1.0)
    assert score.hmean == pytest.approx(2 * 0.5 * 1.0 / 1.5)


def test_each_ground_truth_takes_the_first_free_detection_even_when_that_costs_a_match():
    # gt 0 meets det 0 first (IoU 160 / 240) and takes it, although det 0 is gt 1's exact outline. gt 1 is then
    # left with det 1 (IoU 130 / 270 < 0.5) and is missed; best-IoU-first would have matched both
    # (gt 0 with det 1: 170 / 230). This is the reference's order, kept on purpose.
    gts = [box(0, 0, 20, 10), box(4, 0, 24, 10)]
    dets = [box(4, 0, 24, 10), box(-3, 0, 17, 10)]
    score = score_image(gts, [False, False], dets)
    assert score.pairs == ((0, 0),) and score.ious == pytest.approx((160 / 240,))
    assert score.missed == (1,) and score.false_positives == (1,)


@pytest.mark.parametrize("gts, ignore, dets, expected", [
    ([], [], [], (0, 0, 1.0, 1.0)),  # nothing to find, nothing found: a perfect image
    ([], [], [GT], (0, 1, 0.0, 1.0)),  # nothing to find, one false positive
    ([GT], [False], [], (1, 0, 0.0, 0.0)),  # one to find, nothing found
    ([GT], [True], [GT.copy()], (0, 0, 1.0, 1.0)),  # only a don't-care region, its detection discarded
])
def test_empty_image_conventions(gts, ignore, dets, expected):
    score = score_image(gts, ignore, dets)
    assert (score.gt, score.detections, score.precision, score.recall) == expected


def test_totals_are_summed_over_images_not_averaged():
    one = score_image([GT], [False], [GT.copy()])  # 1 of 1 found: P = R = 1
    # 1 of 3 found, no false positive: P = 1, R = 1/3
    three = score_image([GT, GT + 30, GT + 60], [False] * 3, [GT + 30])
    empty = score_image([], [], [])  # P = R = 1 per image, nothing to the sums
    summary = summarize([one, three, empty])
    # Summed: 2 matched of 4 gts and 2 detections: P = 1, R = 1/2, H = 2/3.
    assert summary == {"precision": 1.0, "recall": 0.5, "hmean": pytest.approx(2 / 3), "images": 3, "gt": 4,
                       "detections": 2, "matched": 2}
    # Averaging per image would say R = (1 + 1/3 + 1) / 3 = 7/9 instead.
    assert np.mean([s.recall for s in (one, three, empty)]) == pytest.approx(7 / 9)


def test_summary_of_nothing():
    assert summarize([]) == {"precision": 0.0, "recall": 0.0, "hmean": 0.0, "images": 0, "gt": 0,
                             "detections": 0, "matched": 0}
    assert summarize(iter([score_image([], [], [])]))["images"] == 1


def test_score_threshold_drops_detections():
    score = score_image([GT], [False], [GT.copy(), GT + 40], det_scores=[0.9, 0.2], score_threshold=0.5)
    assert score.dropped == (1,) and score.detections == 1 and score.precision == 1.0
    with pytest.raises(ValueError, match="go together"):
        score_image([GT], [False], [GT], det_scores=[0.9])
    with pytest.raises(ValueError, match="1 detections but 2 scores"):
        score_image([GT], [False], [GT], det_scores=[0.9, 0.1], score_threshold=0.5)


def test_non_convex_polygons_and_bad_input():
    curve = np.array([[0, 0], [30, 0], [30, 10], [10, 10], [10, 30], [0, 30]], dtype=float)  # an L: 500 px²
    # The upright stroke alone: 300 of 500 px², IoU 0.6; the foot alone [10,30]x[0,10]: 200 / 500 = 0.4.
    score = score_image([curve], [False], [box(10, 0, 30, 10), box(0, 0, 10, 30)])
    assert score.pairs == ((0, 1),) and score.ious == pytest.approx((0.6,))
    with pytest.raises(ValueError, match="1 ground-truth polygons but 2 ignore flags"):
        score_image([GT], [False, True], [])
    with pytest.raises(ValueError, match="N >= 3"):
        score_image([GT], [False], [[[0, 0], [1, 1]]])
    assert isinstance(score, ImageScore)
