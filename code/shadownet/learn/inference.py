"""A trained ShadowNet rebuilt as a fast inference function: what ``export`` saves.

Keras layers read their weights from variables on every call. At batch 1 on a CPU most of the time
then goes into work that does not depend on the image: oneDNN reorders every convolution's weights
again on each call, and each LSTM step multiplies its input by the input kernel inside the
sequential loop. ``freeze`` computes the same function from the trained weights without that work:

* batch normalisation is folded into the convolution before it (inference statistics);
* weights are constants of the graph, in the compute precision; oneDNN reorders a constant filter
  once and keeps it;
* each LSTM direction multiplies all its time steps by the input kernel in one product up front,
  and its loop only does the recurrent product and the gates. The two directions are separate
  loops, which TensorFlow runs side by side.

Under ``bfloat16`` the convolutions compute in bfloat16 (AMX on recent Xeons); the LSTMs and the
output layer stay in float32, where the batch-1 matrix-vector products are faster on a CPU.

The result equals the Keras model's logits on every valid time step, up to float rounding (tests pin
it). Padding steps may differ; nothing reads them.
"""

from __future__ import annotations

from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from ..choices import EXPORT_PRECISIONS
from ..errors import ShadownetError
from ..geometry import time_steps
from .model import MaskColumns, SequenceMask

PRECISIONS = {name: tf.as_dtype(name) for name in EXPORT_PRECISIONS}  # compute dtypes, by their names

Step = Callable[[dict], None]  # updates the running state: x, widths, lengths


def freeze(model: keras.Model, precision: str = "float32") -> Callable:
    """``model`` -> ``forward(images, widths) -> logits`` (float32), to call inside a ``tf.function``.

    ``images`` [batch, 32, width, 3] float32 in [-1, 1]; ``widths`` [batch] int32 valid widths.
    """
    if precision not in PRECISIONS:
        raise ShadownetError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    dtype = PRECISIONS[precision]
    steps = _plan([layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)], dtype)

    def forward(images, widths):
        state = {"x": tf.cast(images, dtype), "widths": tf.cast(widths, tf.int32)}
        for step in steps:
            step(state)
        return tf.cast(state["x"], tf.float32)

    return forward


def _plan(layers: list, dtype) -> list[Step]:
    plan: list[Step] = []
    i = 0
    while i < len(layers):
        layer = layers[i]
        if isinstance(layer, keras.layers.Conv2D):
            following = layers[i + 1] if i + 1 < len(layers) else None
            folds = isinstance(following, keras.layers.BatchNormalization)
            plan.append(_conv(layer, following if folds else None, dtype))
            i += 2 if folds else 1
            continue
        plan.append(_step(layer, dtype))
        i += 1
    return plan


def _step(layer, dtype) -> Step:
    if isinstance(layer, MaskColumns):
        return lambda s: s.update(x=_mask_columns(s["x"], s["widths"], layer.downsample))
    if isinstance(layer, keras.layers.ReLU):
        _require(layer, layer.max_value is None and not layer.negative_slope and not layer.threshold, "plain ReLU")
        return lambda s: s.update(x=tf.nn.relu(s["x"]))
    if isinstance(layer, keras.layers.MaxPooling2D):
        _require(layer, layer.data_format == "channels_last", "channels_last")
        pool, strides, padding = layer.pool_size, layer.strides, layer.padding.upper()
        return lambda s: s.update(x=tf.nn.max_pool2d(s["x"], pool, strides, padding))
    if isinstance(layer, keras.layers.Reshape):
        _require(layer, len(layer.target_shape) == 2 and layer.target_shape[0] == -1, "a reshape to (-1, channels)")
        channels = layer.target_shape[1]
        # The recurrent part runs in float32 (see the module's notes).
        return lambda s: s.update(x=tf.reshape(tf.cast(s["x"], tf.float32), [tf.shape(s["x"])[0], -1, channels]))
    if isinstance(layer, SequenceMask):
        return lambda s: s.update(lengths=time_steps(s["widths"]))
    if isinstance(layer, keras.layers.Bidirectional):
        return _bidirectional(layer)
    if isinstance(layer, keras.layers.Dense):
        return _dense(layer)
    if isinstance(layer, keras.layers.BatchNormalization):
        scale, shift = _batch_norm(layer)
        return lambda s: s.update(x=s["x"] * tf.constant(scale, s["x"].dtype) + tf.constant(shift, s["x"].dtype))
    raise ShadownetError(f"cannot export layer {layer.name!r} ({type(layer).__name__}): no inference rule for it")


def _require(layer, ok: bool, what: str) -> None:
    if not ok:
        raise ShadownetError(f"cannot export layer {layer.name!r}: only {what} is supported")


