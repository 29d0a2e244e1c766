"""The model's input geometry: its numbers and the width rule, in one place.

Every image the model reads is ``HEIGHT`` px high, with 3 channels. In ``keep_ratio`` mode its width
follows the source's aspect ratio, ``round(width * HEIGHT / height)`` (half to even), clamped to
``[MIN_WIDTH, max_width]``; in ``fixed`` mode it is ``FIXED_WIDTH``, as the original trained.

The record writer (data/, no TensorFlow), the training pipeline, the export's graph and the server all
apply this rule. It is written once, here, over a small set of operations (``ops``): plain Python
numbers by default, tensors with ``learn.pipeline.TENSOR_OPS``. No imports: the generation image has
no TensorFlow.
"""

from __future__ import annotations

HEIGHT = 32
CHANNELS = 3
FIXED_WIDTH = 100  # input_mode fixed: every image is FIXED_WIDTH x HEIGHT
# Two 2x2 poolings halve the width twice; the (2,1) poolings and the last conv keep it. Every model in
# shadownet must keep this, since records are validated against it: a WIDTH_DOWNSAMPLE px wide column
# of the input is one time step of the output.
WIDTH_DOWNSAMPLE = 4
MIN_WIDTH = 8  # keep_ratio: the narrowest input (two time steps)


class PythonOps:
    """The width rule's operations on Python numbers."""

    @staticmethod
    def round(x) -> int:
        return int(round(x))  # half to even

    @staticmethod
    def at_least_one(x):
        return max(x, 1)

    @staticmethod
    def clip(x, low: int, high: int):
        return min(max(x, low), high)

    @staticmethod
    def fill_like(x, value: int):
        return value


def scaled_width(width, height, ops=PythonOps):
    """The width of a ``width`` x ``height`` image scaled to ``HEIGHT`` px high: ``round(width * HEIGHT / height)``."""
    return ops.round(width * HEIGHT / ops.at_least_one(height))


def fit_width(scaled, mode: str, max_width: int, ops=PythonOps):
    """A width at ``HEIGHT`` px -> the model's input width: ``FIXED_WIDTH`` (fixed), else clamped to
    ``[MIN_WIDTH, max_width]`` (keep_ratio)."""
    if mode == "fixed":
        return ops.fill_like(scaled, FIXED_WIDTH)
    return ops.clip(scaled, MIN_WIDTH, max_width)


def input_width(width, height, mode: str, max_width: int, ops=PythonOps):
    """The width rule: a ``width`` x ``height`` source image -> the width it is given before the model."""
    return fit_width(scaled_width(width, height, ops), mode, max_width, ops)


def time_steps(width):
    """CTC time steps the model produces for an input of this width (a number or a tensor)."""
    return width // WIDTH_DOWNSAMPLE


def describe(mode: str, max_width: int) -> dict:
    """The input geometry as written into a records manifest and an export's metadata."""
    widths = {"width": FIXED_WIDTH} if mode == "fixed" else {"min_width": MIN_WIDTH, "max_width": max_width}
    return {"height": HEIGHT, "channels": CHANNELS, "mode": mode, **widths, "width_downsample": WIDTH_DOWNSAMPLE}
