"""DBNet (Liao et al., AAAI 2020) in Keras 3: ResNet-like backbone -> FPN neck -> probability and threshold maps.

Input: ``image`` [batch, H, W, 3] float32 in [-1, 1], H and W multiples of ``STRIDE`` (32: the backbone halves
the image five times, and the neck adds each level to the one above it upsampled by 2, which only lines up
when every halving is exact; other sizes fail at ``neck_add*``). Pad a page to the next multiple of 32.

Output: a dict of two float32 maps of the input's size, [batch, H, W, 1], in (0, 1), float32 even under a
mixed-precision policy (the loss and the post-processing need the range):

* ``prob``: the probability that a pixel lies in a text region shrunk by D (``targets.db_targets``' ``gt``);
  ``postprocess.PostProcess`` turns it into boxes.
* ``thresh``: the learnt binarisation threshold, high along the regions' borders (``thresh``). Only training
  uses it, through ``binary_map``; DBNet's approximate binarisation is computed in the loss, not in the
  served graph, which can drop this output.

Layer plan (names in brackets), for a variant of ``architectures.DETECTORS``:

* Backbone: conv k x k stride 2 + BN + ReLU [stem_conv, stem_bn, stem_relu] -> max-pool 3x3 stride 2
  [stem_pool] (1/4) -> four stages of basic residual blocks [stage{s}_block{b}_*]: conv 3x3 + BN + ReLU ->
  conv 3x3 + BN, added to the block's input (through a 1x1 conv + BN [*_down_conv, *_down_bn] where the
  block halves the size or changes the width) -> ReLU. Stage 1 keeps 1/4; stages 2-4 halve: C2..C5 at 1/4,
  1/8, 1/16, 1/32.
* Neck (FPN): 1x1 lateral convs to ``neck`` channels [neck_lateral{2..5}]; top-down, each level plus the
  one above upsampled by 2 (nearest) [neck_up{3..5}, neck_add{2..4}]; a 3x3 conv to ``neck // 4`` channels
  on each [neck_smooth{2..5}]; levels 3-5 upsampled (nearest) to 1/4 [neck_resize{3..5}] and the four
  concatenated [neck_concat]: ``neck`` channels at 1/4. No bias anywhere before a batch norm: it would
  be cancelled (the neck's outputs all go into the head's first conv + BN).
* Head, one branch each for ``prob`` and ``thresh`` [{branch}_*]: conv 3x3 to ``neck // 4`` + BN + ReLU ->
  transposed conv 2x2 stride 2 + BN + ReLU (1/2) -> transposed conv 2x2 stride 2 to 1 channel (full size)
  -> sigmoid [prob, thresh].

Batch norms use momentum 0.9 (PyTorch's default, which DBNet's reference trains with), not Keras' 0.99:
the moving statistics that inference uses settle in tens of steps, not hundreds.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from ...architectures import DETECTORS

STRIDE = 32  # the input's height and width must be multiples of this
BN_MOMENTUM = 0.9


def build(name: str, synchronized_batch_norm: bool = False) -> keras.Model:
    """A DBNet variant of ``architectures.DETECTORS`` (``dbnet`` or ``dbnet_small``); see the module.

    ``synchronized_batch_norm``: batch statistics over the global batch of all replicas, not each replica's
    slice, so that training on several devices computes what one device would. Raises ValueError for an
    unknown name.
    """
    if name not in DETECTORS:
        raise ValueError(f"no detector named {name!r}; the detectors are {', '.join(sorted(DETECTORS))}")
    arch = DETECTORS[name]

    def batch_norm(x, prefix):
        return layers.BatchNormalization(momentum=BN_MOMENTUM, synchronized=synchronized_batch_norm,
                                         name=f"{prefix}_bn")(x)

    def conv_bn(x, filters, kernel, strides, prefix, relu=True):
        x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False,
                          kernel_initializer="he_normal", name=f"{prefix}_conv")(x)
        x = batch_norm(x, prefix)
        return layers.ReLU(name=f"{prefix}_relu")(x) if relu else x

    def block(x, filters, strides, prefix):
        shortcut = x
        if strides != 1 or x.shape[-1] != filters:
            shortcut = conv_bn(x, filters, 1, strides, f"{prefix}_down", relu=False)
        x = conv_bn(x, filters, 3, strides, f"{prefix}_1")
        x = conv_bn(x, filters, 3, 1, f"{prefix}_2", relu=False)
        x = layers.Add(name=f"{prefix}_add")([x, shortcut])
        return layers.ReLU(name=f"{prefix}_relu")(x)

    image = keras.Input(shape=(None, None, 3), name="image")
    x = conv_bn(image, arch.stem, arch.stem_kernel, 2, "stem")  # 1/2
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)  # 1/4
    features = []  # C2..C5
    for stage, (width, blocks) in enumerate(zip(arch.widths, arch.blocks, strict=True), start=1):
        for index in range(1, blocks + 1):
            strides = 2 if stage > 1 and index == 1 else 1
            x = block(x, width, strides, f"stage{stage}_block{index}")
        features.append(x)

    def plain_conv(x, filters, kernel, layer_name):
        return layers.Conv2D(filters, kernel, padding="same", use_bias=False, kernel_initializer="he_normal",
                             name=layer_name)(x)

    lateral = [plain_conv(c, arch.neck, 1, f"neck_lateral{level}") for level, c in enumerate(features, start=2)]
    merged = [lateral[3]]  # top-down from C5: P5, P4, P3, P2
    for level in (4, 3, 2):
        above = layers.UpSampling2D(2, interpolation="nearest", name=f"neck_up{level + 1}")(merged[-1])
        merged.append(layers.Add(name=f"neck_add{level}")([lateral[level - 2], above]))
    pyramid = []
    for level, p in zip((5, 4, 3, 2), merged, strict=True):
        p = plain_conv(p, arch.neck // 4, 3, f"neck_smooth{level}")
        if level > 2:
            p = layers.UpSampling2D(2 ** (level - 2), interpolation="nearest", name=f"neck_resize{level}")(p)
        pyramid.append(p)
    fused = layers.Concatenate(name="neck_concat")(pyramid[::-1])  # P2..P5, neck channels at 1/4

    def branch(x, prefix):
        x = conv_bn(x, arch.neck // 4, 3, 1, prefix)
        x = layers.Conv2DTranspose(arch.neck // 4, 2, strides=2, use_bias=False, kernel_initializer="he_normal",
                                   name=f"{prefix}_up1")(x)  # 1/2
        x = batch_norm(x, f"{prefix}_up1")
        x = layers.ReLU(name=f"{prefix}_up1_relu")(x)
        # The last layers run in float32 under a mixed-precision policy: the sigmoid's tails matter to the loss.
        x = layers.Conv2DTranspose(1, 2, strides=2, kernel_initializer="he_normal", dtype="float32",
                                   name=f"{prefix}_up2")(x)  # full size
        return layers.Activation("sigmoid", dtype="float32", name=prefix)(x)

    outputs = {"prob": branch(fused, "prob"), "thresh": branch(fused, "thresh")}
    return keras.Model(image, outputs, name=name)


def binary_map(prob, thresh, k: float = 50.0):
    """DBNet's approximate binarisation ``1 / (1 + exp(-k (prob - thresh)))``: a steep, differentiable step
    at the learnt threshold, which the loss trains (``loss.db_loss``' dice part). float32, any shape."""
    prob = ops.cast(prob, "float32")
    return ops.sigmoid(k * (prob - ops.cast(thresh, "float32")))