def _mask_columns(x, widths, downsample: int):
    valid = tf.range(tf.shape(x)[2])[None, :] < (widths // downsample)[:, None]
    return x * tf.cast(valid, x.dtype)[:, None, :, None]


def _batch_norm(layer) -> tuple[np.ndarray, np.ndarray]:
    _require(layer, layer.axis in (-1, [-1], 3, [3]), "batch normalisation over channels")
    gamma = layer.gamma.numpy() if layer.scale else 1.0
    beta = layer.beta.numpy() if layer.center else 0.0
    scale = gamma / np.sqrt(layer.moving_variance.numpy() + layer.epsilon)
    return scale.astype(np.float32), (beta - layer.moving_mean.numpy() * scale).astype(np.float32)


def _conv(layer, batch_norm, dtype) -> Step:
    _require(layer, layer.data_format == "channels_last" and layer.groups == 1
             and tuple(layer.dilation_rate) == (1, 1) and layer.activation is keras.activations.linear,
             "a channels_last convolution without dilation, groups or activation")
    kernel = layer.kernel.numpy()
    bias = layer.bias.numpy() if layer.use_bias else np.zeros(kernel.shape[-1], np.float32)
    if batch_norm is not None:
        scale, shift = _batch_norm(batch_norm)
        kernel, bias = kernel * scale, bias * scale + shift
    strides, padding = tuple(layer.strides), layer.padding.upper()

    def step(s):
        x = tf.nn.conv2d(s["x"], tf.constant(kernel, dtype), strides, padding)
        s["x"] = tf.nn.bias_add(x, tf.constant(bias, dtype))

    return step


def _dense(layer) -> Step:
    _require(layer, layer.activation is keras.activations.linear, "a dense layer without activation")
    kernel, bias = layer.kernel.numpy(), layer.bias.numpy()

    def step(s):
        x = s["x"]
        flat = tf.matmul(tf.reshape(x, [-1, kernel.shape[0]]), tf.constant(kernel)) + tf.constant(bias)
        s["x"] = tf.reshape(flat, tf.concat([tf.shape(x)[:-1], [kernel.shape[1]]], 0))

    return step


def _bidirectional(layer) -> Step:
    _require(layer, layer.merge_mode == "concat", "merge_mode='concat'")
    forward, backward = (_lstm_weights(cell) for cell in (layer.forward_layer, layer.backward_layer))

    def step(s):
        x, lengths = s["x"], s["lengths"]
        ahead = _lstm(x, *forward)
        reversed_x = tf.reverse_sequence(x, lengths, seq_axis=1, batch_axis=0)
        behind = tf.reverse_sequence(_lstm(reversed_x, *backward), lengths, seq_axis=1, batch_axis=0)
        s["x"] = tf.concat([ahead, behind], -1)

    return step


def _lstm_weights(layer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cell = layer.cell
    _require(layer, isinstance(layer, keras.layers.LSTM) and layer.return_sequences and cell.use_bias
             and cell.activation is keras.activations.tanh
             and cell.recurrent_activation is keras.activations.sigmoid,
             "LSTMs with bias, tanh and sigmoid returning sequences")
    return cell.kernel.numpy(), cell.recurrent_kernel.numpy(), cell.bias.numpy()


def _lstm(x, kernel: np.ndarray, recurrent: np.ndarray, bias: np.ndarray):
    """One LSTM direction over x [batch, time, features], from a zero state.

    Unlike Keras, no state is held at padding steps: padding only ever follows an image's valid steps
    (the backward direction runs on ``reverse_sequence``d inputs), so what the loop computes there
    reaches no valid output.
    """
    units = recurrent.shape[0]
    batch, steps = tf.shape(x)[0], tf.shape(x)[1]
    projected = tf.matmul(tf.reshape(x, [-1, kernel.shape[0]]), tf.constant(kernel)) + tf.constant(bias)
    projected = tf.transpose(tf.reshape(projected, [batch, steps, 4 * units]), [1, 0, 2])  # time-major

    def body(t, h, c, outputs):
        # Keras' gate order: input, forget, candidate, output.
        gates = projected[t] + tf.matmul(h, tf.constant(recurrent))
        i, f, g, o = tf.split(gates, 4, axis=-1)
        c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
        h = tf.sigmoid(o) * tf.tanh(c)
        return t + 1, h, c, outputs.write(t, h)

    zeros = tf.zeros([batch, units])
    _, _, _, outputs = tf.while_loop(lambda t, *_: t < steps, body,
                                     (tf.constant(0), zeros, zeros, tf.TensorArray(tf.float32, size=steps)))
    return tf.transpose(outputs.stack(), [1, 0, 2])
