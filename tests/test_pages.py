"""Page annotations for text detection: polygon geometry, ICDAR 2015 and PaddleOCR readers, region checks.

Every expected value is worked by hand in the comment beside it; nothing here imports TensorFlow.
"""

import cv2
import numpy as np
import pytest

from shadownet.data.annotations import LineError
from shadownet.data.pages import polygons
from shadownet.data.pages.annotations import (
    CLIPPED,
    Region,
    check_region,
    parse_icdar_gt,
    parse_paddle_det,
    parse_paddle_det_line,
)

SQUARE = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], dtype=float)
# [0,10]² less its top-right quarter [5,10]²: area 100 - 25 = 75
L_SHAPE = np.array([[0, 0], [10, 0], [10, 5], [5, 5], [5, 10], [0, 10]], dtype=float)
BOW_TIE = np.array([[0, 0], [10, 10], [10, 0], [0, 10]], dtype=float)  # two triangles of 25 px², opposite senses


# --- polygons ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("points, expected", [
    (SQUARE, 100.0),
    (SQUARE[::-1], 100.0),  # clockwise or not
    ([[0, 0], [4, 0], [0, 3]], 6.0),  # 4 * 3 / 2
    (L_SHAPE, 75.0),
    (BOW_TIE, 0.0),  # the shoelace cancels lobes that wind in opposite senses
    ([[0.5, 0.5], [2.5, 0.5], [2.5, 1.25], [0.5, 1.25]], 1.5),  # 2 * 0.75
])
def test_area(points, expected):
    assert polygons.area(points) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("points, simple, convex", [
    (SQUARE, True, True),
    (SQUARE[::-1], True, True),
    ([[0, 0], [5, 0], [10, 0], [10, 10], [0, 10]], True, True),  # a straight-through vertex is allowed
    (L_SHAPE, True, False),
    (BOW_TIE, False, False),  # edges 0 and 2 cross at (5, 5)
    ([[0, 0], [10, 0], [10, 0], [10, 10], [0, 10]], False, False),  # a repeated consecutive point
    ([[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]], False, False),  # the last repeats the first
    ([[0, 0], [10, 0], [5, 0], [5, 5]], False, False),  # a spike: edge 1 folds back onto edge 0
    ([[0, 0], [10, 0], [10, 10], [5, 0], [0, 10]], False, False),  # vertex (5, 0) touches edge 0
    ([[0, 0], [5, 0], [10, 0]], False, False),  # all on one line
    # A pentagram turns one way at every vertex but is not simple: convexity needs both.
    ([[0, 10], [5.88, -8.09], [-9.51, 3.09], [9.51, 3.09], [-5.88, -8.09]], False, False),
])
def test_simple_and_convex(points, simple, convex):
    assert polygons.is_simple(points) is simple
    assert polygons.is_convex(points) is convex


def test_clip_to_image():
    points = np.array([[-5, 3], [20, 3], [20, 8.5], [-5, 8.5]], dtype=np.float32)
    clipped, moved = polygons.clip_to_image(points, 10, 12)
    assert moved and clipped.dtype == np.float32
    np.testing.assert_array_equal(clipped, [[0, 3], [9, 3], [9, 8.5], [0, 8.5]])  # x into [0, 10 - 1]
    same, moved = polygons.clip_to_image(SQUARE, 11, 11)  # 10 = width - 1: on the border, inside
    assert not moved
    np.testing.assert_array_equal(same, SQUARE)
    _, moved = polygons.clip_to_image(SQUARE, 10, 11)
    assert moved


