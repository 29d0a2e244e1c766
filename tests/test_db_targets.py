"""DBNet's training targets and its probability map → boxes step: hand-worked maps; no TensorFlow here."""

import itertools

import cv2
import numpy as np
import pytest

from shadownet.data.pages import polygons
from shadownet.learn.detection.postprocess import PostProcess, order_points
from shadownet.learn.detection.targets import db_targets, min_side, offset_distance


def box(x0, y0, x1, y1):
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=float)


def extent(flags):
    """(x min, x max, y min, y max) of the pixels set in ``flags``."""
    ys, xs = np.nonzero(flags)
    return xs.min(), xs.max(), ys.min(), ys.max()


RECT = box(12, 22, 52, 42)  # 40 x 20 px: area 800, perimeter 120, D = 800 * (1 - 0.4²) / 120 = 5.6


def test_a_rectangle_shrinks_by_d_and_its_band_runs_from_the_border():
    assert offset_distance(RECT, 1 - 0.4 ** 2) == pytest.approx(5.6)
    t = db_targets([RECT], [False], 64, 64)
    assert set(t) == {"gt", "mask", "thresh", "thresh_mask"}
    assert all(m.dtype == np.float32 and m.shape == (64, 64) for m in t.values())
    # Inset by 5.6: x in [17.6, 46.4], y in [27.6, 36.4]; the nearest pixel centres are 18..46 and 28..36.
    x0, x1, y0, y1 = extent(t["gt"] > 0)
    assert (x0, x1, y0, y1) == (18, 46, 28, 36)
    assert abs(x0 - 17.6) <= 1 and abs(x1 - 46.4) <= 1 and abs(y0 - 27.6) <= 1 and abs(y1 - 36.4) <= 1
    assert t["gt"][28:37, 18:47].min() == 1 and t["gt"].sum() == 29 * 9  # a full rectangle, nothing else
    assert t["mask"].min() == 1  # nothing to ignore
    # Threshold: thresh_max on the border, falling linearly to thresh_min at D, thresh_min beyond.
    border = np.concatenate([t["thresh"][22, 12:53], t["thresh"][42, 12:53], t["thresh"][22:43, 12],
                             t["thresh"][22:43, 52]])
    np.testing.assert_allclose(border, 0.7, atol=1e-6)
    assert t["thresh"][32, 10] == pytest.approx(0.3 + 0.4 * (1 - 2 / 5.6))  # 2 px outside the left edge
    assert t["thresh"][32, 15] == pytest.approx(0.3 + 0.4 * (1 - 3 / 5.6))  # 3 px inside it
    assert t["thresh"][0, 0] == pytest.approx(0.3) and t["thresh"][32, 32] == pytest.approx(0.3)  # far; deep
    # Dilated by 5.6: x in [6.4, 57.6], y in [16.4, 47.6] -> centres 6..58 and 16..48, corners rounded.
    assert extent(t["thresh_mask"] > 0) == (6, 58, 16, 48)
    assert t["thresh_mask"][22:43, 12:53].min() == 1  # the polygon itself
    assert t["thresh_mask"][16, 6] == 0  # 8.5 px from the corner (12, 22)
    assert t["thresh_mask"][18, 8] == 1  # 5.7 px from it
    assert t["thresh"][t["thresh_mask"] == 0].max() == pytest.approx(0.3)


def test_dont_care_too_small_and_degenerate_regions_are_masked_and_get_no_band():
    dont_care = box(4, 4, 30, 16)
    too_small = box(40, 4, 60, 9)  # 20 x 5: shorter than 8
    slanted = cv2.boxPoints(((30.0, 45.0), (40.0, 6.0), 30.0)).astype(float)  # its upright box is 8+ high
    bow_tie = np.array([[44, 30], [60, 44], [60, 30], [44, 44]], dtype=float)
    assert min_side(too_small) == 5 and min_side(slanted) == pytest.approx(6, abs=1e-4)
    t = db_targets([dont_care, too_small, slanted, bow_tie], [True, False, False, False], 64, 64)
    assert t["gt"].max() == 0 and t["thresh_mask"].max() == 0
    assert np.all(t["thresh"] == np.float32(0.3))
    assert t["mask"][4:17, 4:31].max() == 0 and t["mask"][4:10, 40:61].max() == 0
    assert t["mask"][45, 30] == 0 and t["mask"][37, 52] == 0  # the slanted box's centre; inside the bow-tie
    assert t["mask"][60, 2] == 1 and t["mask"][25, 35] == 1  # elsewhere
    # A don't-care region over a counted one: the loss is masked there, the counted region still drawn.
    both = db_targets([RECT, box(30, 20, 40, 44)], [False, True], 64, 64)
    assert both["gt"][32, 35] == 1 and both["mask"][32, 35] == 0 and both["mask"][32, 20] == 1


