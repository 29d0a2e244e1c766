"""tf.data input of the DBNet detector: page records -> augmented crops and their targets, or whole pages to score.

Training (``page_dataset(..., training=True)``) yields ``(inputs, targets)`` batches of fixed shape:
``inputs["image"]`` float32 [B, size, size, 3] in [-1, 1]; ``targets`` ``gt``, ``mask``, ``thresh``,
``thresh_mask``, float32 [B, size, size] (``targets.db_targets``, the maps ``loss.db_loss`` reads).
Evaluation (``training=False``) yields one page at a time (pages differ in size, so the batch is 1):
``inputs["image"]`` float32 [1, H', W', 3], the page with its longer side resized to ``max_side`` and padded
right and bottom to multiples of 32 (``model.STRIDE``) with black (-1); and ``page``, each with a leading 1:
``scale`` float32 [2] (x, y: original px per resized px), ``image_size`` int32 [2] (width, height of the
stored page) -- ``PostProcess.boxes(prob, *scale, image_size=image_size)`` puts the boxes in stored pixels --,
``points`` float32 [N, 2], ``count`` int32 [R], ``ignore`` bool [R] (the regions as stored: ``polygons``
splits them for ``hmean.score_image``) and ``source``.

Pixel convention, that of ``targets``: a point (x, y) is the centre of column x, row y. Every geometric step
is an affine map of those coordinates applied to the points and, through the same matrix, to the image:

* scale: ``ScaleAndTranslate`` with the translation that makes the resize exactly ``x' = f x`` (what
  ``PostProcess`` and the page records assume), antialiased when shrinking;
* rotation about the page's centre, the rest of the scale and the crop: one ``ImageProjectiveTransform``
  (one bilinear resampling, cheap whatever the page's size), black outside the page.

Augmentation (training only), DBNet's recipe without its flips (text direction matters): a scale drawn in
0.5..3 times the one that fits the page into the crop, a rotation within +-10 degrees, a crop of ``size``
chosen among a few candidates (half of them placed around a randomly chosen counted region) for cutting
through the fewest counted regions net of those it holds whole, and small colour jitter. A region that leaves
the crop partly keeps its part (``db_targets`` takes points off the image); one wholly outside adds nothing.

Determinism: every random draw is a stateless op whose seed is the pipeline's ``seed`` and worker index,
folded with the element's index (``Dataset.enumerate`` after the seeded shuffle and the repeat), so an
element's augmentation depends on nothing that parallel execution can reorder; maps run with
``deterministic=True`` and the options say so too. The same seed gives the same batches (images, ``gt``,
``mask``, ``thresh_mask`` bit for bit; ``thresh`` to 1e-7, as ``cv2.distanceTransform`` rounds its last bit
differently with its buffers' alignment); epochs differ.

The targets come from ``db_targets`` (numpy and OpenCV) through ``tf.numpy_function``: the pipeline calls
Python, so let its iterators end (exhausted or deleted) before the interpreter exits; one still running then
can hang or abort the process at exit, a known TensorFlow behaviour with Python functions in tf.data.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from ...data.record_format import IMAGE_ENCODED, IMAGE_SOURCE, REGIONS_COUNT, REGIONS_IGNORE, REGIONS_POINTS
from ..pipeline import normalize
from . import targets
from .model import STRIDE

FEATURES = {
    IMAGE_ENCODED: tf.io.FixedLenFeature([], tf.string),
    IMAGE_SOURCE: tf.io.FixedLenFeature([], tf.string, default_value=""),
    REGIONS_POINTS: tf.io.VarLenFeature(tf.float32),
    REGIONS_COUNT: tf.io.VarLenFeature(tf.int64),
    REGIONS_IGNORE: tf.io.VarLenFeature(tf.int64),
}
MAPS = ("gt", "mask", "thresh", "thresh_mask")
SCALES = (0.5, 3.0)  # relative to the scale that fits the page into the crop
MAX_ANGLE = 10.0  # degrees
CROP_TRIES = 4  # random crops, and as many around a random region
BRIGHTNESS, CONTRAST, SATURATION, HUE = 0.1, (0.8, 1.2), (0.8, 1.2), 0.03  # on [0, 1] pixels
INTERLEAVE = 4


def parse_page(serialized) -> dict:
    """One serialized page Example -> ``image`` uint8 [H, W, 3], ``points`` float32 [N, 2] (all regions' points,
    region after region), ``count`` int32 [R], ``ignore`` bool [R], ``source`` string."""
    parsed = tf.io.parse_single_example(serialized, FEATURES)
    image = tf.io.decode_image(parsed[IMAGE_ENCODED], channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return {
        "image": image,
        "points": tf.reshape(tf.sparse.to_dense(parsed[REGIONS_POINTS]), [-1, 2]),
        "count": tf.cast(tf.sparse.to_dense(parsed[REGIONS_COUNT]), tf.int32),
        "ignore": tf.sparse.to_dense(parsed[REGIONS_IGNORE]) > 0,
        "source": parsed[IMAGE_SOURCE],
    }


def polygons(points, count) -> list[np.ndarray]:
    """numpy: flat ``points`` [N, 2] and ``count`` [R] -> R arrays [count[i], 2] (``db_targets``, ``score_image``)."""
    points, count = np.asarray(points, np.float64).reshape(-1, 2), np.asarray(count, np.int64).reshape(-1)
    return np.split(points, np.cumsum(count)[:-1]) if count.size else []


def _scale(image, factor, size):
    """float32 [1, h, w, 3] -> [1, size[0], size[1], 3], pixel centres mapped exactly by ``x' = factor x``
    (antialiased triangle kernel when shrinking)."""
    return tf.raw_ops.ScaleAndTranslate(
        images=image, size=size, scale=tf.stack([factor, factor]), translation=tf.fill([2], 0.5 * (1.0 - factor)),
        kernel_type="triangle", antialias=True)


def _choose_crop(seed, q, count, ignore, low, high, size: int):
    """The crop's top-left (x, y), integral, in rotated-page coordinates ``q`` [N, 2] (the page spans
    ``low``..``high``): the candidate whose edges cut fewest counted regions net of those wholly inside."""
    keys = tf.random.experimental.stateless_split(seed, 3)
    page_lo, page_hi = tf.minimum(low, high - size), tf.maximum(low, high - size)
    anywhere = page_lo + tf.random.stateless_uniform([CROP_TRIES, 2], keys[0]) * (page_hi - page_lo)
    regions = tf.size(count)
    ids = tf.repeat(tf.range(regions), count)
    box_lo = tf.math.unsorted_segment_min(q, ids, regions)
    box_hi = tf.math.unsorted_segment_max(q, ids, regions)
    counted = tf.cast(tf.where(~ignore)[:, 0], tf.int32)
    pool = tf.concat([counted, [regions]], 0)  # the whole page stands in for a region when none counts
    pick = tf.gather(pool, tf.random.stateless_uniform(
        [CROP_TRIES], keys[1], 0, tf.maximum(tf.size(counted), 1), dtype=tf.int32))
    lo = tf.gather(tf.concat([box_lo, low[None]], 0), pick)
    hi = tf.gather(tf.concat([box_hi, high[None]], 0), pick)
    around_lo, around_hi = tf.minimum(lo, hi - size), tf.maximum(lo, hi - size)
    around = around_lo + tf.random.stateless_uniform([CROP_TRIES, 2], keys[2]) * (around_hi - around_lo)
    candidates = tf.floor(tf.concat([tf.clip_by_value(around, page_lo, page_hi), anywhere], 0))  # ties: around first
    start = candidates[:, None, :]
    inside = tf.reduce_all((box_lo >= start) & (box_hi <= start + size), axis=-1)
    outside = tf.reduce_any((box_hi < start) | (box_lo > start + size), axis=-1)
    cut = ~inside & ~outside
    weight = tf.cast(~ignore, tf.float32)
    score = tf.reduce_sum((tf.cast(cut, tf.float32) - tf.cast(inside, tf.float32)) * weight, axis=1)
    return tf.gather(candidates, tf.argmin(score))


def random_crop(page: dict, seed, size: int = 640):
    """A parsed page (``parse_page``) -> (float32 [size, size, 3] in [0, 255], its points [N, 2] in the crop's
    pixels): random scale, rotation and text-seeking crop (see the module), image and points moved alike.
    ``seed``: int [2], a stateless seed."""
    keys = tf.random.experimental.stateless_split(seed, 3)
    hw = tf.cast(tf.shape(page["image"])[:2], tf.float32)
    total = size / tf.reduce_max(hw) * tf.random.stateless_uniform([], keys[0], *SCALES)
    pre = tf.minimum(total, 1.0)  # shrink first, antialiased; enlarge within the one resampling below
    small = tf.maximum(tf.cast(tf.round(hw * pre), tf.int32), 1)
    image = tf.cast(page["image"], tf.float32)[None]
    image = tf.cond(pre < 1.0, lambda: _scale(image, pre, small), lambda: image)
    rest = total / pre
    angle = tf.random.stateless_uniform([], keys[1], -MAX_ANGLE, MAX_ANGLE) * (math.pi / 180.0)
    cos, sin = tf.cos(angle), tf.sin(angle)
    centre = (tf.cast(small[::-1], tf.float32) - 1.0) / 2.0  # (x, y)

    def rotate(p):  # q = rest R (p - centre); elementwise, not matmul, whose kernels may round differently run to run
        x, y = tf.unstack(p - centre, axis=-1)
        return tf.stack([cos * x - sin * y, sin * x + cos * y], axis=-1) * rest

    extent = tf.cast(small[::-1], tf.float32) - 0.5
    corners = rotate(tf.stack([[-0.5, -0.5], [extent[0], -0.5], extent, [-0.5, extent[1]]]))
    q = rotate(page["points"] * pre)
    offset = _choose_crop(keys[2], q, page["count"], page["ignore"], tf.reduce_min(corners, 0),
                          tf.reduce_max(corners, 0), size)
    # Output pixel u reads the shrunk page at p = Rᵀ (u + offset) / rest + centre.
    a0, a1, b0, b1 = cos / rest, sin / rest, -sin / rest, cos / rest
    a2 = a0 * offset[0] + a1 * offset[1] + centre[0]
    b2 = b0 * offset[0] + b1 * offset[1] + centre[1]
    transform = tf.stack([a0, a1, a2, b0, b1, b2, 0.0, 0.0])[None]
    crop = tf.raw_ops.ImageProjectiveTransformV3(
        images=image, transforms=transform, output_shape=[size, size], fill_value=0.0, interpolation="BILINEAR",
        fill_mode="CONSTANT")[0]
    crop.set_shape([size, size, 3])
    return crop, q - offset


def jitter(image, seed):
    """float32 [H, W, 3] in [0, 1] -> small random brightness, contrast, saturation and hue, clipped to [0, 1]."""
    keys = tf.random.experimental.stateless_split(seed, 4)
    image = tf.image.stateless_random_brightness(image, BRIGHTNESS, keys[0])
    image = tf.image.stateless_random_contrast(image, *CONTRAST, keys[1])
    image = tf.image.stateless_random_saturation(tf.clip_by_value(image, 0.0, 1.0), *SATURATION, keys[2])
    image = tf.image.stateless_random_hue(image, HUE, keys[3])
    return tf.clip_by_value(image, 0.0, 1.0)


def _maps(points, count, ignore, size: int):
    found = targets.db_targets(polygons(points, count), ignore.tolist(), size, size)
    return tuple(found[name] for name in MAPS)


def _train_element(size: int, key):
    def element(index, serialized):
        crop_seed, jitter_seed = tf.unstack(tf.random.experimental.stateless_split(
            tf.random.experimental.stateless_fold_in(key, index), 2))
        page = parse_page(serialized)
        crop, points = random_crop(page, crop_seed, size)
        image = normalize(jitter(crop / 255.0, jitter_seed) * 255.0)
        maps = tf.numpy_function(lambda p, c, i: _maps(p, c, i, size), [points, page["count"], page["ignore"]],
                                 [tf.float32] * len(MAPS), stateful=False)
        for m in maps:
            m.set_shape([size, size])
        return {"image": image}, dict(zip(MAPS, maps, strict=True))

    return element


def _eval_element(max_side: int):
    def element(serialized):
        page = parse_page(serialized)
        hw = tf.shape(page["image"])[:2]
        factor = max_side / tf.cast(tf.reduce_max(hw), tf.float32)
        resized = tf.maximum(tf.cast(tf.round(tf.cast(hw, tf.float32) * factor), tf.int32), 1)
        # Enlarging by x' = f x samples up to 1/2 px beyond the right and bottom edges: give it pixels there.
        image = tf.pad(tf.cast(page["image"], tf.float32), [[0, 2], [0, 2], [0, 0]], "SYMMETRIC")
        image = normalize(tf.clip_by_value(_scale(image[None], factor, resized)[0], 0.0, 255.0))
        padded = -(-resized // STRIDE) * STRIDE
        image = tf.pad(image, [[0, padded[0] - resized[0]], [0, padded[1] - resized[1]], [0, 0]], constant_values=-1.0)
        info = {"scale": tf.fill([2], 1.0 / factor), "image_size": hw[::-1], "points": page["points"],
                "count": page["count"], "ignore": page["ignore"], "source": page["source"]}
        return {"image": image}, info

    return element


def page_dataset(files: list[str], *, batch_size: int, size: int = 640, training: bool, seed: int = 0,
                 shuffle_buffer: int = 64, repeat: bool | None = None, max_side: int | None = None,
                 shard: tuple[int, int] = (0, 1)) -> tf.data.Dataset:
    """Batches of the page records in ``files`` (see the module). Training: shuffled, augmented crops of
    ``size`` (a multiple of 32), whole batches only, endless unless ``repeat=False``. Evaluation: every page
    once (unless ``repeat``), resized to ``max_side`` (default ``size``) on its longer side; ``batch_size``
    must be 1. ``shard=(index, count)``: worker ``index``'s disjoint part, as ``read_records.raw_split`` cuts it
    (every ``count``-th file, or every ``count``-th record with fewer files than workers)."""
    files = [str(f) for f in files]
    if not files:
        raise ValueError("page_dataset needs at least one record file")
    if size % STRIDE:
        raise ValueError(f"the crop size must be a multiple of {STRIDE}, not {size}")
    if not training and batch_size != 1:
        raise ValueError("evaluation pages differ in size: batch_size must be 1")
    index, count = shard
    by_record = count > 1 and len(files) < count
    if count > 1 and not by_record:
        files = files[index::count]
    if len(files) == 1:
        raw = tf.data.TFRecordDataset(files)
    else:
        raw = tf.data.Dataset.from_tensor_slices(files).interleave(
            tf.data.TFRecordDataset, cycle_length=min(INTERLEAVE, len(files)), num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True)
    if by_record:
        raw = raw.shard(count, index)
    if training:
        raw = raw.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if training if repeat is None else repeat:  # by default: training's endless, evaluation's once
        raw = raw.repeat()
    if training:
        key = tf.constant([seed, index], tf.int64)
        pages = raw.enumerate().map(_train_element(size, key), num_parallel_calls=tf.data.AUTOTUNE,
                                    deterministic=True).batch(batch_size, drop_remainder=True)
    else:
        pages = raw.map(_eval_element(max_side or size), num_parallel_calls=tf.data.AUTOTUNE,
                        deterministic=True).batch(1)
    options = tf.data.Options()
    options.deterministic = True
    return pages.prefetch(tf.data.AUTOTUNE).with_options(options)
