"""The detector's input pipeline: page records -> augmented crops with DBNet targets, or whole pages to score."""

import cv2
import numpy as np
import pytest
import tensorflow as tf

from shadownet.data.record_format import frame, page_example
from shadownet.learn.detection import pipeline

TEXT_A = [(30, 40), (150, 40), (150, 70), (30, 70)]  # dark text on a white page, pixel centres inclusive
TEXT_B = [(160, 110), (280, 110), (280, 140), (160, 140)]
GREY = [(40.5, 130.25), (120, 130), (120, 185), (40, 185)]  # a mid-grey don't-care region


def rectangle(image, corners, value):
    (x0, y0), (x1, y1) = corners[0], corners[2]
    image[round(y0):round(y1) + 1, round(x0):round(x1) + 1] = value


def write(path, pages):
    with open(path, "wb") as handle:
        for image, kind, regions, ignore, source in pages:
            ok, data = cv2.imencode("." + kind.replace("jpeg", "jpg"), image[:, :, ::-1])
            assert ok
            height, width = image.shape[:2]
            handle.write(frame(page_example(data.tobytes(), kind, width, height, source, regions, ignore,
                                            ["t"] * len(regions))))
    return str(path)


def text_page():
    """200 x 300: two dark text lines and a grey don't-care region on white."""
    image = np.full((200, 300, 3), 255, np.uint8)
    rectangle(image, TEXT_A, 20)
    rectangle(image, TEXT_B, 20)
    rectangle(image, GREY, 128)
    return image, "jpeg", [TEXT_A, TEXT_B, GREY], [False, False, True], "a.jpg"


def ramp_page():
    """160 x 240, red = x and green = y of each pixel (lossless): a resize's mapping can be read off it."""
    y, x = np.mgrid[0:160, 0:240]
    image = np.stack([x, y, np.zeros_like(x)], axis=-1).astype(np.uint8)
    return image, "png", [[(10.5, 20.25), (60, 20), (60, 50), (10, 50), (5, 35)]], [False], "ramp.png"


def blank_page():
    return np.full((120, 90, 3), 200, np.uint8), "png", [], [], "blank.png"


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pages")
    return {"text": write(folder / "text.tfrecords", [text_page()]),
            "ramp": write(folder / "ramp.tfrecords", [ramp_page()]),
            "blank": write(folder / "blank.tfrecords", [blank_page()])}


def first(path):
    return next(iter(tf.data.TFRecordDataset(path)))


def test_parse_page_returns_the_stored_regions_and_image(records):
    page = pipeline.parse_page(first(records["ramp"]))
    np.testing.assert_array_equal(page["points"].numpy(),
                                  np.array([[10.5, 20.25], [60, 20], [60, 50], [10, 50], [5, 35]], np.float32))
    assert page["points"].dtype == tf.float32 and page["count"].dtype == tf.int32
    assert page["count"].numpy().tolist() == [5] and page["ignore"].numpy().tolist() == [False]
    np.testing.assert_array_equal(page["image"].numpy(), ramp_page()[0])
    assert page["source"].numpy() == b"ramp.png"
    text = pipeline.parse_page(first(records["text"]))
    assert text["image"].shape == (200, 300, 3) and text["image"].dtype == tf.uint8
    assert text["count"].numpy().tolist() == [4, 4, 4] and text["ignore"].numpy().tolist() == [False, False, True]
    split = pipeline.polygons(text["points"].numpy(), text["count"].numpy())
    assert [p.tolist() for p in split] == [[list(map(float, p)) for p in r] for r in (TEXT_A, TEXT_B, GREY)]