def test_two_adjacent_boxes_take_the_max_where_their_bands_overlap():
    a, b = box(10, 10, 30, 40), box(34, 10, 54, 40)  # 20 x 30 each: D = 600 * 0.84 / 100 = 5.04; gap of 4 px
    both = db_targets([a, b], [False, False], 64, 64)
    alone_a, alone_b = db_targets([a], [False], 64, 64), db_targets([b], [False], 64, 64)
    np.testing.assert_array_equal(both["thresh"], np.maximum(alone_a["thresh"], alone_b["thresh"]))
    np.testing.assert_array_equal(both["thresh_mask"], np.maximum(alone_a["thresh_mask"], alone_b["thresh_mask"]))
    np.testing.assert_array_equal(both["gt"], np.maximum(alone_a["gt"], alone_b["gt"]))
    # x = 31: 1 px outside a (0.3 + 0.4 * (1 - 1/5.04)), 3 px outside b (0.3 + 0.4 * (1 - 3/5.04)).
    assert alone_b["thresh"][25, 31] == pytest.approx(0.3 + 0.4 * (1 - 3 / 5.04))
    assert both["thresh"][25, 31] == pytest.approx(0.3 + 0.4 * (1 - 1 / 5.04))
    assert both["thresh"][25, 32] == pytest.approx(0.3 + 0.4 * (1 - 2 / 5.04))  # 2 px from each


def test_regions_off_the_image_and_bad_input():
    # Cut by the image's left edge: the shrink is from the region's own border, not from the image's edge.
    t = db_targets([box(-20, 10, 30, 40)], [False], 64, 64)  # D = 1500 * 0.84 / 160 = 7.875
    assert extent(t["gt"] > 0) == (0, 22, 18, 32)  # 30 - 7.875 = 22.1; 10 + 7.875 = 17.9; 40 - 7.875 = 32.1
    assert t["thresh"][25, 0] == pytest.approx(0.3)
    away = db_targets([box(100, 100, 140, 120)], [False], 64, 64)  # wholly off the image: nothing
    assert away["gt"].max() == 0 and away["mask"].min() == 1 and away["thresh_mask"].max() == 0
    with pytest.raises(ValueError, match="1 polygons but 2 ignore flags"):
        db_targets([RECT], [False, True], 64, 64)
    with pytest.raises(ValueError, match="N >= 3"):
        db_targets([[[0, 0], [1, 1]]], [False], 64, 64)


# Postprocess: rectangles drawn as the shrink would leave them, inset by the D' that unclip will add back.

def inset_for(w, h, ratio=1.5):
    """d with d = area * ratio / perimeter of the w x h rectangle inset by d: unclipping that inset gives
    w x h back."""
    low, high = 0.0, min(w, h) / 2
    for _ in range(60):
        d = (low + high) / 2
        if d < (w - 2 * d) * (h - 2 * d) * ratio / (2 * (w + h - 4 * d)):
            low = d
        else:
            high = d
    return d


def rotated(cx, cy, w, h, angle):
    return cv2.boxPoints(((float(cx), float(cy)), (float(w), float(h)), float(angle))).astype(float)


def draw(prob, rect, values):
    """Fill ``rect`` (cx, cy, w, h, angle) shrunk by ``inset_for`` into ``prob`` with ``values`` (an array of
    prob's shape, or a number); returns the drawn pixels' mask."""
    cx, cy, w, h, angle = rect
    d = inset_for(w, h)
    drawn = np.zeros(prob.shape, np.uint8)
    cv2.fillPoly(drawn, [np.round(rotated(cx, cy, w - 2 * d, h - 2 * d, angle) * 16).astype(np.int32)], 1,
                 shift=4)
    prob[drawn > 0] = (np.broadcast_to(values, prob.shape))[drawn > 0]
    return drawn > 0


RECTS = [(80, 50, 100, 30, 0.0), (200, 120, 120, 36, 20.0), (90, 150, 90, 32, -30.0)]


def test_boxes_recover_the_rectangles_and_score_the_mean_inside():
    rng = np.random.default_rng(0)
    prob = np.zeros((200, 300), np.float32)
    values = rng.uniform(0.7, 1.0, prob.shape).astype(np.float32)
    drawn = [draw(prob, rect, values) for rect in RECTS]
    found = PostProcess().boxes(prob)
    assert len(found) == 3
    # Largest first: 120 x 36, then 100 x 30, then 90 x 32 (their insets' areas rank the same way).
    for (points, score), i in zip(found, (1, 0, 2), strict=True):
        assert points.shape == (4, 2) and points.dtype == np.float32
        assert polygons.iou(points, rotated(*RECTS[i])) > 0.9
        assert score == pytest.approx(float(prob[drawn[i]].mean()), rel=1e-6)
        np.testing.assert_array_equal(points, order_points(points))
    # The same map twice: the same boxes, in the same order.
    again = PostProcess().boxes(prob.copy())
    assert all(np.array_equal(p, q) and s == t for (p, s), (q, t) in zip(found, again, strict=True))


