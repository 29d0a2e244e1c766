"""tf.data input for training and evaluation: records -> width-sorted, decoded, augmented batches.

A batch is ``(inputs, targets)``:

* inputs: ``image`` float32 [batch, 32, W, 3] in [-1, 1] (``geometry.HEIGHT``); ``width`` int32 [batch], the valid
  width of each image (what lies beyond it is padding, which the model masks out).
* targets: ``label`` int32 [batch, L] (zero-padded), ``label_length`` int32 [batch];
  evaluation batches also carry ``text`` and ``source`` strings.

Speed comes from working on whole batches: tf.data's cost per element is tens of microseconds
here, more than decoding a 32-px JPEG. So serialized records are grouped first, a window of
them is sorted by width (read from the record, no decoding) and cut into batches of similar
widths, and each batch is parsed, decoded and augmented by one function call. Batches are
padded to one of a few fixed widths, so the training step sees a handful of shapes.

Also the graph's side of ``geometry``: its width rule on tensors (``input_widths``, ``target_widths``),
the resize (``resize``) and the serving input (``preprocess``: encoded images of any size -> a batch), which
the export, its ONNX reader and the server share.
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from .. import geometry
from ..config import TrainConfig
from ..data.record_format import (
    IMAGE_ENCODED,
    IMAGE_SOURCE,
    IMAGE_WIDTH,
    LABEL_IDS,
    LABEL_LENGTH,
    LABEL_TEXT,
)
from ..geometry import HEIGHT, WIDTH_DOWNSAMPLE
from . import ctc, read_records

WINDOW_BATCHES = 16  # batches sorted together by width


def bucket_widths(max_width: int) -> list[int]:
    """Padded batch widths: steps of 16 px up to 128, then of 32, up to ``max_width``."""
    widths = set(range(32, min(128, max_width) + 1, 16)) | set(range(160, max_width + 1, 32)) | {max_width}
    return sorted(w for w in widths if w <= max_width)


class TensorOps:
    """``geometry``'s width rule on tensors: float64 sizes in, int32 widths out."""

    @staticmethod
    def round(x):
        return tf.cast(tf.round(tf.minimum(x, 1e6)), tf.int32)  # half to even, as Python's round

    @staticmethod
    def at_least_one(x):
        return tf.maximum(x, 1.0)

    @staticmethod
    def clip(x, low: int, high: int):
        return tf.clip_by_value(x, low, high)

    @staticmethod
    def fill_like(x, value: int):
        return tf.fill(tf.shape(x), value)


def input_widths(sizes, mode: str, max_width: int):
    """[batch, 2] (height, width) of source images -> the width each is given before the model
    (``geometry.input_width``)."""
    sizes = tf.cast(sizes, tf.float64)
    return geometry.input_width(sizes[:, 1], sizes[:, 0], mode, max_width, TensorOps)


def target_widths(widths, mode: str, max_width: int):
    """Widths of records (already ``HEIGHT`` px high) -> the width each is given before the model
    (``geometry.fit_width``): ``FIXED_WIDTH`` (fixed) or its own, clamped (keep_ratio)."""
    return geometry.fit_width(tf.cast(widths, tf.int32), mode, max_width, TensorOps)


def resize(image, width):
    """uint8 [h, w, 3] -> uint8 [HEIGHT, width, 3] (antialiased bilinear; unchanged when already that size)."""
    size = tf.shape(image)
    return tf.cond(
        tf.logical_and(tf.equal(size[0], HEIGHT), tf.equal(size[1], width)),
        lambda: image,
        lambda: tf.cast(tf.round(tf.image.resize(image, tf.stack([HEIGHT, width]), antialias=True)), tf.uint8),
    )