@pytest.mark.parametrize("max_side, resized, padded", [(None, (427, 640), (448, 640)), (120, (80, 120), (96, 128))])
def test_an_evaluation_page_is_resized_exactly_by_its_scale_and_padded(records, max_side, resized, padded):
    (inputs, page), = list(pipeline.page_dataset([records["ramp"]], batch_size=1, training=False,
                                                 max_side=max_side))
    image = inputs["image"].numpy()[0]
    assert image.shape == (*padded, 3)
    scale = page["scale"].numpy()[0]
    np.testing.assert_allclose(scale, 240 / max(resized), rtol=1e-6)  # 0.375 or 2.0
    assert page["image_size"].numpy()[0].tolist() == [240, 160]  # (width, height), PostProcess' image_size
    np.testing.assert_array_equal(page["points"].numpy()[0], pipeline.parse_page(first(records["ramp"]))["points"])
    assert page["count"].numpy()[0].tolist() == [5] and page["source"].numpy()[0] == b"ramp.png"
    pixels = (image + 1.0) * 127.5  # back to 0..255: red = stored x, green = stored y
    # A stored point (x, y) lands on the resized pixel (x / scale, y / scale).
    for x, y in [(120, 72), (30, 120), (198, 12)]:  # whole pixels at either scale
        u, v = int(x / scale[0]), int(y / scale[1])
        np.testing.assert_allclose(pixels[v, u, :2], [x, y], atol=0.02)
    # The whole interior: the pixel (u, v) of the resized page shows the stored point (u * scale, v * scale).
    v, u = np.mgrid[4:resized[0] - 4, 4:resized[1] - 4]
    np.testing.assert_allclose(pixels[4:resized[0] - 4, 4:resized[1] - 4, 0], u * scale[0], atol=0.02)
    np.testing.assert_allclose(pixels[4:resized[0] - 4, 4:resized[1] - 4, 1], v * scale[1], atol=0.02)
    assert np.all(image[resized[0]:] == -1.0) and np.all(image[:, resized[1]:] == -1.0)  # black padding
    with pytest.raises(ValueError, match="batch_size must be 1"):
        pipeline.page_dataset([records["ramp"]], batch_size=2, training=False)


def batches(files, seed, count=2, size=256):
    ds = pipeline.page_dataset(files, batch_size=2, size=size, training=True, seed=seed)
    # The iterator ends here: a live one at exit can hang the interpreter (numpy_function; see the module).
    return [tf.nest.map_structure(lambda t: t.numpy(), b) for b in ds.take(count)]


def test_training_batches_have_static_shapes_and_targets_where_the_text_went(records):
    files = [records["text"]]
    spec_in, spec_out = pipeline.page_dataset(files, batch_size=2, size=256, training=True).element_spec
    assert spec_in["image"].shape == (2, 256, 256, 3) and spec_in["image"].dtype == tf.float32
    assert {k: (s.shape, s.dtype) for k, s in spec_out.items()} == {
        k: ((2, 256, 256), tf.float32) for k in ("gt", "mask", "thresh", "thresh_mask")}
    found = batches(files, seed=0, count=3)
    positives = grey_pixels = 0
    for inputs, maps in found:
        image = inputs["image"]
        assert image.shape == (2, 256, 256, 3) and image.min() >= -1.0 and image.max() <= 1.0
        assert set(np.unique(maps["gt"])) <= {0.0, 1.0} and set(np.unique(maps["mask"])) <= {0.0, 1.0}
        assert maps["thresh"].min() >= 0.3 - 1e-6 and maps["thresh"].max() <= 0.7 + 1e-6
        for i in range(2):
            gt = maps["gt"][i] > 0
            positives += gt.sum()
            if gt.any():  # the shrunk text is dark (20 of 255, jittered a little)
                assert image[i][gt].mean() < -0.5
                assert np.all(maps["thresh_mask"][i][gt] == 1)
            # The grey don't-care region, wherever it went: mid-grey pixels away from any edge.
            grey = (np.abs(image[i]).max(axis=-1) < 0.35).astype(np.uint8)
            inner = cv2.erode(grey, np.ones((7, 7), np.uint8)) > 0
            grey_pixels += inner.sum()
            assert np.all(maps["mask"][i][inner] == 0) and np.all(maps["gt"][i][inner] == 0)
            assert maps["mask"][i].sum() > 0
    assert positives > 500 and grey_pixels > 50  # the crops found the text and, at least once, the grey region


