"""ShadowNet (CRNN) in Keras 3: conv feature extractor -> 2 bidirectional LSTMs -> per-step class logits.

Input: images [batch, 32, width, 3] float32 in [-1, 1] and the valid ``widths`` [batch] int32 of
each image before padding. Output: logits [batch, width // 4, num_classes] float32, with the CTC
blank as the last class. Padding never produces characters: the LSTMs are masked to each image's
``width // 4`` time steps, and the same lengths feed the CTC loss and the decoder.

Layer plan (the original's): conv 64 -> pool 2x2 -> conv 128 -> pool 2x2 -> conv 256 -> conv 256
-> pool (2,1) -> conv 512 + BN -> conv 512 + BN -> pool (2,1) -> conv 512 (2x2, stride (2,1))
-> BiLSTM 256 -> BiLSTM 256 -> dense. About 8.7M parameters for 37 classes.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from ..architectures import ARCHITECTURES
from ..geometry import CHANNELS, HEIGHT, WIDTH_DOWNSAMPLE, time_steps


@keras.saving.register_keras_serializable(package="shadownet")
class SequenceMask(layers.Layer):
    """widths [batch] -> bool mask [batch, time] of the valid time steps (``width // 4``)."""

    def call(self, widths, features):
        steps = ops.shape(features)[1]
        lengths = time_steps(ops.cast(widths, "int32"))
        return ops.less(ops.arange(steps)[None, :], lengths[:, None])

    def compute_output_shape(self, widths_shape, features_shape):
        return (features_shape[0], features_shape[1])


@keras.saving.register_keras_serializable(package="shadownet")
class MaskColumns(layers.Layer):
    """Zero the feature columns that lie in an image's padding.

    A convolution's output in the padding is not zero (bias, ReLU), and the next
    convolution would carry it into the valid columns next to the edge: an image
    would then be read differently depending on what it was batched with.
    """

    def __init__(self, downsample: int, **kwargs):
        super().__init__(**kwargs)
        self.downsample = downsample

    def call(self, features, widths):
        columns = ops.shape(features)[2]
        valid = ops.floor_divide(ops.cast(widths, "int32"), self.downsample)
        keep = ops.less(ops.arange(columns)[None, :], valid[:, None])
        return features * ops.cast(keep, features.dtype)[:, None, :, None]

    def get_config(self):
        return super().get_config() | {"downsample": self.downsample}


def build(name: str, num_classes: int, synchronized_batch_norm: bool = False) -> keras.Model:
    """A ShadowNet variant (``shadownet`` or ``shadownet_small``) with ``num_classes`` outputs (blank included).

    ``synchronized_batch_norm``: batch statistics over the global batch of all replicas, not each
    replica's slice, so that training on several devices computes what one device would.
    """
    arch = ARCHITECTURES[name]
    images = keras.Input(shape=(HEIGHT, None, CHANNELS), name="image")
    widths = keras.Input(shape=(), dtype="int32", name="width")
    f = arch.filters

    def conv(x, filters, index, downsample, batch_norm=False, kernel=3, strides=1):
        x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=not batch_norm,
                          name=f"conv{index}")(x)
        if batch_norm:
            x = layers.BatchNormalization(synchronized=synchronized_batch_norm, name=f"bn{index}")(x)
        x = layers.ReLU(name=f"relu{index}")(x)
        return MaskColumns(downsample, name=f"mask{index}")(x, widths)

    x = MaskColumns(1, name="mask_input")(images, widths)
    x = conv(x, f[0], 1, downsample=1)
    # After each halving of the width, columns that mix the last valid pixels with padding are
    # dropped, as pooling an unpadded image of that width would drop them.
    x = MaskColumns(2, name="mask_pool1")(layers.MaxPooling2D(2, name="pool1")(x), widths)  # 16 x W/2
    x = conv(x, f[1], 2, downsample=2)
    # The last halving: from here on a column is one time step (geometry.WIDTH_DOWNSAMPLE == 2 * 2).
    x = MaskColumns(WIDTH_DOWNSAMPLE, name="mask_pool2")(layers.MaxPooling2D(2, name="pool2")(x), widths)  # 8 x W/4
    x = conv(x, f[2], 3, downsample=WIDTH_DOWNSAMPLE)
    x = conv(x, f[3], 4, downsample=WIDTH_DOWNSAMPLE)
    x = layers.MaxPooling2D((2, 1), name="pool3")(x)  # 4 x W/4
    x = conv(x, f[4], 5, downsample=WIDTH_DOWNSAMPLE, batch_norm=True)
    x = conv(x, f[5], 6, downsample=WIDTH_DOWNSAMPLE, batch_norm=True)
    x = layers.MaxPooling2D((2, 1), name="pool4")(x)  # 2 x W/4
    x = conv(x, f[6], 7, downsample=WIDTH_DOWNSAMPLE, kernel=2, strides=(2, 1))  # 1 x W/4
    features = layers.Reshape((-1, f[6]), name="to_sequence")(x)  # [batch, W/4, channels]
    mask = SequenceMask(name="sequence_mask")(widths, features)
    x = layers.Bidirectional(layers.LSTM(arch.lstm_units, return_sequences=True), name="bilstm1")(
        features, mask=mask)
    x = layers.Bidirectional(layers.LSTM(arch.lstm_units, return_sequences=True), name="bilstm2")(x, mask=mask)
    # Logits stay float32 under mixed precision: the CTC loss and softmax need the range.
    logits = layers.Dense(num_classes, name="logits", dtype="float32")(x)
    return keras.Model({"image": images, "width": widths}, logits, name=name)


def set_dropout(model: keras.Model, rate: float) -> None:
    """Dropout ``rate`` on the inputs of both recurrent layers (each direction's LSTM; one mask per sequence, the
    same at every time step). A Python value read when the training step is traced: retrace after a change.
    Nothing is added to the weights, so checkpoints are unchanged."""
    for layer in model.layers:
        if isinstance(layer, layers.Bidirectional):
            for direction in (layer.forward_layer, layer.backward_layer):
                direction.cell.dropout = float(rate)


def freeze(model: keras.Model, which: str) -> None:
    """``conv``: the convolutions and their batch norms stop training (a frozen batch norm runs in inference
    mode: its statistics stay fixed); ``none``: everything trains."""
    frozen = (layers.Conv2D, layers.BatchNormalization) if which == "conv" else ()
    for layer in model.layers:
        if frozen and isinstance(layer, frozen):
            layer.trainable = False


def sequence_lengths(widths):
    """Time steps of each image: ``width // 4`` (int32; ``geometry.time_steps``)."""
    return time_steps(ops.cast(widths, "int32"))