def decode_resize(encoded, width, canvas_width):
    """One encoded image -> uint8 [HEIGHT, canvas_width, 3], resized to ``width`` and zero-padded."""
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return tf.pad(resize(image, width), [[0, 0], [0, canvas_width - width], [0, 0]])


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def image_size(encoded):
    """[height, width] of one encoded image, read from the header for JPEG and PNG (no decoding)."""

    def png():
        width_height = tf.io.decode_raw(tf.strings.substr(encoded, 16, 8), tf.int32, little_endian=False)
        return tf.reverse(width_height, [0])

    def decoded():
        return tf.shape(tf.io.decode_image(encoded, channels=3, expand_animations=False))[:2]

    return tf.cond(
        tf.io.is_jpeg(encoded),
        lambda: tf.image.extract_jpeg_shape(encoded)[:2],
        lambda: tf.cond(tf.equal(tf.strings.substr(encoded, 0, 8), PNG_SIGNATURE), png, decoded),
    )


def preprocess(image_bytes, mode: str, max_width: int):
    """Encoded images [batch] of any size -> (float32 images [batch, HEIGHT, widest, 3] in [-1, 1], widths
    int32 [batch]): each resized by the width rule (``input_widths``), padded to the widest, normalised."""
    sizes = tf.map_fn(image_size, image_bytes, fn_output_signature=tf.TensorSpec([2], tf.int32))
    widths = input_widths(sizes, mode, max_width)
    canvas = tf.maximum(tf.reduce_max(widths), geometry.MIN_WIDTH)  # an empty batch has no widest
    images = tf.cond(
        tf.size(image_bytes) > 0,
        lambda: tf.map_fn(
            lambda args: decode_resize(args[0], args[1], canvas),
            (image_bytes, widths),
            fn_output_signature=tf.TensorSpec([HEIGHT, None, 3], tf.uint8),
        ),
        lambda: tf.zeros([0, HEIGHT, canvas, 3], tf.uint8),  # map_fn cannot stack nothing
    )
    return normalize(images), widths


def normalize(images):
    """uint8 pixels -> float32 in [-1, 1], as the model reads them."""
    return tf.cast(images, tf.float32) / 127.5 - 1.0


def ctc_min_widths(labels, lengths):
    """Narrowest width whose time steps fit each label: 4 x (characters + adjacent repeats)."""
    return ctc.min_time_steps(labels, lengths) * WIDTH_DOWNSAMPLE


def _stretch(images, widths, min_widths, max_width: int):
    """One random horizontal scale (0.8..1.2) for the whole batch, keeping every label's CTC minimum."""
    scale = tf.random.uniform([], 0.8, 1.2)
    floor = tf.reduce_max(tf.cast(min_widths, tf.float32) / tf.cast(widths, tf.float32))
    ceiling = tf.reduce_min(float(max_width) / tf.cast(widths, tf.float32))
    scale = tf.clip_by_value(scale, tf.minimum(floor, 1.0), tf.maximum(ceiling, 1.0))
    new_widths = tf.clip_by_value(
        tf.cast(tf.round(tf.cast(widths, tf.float32) * scale), tf.int32), min_widths, max_width)
    canvas = tf.cast(tf.round(tf.cast(tf.shape(images)[2], tf.float32) * scale), tf.int32)
    canvas = tf.clip_by_value(canvas, tf.reduce_max(new_widths), max_width)
    return tf.image.resize(images, tf.stack([HEIGHT, canvas])), new_widths


def _photometric(images):
    """Per-image contrast and brightness, and grey sensor noise on half the batches, in [-1, 1].

    Noise is uniform and shared by the three channels: random numbers for every pixel are the
    largest cost of the whole input pipeline, and this draws a sixth as many as normal RGB noise.
    """
    n = tf.shape(images)[0]
    contrast = tf.random.uniform([n, 1, 1, 1], 0.7, 1.3)
    brightness = tf.random.uniform([n, 1, 1, 1], -0.2, 0.2)
    images = images * contrast + brightness
    shape = tf.concat([tf.shape(images)[:3], [1]], 0)
    images = tf.cond(
        tf.random.uniform([]) < 0.5,
        lambda: images + (tf.random.uniform(shape) - 0.5) * tf.random.uniform([n, 1, 1, 1], 0.0, 0.2),
        lambda: images,
    )
    return images