def test_low_scores_and_small_components_are_dropped():
    prob = np.zeros((120, 160), np.float32)
    draw(prob, RECTS[0], 0.9)
    draw(prob, (80, 100, 60, 24, 0.0), 0.45)  # over the 0.3 binarisation, under box_threshold 0.6
    prob[5:7, 150:152] = 0.95  # 2 x 2 px: its outline's short side is 1 < min_size 3
    prob[100:104, 120:150] = 0.95  # 4 x 30 px: short side 3, grows by 2 px a side (D' = 87 * 1.5 / 64 = 2.04)
    found = PostProcess().boxes(prob)
    assert len(found) == 2 and [s for _, s in found] == pytest.approx([0.9, 0.95])
    assert polygons.iou(found[0][0], rotated(*RECTS[0])) > 0.9
    np.testing.assert_allclose(found[1][0], box(118, 98, 151, 105), atol=1e-4)  # 7 x 33 around (134.5, 101.5)
    # Barely unclipped (D' = 0.14 grows nothing), its short side stays 3 < min_size + 2: dropped.
    assert len(PostProcess(unclip_ratio=0.1).boxes(prob)) == 1
    assert PostProcess(box_threshold=0.4).boxes(prob)[1][1] == pytest.approx(0.45)


def test_scale_maps_back_to_the_original_image_and_clips_to_it():
    prob = np.zeros((100, 160), np.float32)
    draw(prob, (80, 50, 100, 30, 0.0), 0.9)
    draw(prob, (2, 80, 60, 24, 0.0), 0.9)  # its unclipped box runs off the left edge
    plain = PostProcess().boxes(prob)
    scaled = PostProcess().boxes(prob, 2.0, 0.5)  # the original: 320 x 50
    assert len(plain) == len(scaled) == 2
    np.testing.assert_allclose(scaled[0][0], plain[0][0] * [2.0, 0.5], rtol=1e-6)
    assert plain[1][0][:, 0].min() == 0 and scaled[1][0][:, 0].min() == 0  # clipped, not negative
    np.testing.assert_allclose(scaled[1][0][:, 1], plain[1][0][:, 1] * 0.5, rtol=1e-6)
    # The map covers padding: clamp into the image given, 200 x 40.
    padded = PostProcess().boxes(prob, 2.0, 0.5, image_size=(200, 40))
    assert padded[0][0][:, 0].max() == 199 and padded[0][0][:, 1].max() <= 39
    with pytest.raises(ValueError, match="positive"):
        PostProcess().boxes(prob, 0.0, 1.0)


def test_candidates_come_largest_first_then_top_then_left():
    prob = np.zeros((120, 200), np.float32)
    prob[80:100, 10:50] = 0.9  # 40 x 20 (outline 39 x 19)
    prob[10:30, 150:190] = 0.9  # the same size, higher up: before it
    prob[10:30, 60:90] = 0.9  # smaller, though higher and further left
    prob[60:90, 100:160] = 0.9  # the largest
    centres = [points.mean(axis=0).round(1).tolist() for points, _ in PostProcess().boxes(prob)]
    assert centres == [[129.5, 74.5], [169.5, 19.5], [29.5, 89.5], [74.5, 19.5]]
    assert len(PostProcess(max_candidates=2).boxes(prob)) == 2


def test_order_points_is_clockwise_from_the_top_left_whatever_the_input_order():
    upright = box(10, 20, 50, 40)
    for perm in itertools.permutations(range(4)):
        np.testing.assert_array_equal(order_points(upright[list(perm)]), upright)
    slanted = rotated(50, 50, 60, 20, 30.0)
    first = order_points(slanted)
    for perm in itertools.permutations(range(4)):
        np.testing.assert_array_equal(order_points(slanted[list(perm)]), first)
    assert polygons.signed_area(first) > 0  # clockwise on screen (counter-clockwise with y up)
    leftmost = slanted[np.argsort(slanted[:, 0])[:2]]
    np.testing.assert_array_equal(first[0], leftmost[np.argmin(leftmost[:, 1])])  # the upper of the two leftmost
    # Half the long side along 30°, (25.98, 15), and half the short side across it, (-5, 8.66): the top-left
    # corner is the centre minus both, then along the long side (top-right), down, and back.
    along, across = 30 * np.array([np.cos(np.pi / 6), 0.5]), 10 * np.array([-0.5, np.cos(np.pi / 6)])
    expected = [50 - along - across, 50 + along - across, 50 + along + across, 50 - along + across]
    np.testing.assert_allclose(first, expected, atol=1e-4)
    # A diamond: the two leftmost are the left corner and (a tie in x broken by y) the top one: start at the top.
    diamond = np.array([[50, 70], [30, 50], [50, 30], [70, 50]], dtype=np.float32)
    np.testing.assert_array_equal(order_points(diamond), [[50, 30], [70, 50], [50, 70], [30, 50]])
    assert order_points(diamond).dtype == np.float32 and order_points(upright.astype(int)).dtype == np.float64
    with pytest.raises(ValueError, match=r"\[4, 2\]"):
        order_points(upright[:3])