@pytest.mark.parametrize("a, b, expected", [
    (SQUARE, SQUARE + 5, 25.0),  # [5,10]²
    (SQUARE, SQUARE[::-1] + 5, 25.0),  # orientations may differ
    (SQUARE, SQUARE + 20, 0.0),
    (SQUARE, [[2, 2], [4, 2], [4, 4], [2, 4]], 4.0),  # nested
    # Non-convex (the slab sweep). L ∩ [2,12]x[2,8] = [2,10]x[2,5] + [2,5]x[5,8] = 24 + 9
    (L_SHAPE, [[2, 2], [12, 2], [12, 8], [2, 8]], 33.0),
    # Both non-convex: L ∩ (L + 2) = [2,10]x[2,5] + [2,5]x[5,7] + [2,5]x[7,10] = 24 + 6 + 9
    (L_SHAPE, L_SHAPE + 2, 39.0),
    (L_SHAPE, L_SHAPE, 75.0),
    (L_SHAPE, L_SHAPE + 0.25, 70.0625),  # 9.75 * 4.75 + 4.75 * 0.25 + 4.75 * 4.75, piece by piece as above
    (BOW_TIE, SQUARE, 50.0),  # a self-intersecting polygon is filled even-odd: both lobes
])
def test_intersection_area(a, b, expected):
    assert polygons.intersection_area(a, b) == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert polygons.intersection_area(b, a) == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_the_non_convex_path_is_exact_not_approximate():
    # The brief allowed an approximation for non-convex polygons; the slab sweep is exact. Bound its error
    # on a known non-convex case away from the grid, and check it against OpenCV's convex-convex result.
    shift = np.array([0.1234, 0.5678])
    overlap = polygons.intersection_area(L_SHAPE + shift, [[2, 2], [12, 2], [12, 8], [2, 8]] + shift)
    assert overlap == pytest.approx(33.0, rel=1e-12)
    rng = np.random.default_rng(7)
    for _ in range(50):
        a, b = (_hull(rng.uniform(0, 100, (7, 2))) for _side in range(2))
        assert polygons._slab_overlap(a, b) == pytest.approx(polygons.intersection_area(a, b), rel=1e-5, abs=1e-4)


def _hull(points):
    return cv2.convexHull(points.astype(np.float32))[:, 0].astype(float)


def test_iou_and_filled_area():
    assert polygons.iou(SQUARE, SQUARE + 5) == pytest.approx(25 / 175)
    assert polygons.iou(L_SHAPE, [[2, 2], [12, 2], [12, 8], [2, 8]]) == pytest.approx(33 / (75 + 60 - 33))
    assert polygons.iou(SQUARE, SQUARE + 20) == 0.0
    assert polygons.filled_area(BOW_TIE) == pytest.approx(50.0)
    assert polygons.iou(BOW_TIE, SQUARE) == pytest.approx(50 / (50 + 100 - 50))
    with pytest.raises(ValueError, match="N >= 3"):
        polygons.area([[0, 0], [1, 1]])


# --- ICDAR 2015 ground truth ------------------------------------------------------------------------------

def test_icdar_gt_reads_bom_crlf_commas_decimals_and_dont_care():
    data = ("\ufeff377,117,463,117,465,130,378,130,Genaxis Theatre\r\n"
            "374,155,409,155,409,170,374,170,###\r\n"
            "\r\n"
            "100.5, 20 ,150.25,20,150,40.75,100,40,Hello, World, again\r\n"
            "1,2,3,2,3,4,1,4\r\n"  # no transcription: the empty one
            "1,2,3,2,3,4,1,4, spaced \n").encode("utf-8")
    regions = parse_icdar_gt(data, "gt_img_1.txt")
    assert [line for line, _ in regions] == [1, 2, 4, 5, 6]
    texts = [(r.text, r.ignore) for _, r in regions]
    assert texts == [("Genaxis Theatre", False), ("###", True), ("Hello, World, again", False), ("", False),
                     (" spaced ", False)]
    first, third = regions[0][1].points, regions[2][1].points
    assert first.dtype == np.float32 and first.shape == (4, 2)
    np.testing.assert_array_equal(first, [[377, 117], [463, 117], [465, 130], [378, 130]])
    np.testing.assert_array_equal(third, [[100.5, 20], [150.25, 20], [150, 40.75], [100, 40]])


def test_icdar_gt_of_blank_lines_only_is_empty():
    assert parse_icdar_gt(b"\xef\xbb\xbf\r\n\n  \n", "gt_img_2.txt") == []