# What the regularization regime adds at strength 1 (learn/regime.py); a strength s scales every amplitude.
SLANT = 0.3  # horizontal shear: x moves by up to this times the distance from the middle row
ROTATION = 0.03  # radians, and never more than ROTATION_DRIFT px of vertical drift at either end of a line
ROTATION_DRIFT = 3.0
VERTICAL_SCALE = 0.12  # the text's height changes by up to this share
VERTICAL_SHIFT = 0.08  # of the height
INVERTED = 0.2  # share of the images turned into light text on dark
BLURRED = 0.4  # share of the batches blurred by a 3 x 3 binomial filter


def _regime_augment(images, widths, strength):
    """A slant, a small rotation, a vertical shift and scale per image, light text on dark for some images and a
    blur for some batches, all scaled by ``strength`` (a variable: the regime's, read per batch; 0: none)."""
    n = tf.shape(images)[0]
    s = tf.cast(strength, tf.float32)
    centre_x, centre_y = tf.cast(widths, tf.float32) / 2.0, HEIGHT / 2.0
    angle = tf.random.uniform([n], -1.0, 1.0) * s * tf.minimum(
        ROTATION, ROTATION_DRIFT / tf.maximum(centre_x, 1.0))
    slant = tf.random.uniform([n], -SLANT, SLANT) * s
    scale = 1.0 + tf.random.uniform([n], -VERTICAL_SCALE, VERTICAL_SCALE) * s
    shift = tf.random.uniform([n], -VERTICAL_SHIFT, VERTICAL_SHIFT) * s * HEIGHT
    # Output pixel (x, y) reads the input at (a0 x + a1 y + a2, b0 x + b1 y + b2), about the text's middle.
    a0, a1 = tf.cos(angle), slant - tf.sin(angle)
    b0, b1 = tf.sin(angle) / scale, tf.cos(angle) / scale
    a2 = centre_x - a0 * centre_x - a1 * centre_y
    b2 = centre_y + shift - b0 * centre_x - b1 * centre_y
    zeros = tf.zeros([n])
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
    images = tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=tf.shape(images)[1:3], fill_value=0.0,
        interpolation="BILINEAR", fill_mode="NEAREST")
    inverted = tf.random.uniform([n, 1, 1, 1]) < INVERTED * s
    images = tf.where(inverted, -images, images)
    binomial = tf.constant([1.0, 2.0, 1.0]) / 4.0
    kernel = tf.tile((binomial[:, None] * binomial[None, :])[:, :, None, None], [1, 1, 3, 1])
    return tf.cond(tf.random.uniform([]) < BLURRED * s,
                   lambda: tf.nn.depthwise_conv2d(images, kernel, [1, 1, 1, 1], "SAME"),
                   lambda: images)


def _pad_to_bucket(images, buckets: list[int]):
    table = tf.constant(buckets)
    current = tf.shape(images)[2]
    target = tf.gather(table, tf.argmax(tf.cast(table >= current, tf.int32)))
    return tf.pad(images, [[0, 0], [0, 0], [0, target - current], [0, 0]])


