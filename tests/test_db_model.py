"""DBNet's network and loss: shapes, hand-worked loss values, gradients, and one page overfitted end to end."""

import math
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from shadownet.architectures import DETECTORS
from shadownet.data.pages import polygons
from shadownet.learn.detection import loss as db
from shadownet.learn.detection.model import STRIDE, binary_map, build
from shadownet.learn.detection.postprocess import PostProcess
from shadownet.learn.detection.targets import db_targets

QUAD = np.array([[20, 18], [107, 18], [107, 45], [20, 45]], dtype=float)  # 88 x 28 px on a 128 x 64 page


@pytest.fixture(scope="module")
def small():
    keras.utils.set_random_seed(0)
    return build("dbnet_small")


def page(height=64, width=128):
    """[1, H, W, 3] in [-1, 1]: a light page with a dark block of vertical strokes inside QUAD, and its targets
    ([1, H, W] each)."""
    image = np.full((height, width, 3), 0.8, np.float32)
    (x0, y0), (x1, y1) = QUAD[0].astype(int), QUAD[2].astype(int)
    strokes = np.where(np.arange(x0, x1 + 1) % 5 < 3, -0.9, -0.3).astype(np.float32)
    image[y0:y1 + 1, x0:x1 + 1] = strokes[None, :, None]
    targets = db_targets([QUAD], [False], height, width)
    return image[None], {key: value[None] for key, value in targets.items()}


def tensors(maps):
    return {key: tf.constant(np.asarray(value, np.float32)) for key, value in maps.items()}


def test_shapes_dtypes_and_names(small):
    # Batch statistics: the untrained moving ones (mean 0, variance 1) saturate the sigmoids.
    out = small(tf.random.uniform([2, 64, 96, 3], -1, 1, seed=1), training=True)
    assert set(out) == {"prob", "thresh"} and STRIDE == 32
    for value in out.values():
        assert value.shape == (2, 64, 96, 1) and value.dtype == tf.float32
        assert 0 < float(tf.reduce_min(value)) and float(tf.reduce_max(value)) < 1
    names = {layer.name for layer in small.layers}
    assert {"stem_conv", "stage4_block1_down_conv", "neck_concat", "prob", "thresh", "thresh_up2"} <= names
    assert small.count_params() == 382_066


def test_the_maps_stay_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        net = build("dbnet_small")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    out = net(tf.zeros([1, 32, 64, 3]), training=True)
    assert net.get_layer("prob_conv").compute_dtype == "bfloat16"
    assert {key: value.dtype for key, value in out.items()} == {"prob": tf.float32, "thresh": tf.float32}


def test_the_full_variant_has_resnet18_size_and_unknown_names_are_refused():
    assert 12_000_000 < build("dbnet").count_params() < 12_500_000  # 12,350,914
    with pytest.raises(ValueError, match="no detector named 'dbnet_huge'.*dbnet, dbnet_small"):
        build("dbnet_huge")
    assert set(DETECTORS) >= {"dbnet", "dbnet_small"}


# One 4 x 4 map: positives at (0, 0) and (0, 1); pixel (3, 3) is masked out (and would be the hardest negative).
PROB = np.array([[0.80, 0.60, 0.10, 0.20],
                 [0.30, 0.40, 0.50, 0.05],
                 [0.15, 0.25, 0.35, 0.45],
                 [0.55, 0.65, 0.02, 0.99]], np.float32)
GT = np.zeros((4, 4), np.float32)
GT[0, :2] = 1
MASK = np.ones((4, 4), np.float32)
MASK[3, 3] = 0
THRESH_MASK = np.zeros((4, 4), np.float32)
THRESH_MASK[:2] = 1
THRESH_TARGET = np.full((4, 4), 0.3, np.float32)
THRESH_TARGET[0] = 0.7
THRESH = np.full((4, 4), 0.9, np.float32)  # 0.9 off the thresh mask
THRESH[0], THRESH[1] = 0.6, 0.5  # off by 0.1 on row 0, 0.2 on row 1: L_t = 0.15


def loss_of(prob=PROB, gt=GT, mask=MASK, thresh=THRESH):
    targets = tensors({"gt": gt[None], "mask": mask[None], "thresh": THRESH_TARGET[None],
                       "thresh_mask": THRESH_MASK[None]})
    total, parts = db.db_loss(targets, tensors({"prob": prob[None, ..., None], "thresh": thresh[None, ..., None]}))
    return float(total), {key: float(value) for key, value in parts.items()}


def test_hard_negative_mining_keeps_three_negatives_per_positive():
    total, parts = loss_of()
    # 13 negatives, 2 positives: the 6 negatives of highest probability count (0.99 is masked out).
    hardest = [0.65, 0.55, 0.50, 0.45, 0.40, 0.35]
    expected = (-math.log(0.8) - math.log(0.6) - sum(math.log(1 - p) for p in hardest)) / 8
    assert parts["prob"] == pytest.approx(expected, abs=1e-5)
    assert parts["thresh"] == pytest.approx(0.15, abs=1e-5)
    b = 1 / (1 + np.exp(-50 * (PROB.astype(np.float64) - THRESH)))
    dice = 1 - 2 * (b[0, 0] + b[0, 1]) / ((b * MASK).sum() + 2)
    assert parts["binary"] == pytest.approx(dice, abs=1e-5)
    assert total == pytest.approx(parts["prob"] + parts["binary"] + 10 * parts["thresh"], abs=1e-5)
    # An easier negative than the six changes nothing; a harder one replaces the easiest of them.
    assert loss_of(prob=np.where(PROB == 0.10, 0.30, PROB))[1]["prob"] == pytest.approx(parts["prob"], abs=1e-6)
    harder = loss_of(prob=np.where(PROB == 0.10, 0.90, PROB))[1]["prob"]
    assert harder == pytest.approx(expected + (math.log(1 - 0.35) - math.log(1 - 0.90)) / 8, abs=1e-5)