@pytest.mark.parametrize("bad_line, code, message", [
    (b"1,2,3,4,5,6,7", "too_few_coordinates", "gt_img_9.txt:3: expected 8 coordinates x1,y1,...,x4,y4 before the "
                                              "transcription, found 7 field(s): '1,2,3,4,5,6,7'"),
    (b"1,2,3,4,5,6,7,hello,world", "non_numeric_coordinate",
     "gt_img_9.txt:3: coordinate y4 is not a number: 'hello'"),
    (b"1,2,3,x,5,6,7,8,a", "non_numeric_coordinate", "gt_img_9.txt:3: coordinate y2 is not a number: 'x'"),
    (b"1,2,3,nan,5,6,7,8,a", "non_numeric_coordinate", "gt_img_9.txt:3: coordinate y2 is not a number: 'nan'"),
    (b"1,2,3,4,5,6,7,8,caf\xe9", "invalid_utf8", "gt_img_9.txt:3: not valid UTF-8 (byte 19)"),
])
def test_icdar_gt_errors_name_file_and_line(bad_line, code, message):
    data = b"1,1,9,1,9,9,1,9,fine\r\n\r\n" + bad_line + b"\r\n"  # line 2 blank: the bad one is line 3
    with pytest.raises(LineError) as caught:
        parse_icdar_gt(data, "gt_img_9.txt")
    assert caught.value.code == code
    assert str(caught.value) == message


# --- PaddleOCR detection labels ---------------------------------------------------------------------------

def test_paddle_line_with_many_points_dont_care_and_difficult():
    raw = ('/imgs/a b.jpg\t[{"transcription": "Hi, there", "points": [[0, 0], [10, 0], [10, 5], [0, 5]]}, '
           '{"transcription": "###", "points": [[1, 1], [2, 1], [2, 2], [1, 2]]}, '
           '{"transcription": "曲线", "points": [[0, 0], [5, -1], [10, 0.5], [10, 5], [5, 6], [0, 5]]}, '
           '{"transcription": "x", "points": [[0, 0], [3, 0], [3, 3], [0, 3]], "difficult": true}]\r')
    path, regions = parse_paddle_det_line(raw.encode("utf-8"))
    assert path == "imgs/a b.jpg"  # relative to the dataset, as sample.txt paths are
    assert [(r.text, r.ignore) for r in regions] == [("Hi, there", False), ("###", True), ("曲线", False),
                                                     ("x", True)]
    assert regions[2].points.shape == (6, 2) and regions[2].points.dtype == np.float32
    np.testing.assert_array_equal(regions[2].points[2], [10, 0.5])


@pytest.mark.parametrize("raw", [b"", b"  ", b"\r"])
def test_paddle_blank_line(raw):
    assert parse_paddle_det_line(raw) is None


def test_paddle_image_without_regions():
    assert parse_paddle_det_line(b"a.jpg\t[]") == ("a.jpg", [])


QUAD = "[[0, 0], [1, 0], [1, 1], [0, 1]]"


@pytest.mark.parametrize("raw, code, message", [
    ("a.jpg [{}]", "missing_tab", "expected '<image path>\\t<JSON list of regions>', found 'a.jpg [{}]'"),
    ("a.jpg\t[{", "bad_json", "regions of a.jpg are not valid JSON: Expecting property name enclosed in double "
                              "quotes at character 2"),
    ('a.jpg\t{"points": []}', "not_a_list", "regions of a.jpg are a JSON dict, not a list"),
    ("a.jpg\t[1]", "bad_entry", "region 0 of a.jpg is not a JSON object: 1"),
    (f'a.jpg\t[{{"points": {QUAD}}}]', "missing_field", "region 0 of a.jpg has no transcription"),
    ('a.jpg\t[{"transcription": "a"}]', "missing_field", "region 0 of a.jpg has no points"),
    ("a.jpg\t[{}]", "missing_field", "region 0 of a.jpg has no transcription or points"),
    (f'a.jpg\t[{{"transcription": 5, "points": {QUAD}}}]', "missing_field",
     "region 0 of a.jpg: transcription is not a string"),
    ('a.jpg\t[{"transcription": "a", "points": [[0, 0], [1, 0], [1, 1]]}]', "too_few_points",
     "region 0: 3 point(s); a region needs 4 or more"),
    ('a.jpg\t[{"transcription": "a", "points": [["0", 0], [1, 0], [1, 1], [0, 1]]}]', "non_numeric_point",
     'region 0: point 0 is not a pair of numbers [x, y]: ["0", 0]'),
    ('a.jpg\t[{"transcription": "a", "points": [[0, 0], [1, 0, 2], [1, 1], [0, 1]]}]', "non_numeric_point",
     "region 0: point 1 is not a pair of numbers [x, y]: [1, 0, 2]"),
    ('a.jpg\t[{"transcription": "a", "points": [[0, 0], [1, 0], [true, 1], [0, 1]]}]', "non_numeric_point",
     "region 0: point 2 is not a pair of numbers [x, y]: [true, 1]"),
    ('a.jpg\t[{"transcription": "a", "points": "0,0,1,0"}]', "non_numeric_point",
     "region 0: points is not a list of [x, y] pairs"),
])
def test_paddle_line_errors(raw, code, message):
    with pytest.raises(LineError) as caught:
        parse_paddle_det_line(raw.encode("utf-8"))
    assert caught.value.code == code
    assert str(caught.value) == message