def make_batch_fn(config: TrainConfig, training: bool, augment_strength=None):
    """serialized [n] -> (inputs, targets) for the model; see the module docstring. ``augment_strength``: the
    regime's (a variable), for training batches; None adds nothing to the basic augmentation."""
    buckets = [geometry.FIXED_WIDTH] if config.input_mode == "fixed" else bucket_widths(config.max_width)

    def batch_fn(serialized):
        parsed = tf.io.parse_example(serialized, read_records.FEATURES)
        labels = tf.cast(tf.sparse.to_dense(parsed[LABEL_IDS]), tf.int32)
        lengths = tf.cast(parsed[LABEL_LENGTH], tf.int32)
        widths = target_widths(parsed[IMAGE_WIDTH], config.input_mode, config.max_width)
        if training:
            # A training max_width below the records' can squeeze a long label under its CTC
            # minimum (infinite loss): leave such samples out.
            keep = ctc_min_widths(labels, lengths) <= widths
            labels, lengths, widths = labels[keep], lengths[keep], widths[keep]
            encoded = parsed[IMAGE_ENCODED][keep]
        else:
            encoded = parsed[IMAGE_ENCODED]
        canvas = tf.reduce_max(widths)
        images = tf.map_fn(
            lambda args: decode_resize(args[0], args[1], canvas),
            (encoded, widths),
            fn_output_signature=tf.TensorSpec([HEIGHT, None, 3], tf.uint8),
        )
        images = normalize(images)
        if training and config.augment:
            if config.input_mode == "keep_ratio":
                images, widths = _stretch(images, widths, ctc_min_widths(labels, lengths), config.max_width)
            if augment_strength is not None:
                images = tf.cond(augment_strength > 0.0, lambda: _regime_augment(images, widths, augment_strength),
                                 lambda: images)
            images = _photometric(images)
        images = _pad_to_bucket(images, buckets)
        inputs = {"image": images, "width": widths}
        targets = {"label": labels, "label_length": lengths}
        if not training:
            targets |= {"text": parsed[LABEL_TEXT], "source": parsed[IMAGE_SOURCE]}
        return inputs, targets

    return batch_fn


def _width_sorted_groups(batch_size: int, drop_remainder: bool):
    """A window of serialized records -> batches of similar width (a RaggedTensor [groups, None])."""
    width_only = {IMAGE_WIDTH: read_records.FEATURES[IMAGE_WIDTH]}

    def split(window):
        widths = tf.io.parse_example(window, width_only)[IMAGE_WIDTH]
        ordered = tf.gather(window, tf.argsort(widths, stable=True))
        n = tf.size(ordered)
        if drop_remainder:
            ordered = ordered[: n - n % batch_size]
            n = tf.size(ordered)
        full, rest = n // batch_size, n % batch_size
        row_lengths = tf.concat([tf.fill([full], batch_size), tf.reshape(rest, [1])[: tf.minimum(rest, 1)]], 0)
        return tf.RaggedTensor.from_row_lengths(ordered, row_lengths)

    return split


def _batches(raw: tf.data.Dataset, config: TrainConfig, batch_size: int, training: bool,
             augment_strength=None) -> tf.data.Dataset:
    groups = raw.batch(batch_size * WINDOW_BATCHES).map(_width_sorted_groups(batch_size, drop_remainder=training))
    groups = groups.unbatch()
    if training:  # sorting put narrow batches first in each window
        groups = groups.shuffle(WINDOW_BATCHES * 2, seed=config.seed)
    return groups.map(make_batch_fn(config, training, augment_strength), num_parallel_calls=tf.data.AUTOTUNE,
                      deterministic=not training).prefetch(tf.data.AUTOTUNE)


def train_dataset(records_dir: Path, config: TrainConfig, batch_size: int | None = None,
                  shard: tuple[int, int] = (0, 1), ready=None, augment_strength=None) -> tf.data.Dataset:
    """Endless shuffled, augmented batches of the train split.

    ``shard=(index, count)``: batches of worker ``index``'s part of the records only, disjoint from the
    other ``count - 1`` workers' (see ``read_records.raw_split``). ``ready(path)``: blocks until a record
    file still being staged is there. ``augment_strength``: the regime's (``Trainer.augment_strength``).
    """
    raw = read_records.raw_split(records_dir, "train", deterministic=False, shard=shard, ready=ready)
    raw = raw.shuffle(config.shuffle_buffer, seed=config.seed, reshuffle_each_iteration=True).repeat()
    return _batches(raw, config, batch_size or config.batch_size, training=True, augment_strength=augment_strength)


def eval_dataset(records_dir: Path, split: str, config: TrainConfig, batch_size: int | None = None,
                 max_samples: int = 0) -> tf.data.Dataset:
    """Every example of ``split`` exactly once (no dropped remainder), in width-sorted batches."""
    raw = read_records.raw_split(records_dir, split, deterministic=True)
    if max_samples:
        raw = raw.take(max_samples)
    return _batches(raw, config, batch_size or config.batch_size, training=False)