def test_masked_pixels_do_not_count():
    _, parts = loss_of()
    _, masked = loss_of(prob=np.where(MASK == 0, 0.01, PROB))  # the masked pixel (3, 3): 0.99 -> 0.01
    assert masked == pytest.approx(parts, abs=1e-7)
    thresh = np.where(THRESH_MASK == 0, 0.1, THRESH)  # the threshold off its mask
    assert loss_of(thresh=thresh)[1]["thresh"] == pytest.approx(parts["thresh"], abs=1e-7)


def test_a_batch_without_text_trains_on_its_100_hardest_negatives():
    rng = np.random.default_rng(0)
    prob = rng.uniform(0.01, 0.9, (2, 8, 8)).astype(np.float32)
    mask = np.ones((2, 8, 8), np.float32)
    mask[1, :2] = 0  # 128 - 16 = 112 negatives
    zeros = np.zeros_like(prob)
    targets = tensors({"gt": zeros, "mask": mask, "thresh": zeros + 0.3, "thresh_mask": zeros})
    _, parts = db.db_loss(targets, tensors({"prob": prob[..., None], "thresh": zeros[..., None] + 0.3}))
    losses = np.sort(-np.log(1 - prob[mask > 0].astype(np.float64)))[::-1]
    assert float(parts["prob"]) == pytest.approx(losses[:100].mean(), abs=1e-5)
    assert float(parts["binary"]) == pytest.approx(1.0) and float(parts["thresh"]) == 0.0
    # Fewer negatives than 100: all of them.
    assert float(db.balanced_bce(prob[:1], zeros[:1], mask[:1])) == pytest.approx(
        -np.log(1 - prob[0].astype(np.float64)).mean(), abs=1e-5)


def test_dice_and_binary_map_by_hand():
    binary = tf.constant([[[1.0, 0.5], [0.0, 0.25]]])
    gt = tf.constant([[[1.0, 1.0], [0.0, 0.0]]])
    assert float(db.dice(binary, gt, tf.ones_like(gt))) == pytest.approx(1 - 2 * 1.5 / 3.75, abs=1e-6)
    assert float(db.dice(binary, gt, tf.constant([[[1.0, 0.0], [1.0, 0.0]]]))) == pytest.approx(1 - 2 / 2, abs=1e-6)
    values = binary_map(tf.constant([0.5, 0.52, 0.3]), tf.constant([0.5, 0.5, 0.5])).numpy()
    np.testing.assert_allclose(values, [0.5, 1 / (1 + math.exp(-1)), 1 / (1 + math.exp(10))], rtol=1e-6)


def test_the_loss_compiles_with_xla_for_any_size():
    targets = tensors({"gt": GT[None], "mask": MASK[None], "thresh": THRESH_TARGET[None],
                       "thresh_mask": THRESH_MASK[None]})
    outputs = tensors({"prob": PROB[None, ..., None], "thresh": THRESH[None, ..., None]})
    maps = tf.TensorSpec([None, None, None], tf.float32)
    compiled = tf.function(lambda t, o: db.db_loss(t, o)[0], jit_compile=True, reduce_retracing=True)
    spec = ({key: maps for key in targets}, {key: tf.TensorSpec([None, None, None, 1]) for key in outputs})
    assert float(compiled.get_concrete_function(*spec)(targets, outputs)) == pytest.approx(loss_of()[0], abs=1e-5)


def test_every_weight_gets_a_gradient(small):
    image, targets = page()
    images = tf.constant(np.concatenate([image, np.full_like(image, 0.8)]))  # a page with text, one without
    batch = tensors({key: np.concatenate([value, np.zeros_like(value) + (key == "mask")]) for key, value in
                     targets.items()})
    with tf.GradientTape() as tape:
        total, _ = db.db_loss(batch, small(images, training=True))
    gradients = tape.gradient(total, small.trainable_weights)
    assert len(gradients) == len(small.trainable_weights) > 50
    for weight, gradient in zip(small.trainable_weights, gradients, strict=True):
        assert gradient is not None, weight.path
        norm = float(tf.norm(gradient))
        assert np.isfinite(norm) and norm > 0, weight.path


def test_one_page_overfits_and_its_box_comes_back():
    keras.utils.set_random_seed(0)
    net = build("dbnet_small")
    optimizer = keras.optimizers.Adam(1e-3)
    image, targets = page()
    image, targets = tf.constant(image), tensors(targets)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            total, _ = db.db_loss(targets, net(image, training=True))
        optimizer.apply(tape.gradient(total, net.trainable_weights), net.trainable_weights)
        return total

    start = time.monotonic()
    first = last = float(step())
    steps = 1
    while last >= 0.2 * first and steps < 150:
        last = float(step())
        steps += 1
    assert last < 0.2 * first, (steps, first, last)
    found = PostProcess().boxes(net(image, training=False)["prob"][0, :, :, 0].numpy())
    assert len(found) == 1
    assert polygons.iou(found[0][0], QUAD) > 0.5
    print(f"overfit: {steps} steps, loss {first:.3f} -> {last:.3f}, IoU {polygons.iou(found[0][0], QUAD):.3f}, "
          f"{time.monotonic() - start:.1f} s")