def test_paddle_invalid_utf8():
    with pytest.raises(LineError) as caught:
        parse_paddle_det_line(b"caf\xe9.jpg\t[]")
    assert (caught.value.code, str(caught.value)) == ("invalid_utf8", "not valid UTF-8 (byte 3)")


def test_paddle_file_pages_and_errors_name_file_and_line():
    good = f'a.jpg\t[{{"transcription": "a", "points": {QUAD}}}]\r\n\r\nb.jpg\t[]\r\n'
    pages = parse_paddle_det(("\ufeff" + good).encode("utf-8"), "det_gt.txt")
    assert [(p.image, len(p.regions), p.where) for p in pages] == [("a.jpg", 1, "det_gt.txt:1"),
                                                                   ("b.jpg", 0, "det_gt.txt:3")]
    with pytest.raises(LineError) as caught:
        parse_paddle_det((good + 'c.jpg\t[{"transcription": "c"}]\n').encode("utf-8"), "det_gt.txt")
    assert caught.value.code == "missing_field"
    assert str(caught.value) == "det_gt.txt:4: region 0 of c.jpg has no points"


# --- check_region -----------------------------------------------------------------------------------------

def _region(points, text="t", ignore=False):
    return Region(np.asarray(points, dtype=np.float32), text, ignore)


def test_check_region_accepts_a_good_region():
    region = _region([[1, 1], [30, 1], [30, 9], [1, 9]])
    kept, problems = check_region(region, 40, 40, "refuse")
    assert kept is region and problems == []


@pytest.mark.parametrize("points, codes", [
    ([[0, 0], [10, 0], [10, 10]], ["too_few_points"]),
    ([[0, 0], [0.5, 0], [0.5, 0.5], [0, 0.5]], ["zero_area"]),  # 0.25 px²
    ([[0, 0], [10, 10], [10, 0], [0, 20]], ["self_intersecting"]),  # lobes 66.7 and 16.7 px²: shoelace 50
    ([[0, 0], [10, 10], [10, 0], [0, 10]], ["self_intersecting", "zero_area"]),  # symmetric: shoelace 0
])
def test_check_region_problems(points, codes):
    _, problems = check_region(_region(points), 40, 40, "refuse")
    assert [code for code, _ in problems] == codes


def test_check_region_clip_and_refuse():
    region = _region([[-5, 10], [30, 10], [30, 30], [-5, 30]], text="two out", ignore=True)
    kept, problems = check_region(region, 40, 40, "clip")
    assert problems == [(CLIPPED, "2 of 4 point(s) outside the 40x40 image, clamped onto its border")]
    np.testing.assert_array_equal(kept.points, [[0, 10], [30, 10], [30, 30], [0, 30]])
    assert (kept.text, kept.ignore) == ("two out", True)
    np.testing.assert_array_equal(region.points[0], [-5, 10])  # pure: the region given is unchanged

    kept, problems = check_region(region, 40, 40, "refuse")
    assert kept is region
    assert problems == [("points_outside_image", "2 of 4 point(s) outside the 40x40 image")]


def test_check_region_entirely_outside_clips_to_nothing():
    _, problems = check_region(_region([[50, 50], [60, 50], [60, 60], [50, 60]]), 40, 40, "clip")
    assert problems == [(CLIPPED, "4 of 4 point(s) outside the 40x40 image, clamped onto its border"),
                        ("zero_area", "area 0 px² inside the image (less than 1 px²)")]


def test_check_region_refuses_an_unknown_policy():
    with pytest.raises(ValueError, match="policy must be one of clip, refuse"):
        check_region(_region([[1, 1], [3, 1], [3, 3], [1, 3]]), 40, 40, "drop")