def test_a_page_without_text_teaches_background_only(records):
    (inputs, maps), = batches([records["blank"]], seed=0, count=1, size=64)
    assert inputs["image"].shape == (2, 64, 64, 3)
    assert maps["gt"].max() == 0 and maps["mask"].min() == 1 and maps["thresh_mask"].max() == 0
    np.testing.assert_allclose(maps["thresh"], 0.3)
    page = pipeline.parse_page(first(records["blank"]))
    assert page["points"].shape == (0, 2) and page["count"].shape == (0,) and page["ignore"].shape == (0,)


def test_training_batches_depend_on_the_seed_alone(records):
    files = [records["text"], records["ramp"]]
    once, again, other = batches(files, seed=3), batches(files, seed=3), batches(files, seed=4)
    for (inputs_a, maps_a), (inputs_b, maps_b) in zip(once, again, strict=True):
        np.testing.assert_array_equal(inputs_a["image"], inputs_b["image"])
        for name in ("gt", "mask", "thresh_mask"):
            np.testing.assert_array_equal(maps_a[name], maps_b[name])
        # cv2.distanceTransform's float results vary in the last bit with the buffers' alignment (db_targets).
        np.testing.assert_allclose(maps_a["thresh"], maps_b["thresh"], rtol=0, atol=1e-6)
    assert not np.array_equal(once[0][0]["image"], other[0][0]["image"])
    assert not np.array_equal(once[0][0]["image"], once[1][0]["image"])  # and batches differ from each other


def test_the_crop_moves_image_and_polygon_alike():
    """A white polygon on a black page: after each random scale, rotation and crop, the moved points
    outline the white pixels (inside white, outside black, the same centre to a tenth of a pixel)."""
    corners = np.array([[60, 50], [220, 80], [200, 150], [40, 120]], np.float32)
    image = np.zeros((200, 300, 3), np.uint8)
    cv2.fillPoly(image, [corners.astype(np.int32)], (255, 255, 255))
    page = {"image": tf.constant(image), "points": tf.constant(corners), "count": tf.constant([4]),
            "ignore": tf.constant([False])}
    whole = 0
    for seed in range(8):
        crop, points = pipeline.random_crop(page, tf.constant([seed, 7], tf.int64), size=128)
        crop, points = crop.numpy()[:, :, 0], points.numpy()
        assert crop.shape == (128, 128)
        drawn = np.zeros((128, 128), np.uint8)
        cv2.fillPoly(drawn, [np.round(points * 16).astype(np.int32)], 1, shift=4)
        inside = cv2.erode(drawn, np.ones((5, 5), np.uint8)) > 0
        outside = cv2.dilate(drawn, np.ones((5, 5), np.uint8)) == 0
        assert inside.sum() > 100  # the crop holds text
        assert np.mean(crop[inside] > 250) > 0.99 and np.mean(crop[outside] < 5) > 0.99
        if points.min() > 3 and points.max() < 124:  # wholly inside: compare the centres
            whole += 1
            ys, xs = np.mgrid[0:128, 0:128]
            white = crop / crop.sum()
            shown = np.array([(xs * white).sum(), (ys * white).sum()])
            moments = cv2.moments(np.round(points * 16).astype(np.int32))
            expected = np.array([moments["m10"], moments["m01"]]) / moments["m00"] / 16
            np.testing.assert_allclose(shown, expected, atol=0.1)
    assert whole >= 2


def test_workers_read_disjoint_shares(records):
    files = [records["text"], records["ramp"]]
    sources = [
        [p["source"].numpy()[0] for _, p in pipeline.page_dataset(files, batch_size=1, training=False, shard=(i, 2))]
        for i in range(2)]
    assert sources == [[b"a.jpg"], [b"ramp.png"]]
    with pytest.raises(ValueError, match="multiple of 32"):
        pipeline.page_dataset(files, batch_size=2, size=100, training=True)
