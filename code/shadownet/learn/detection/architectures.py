"""The text detector's variants by name (DBNet, Liao et al., AAAI 2020): the one list of them, which
``detection.model.build`` builds from. Plain data, no imports: the generation image has no TensorFlow.

A variant is a ResNet-like backbone (a stem to 1/4 of the image, then four stages of basic residual blocks
giving features at 1/4, 1/8, 1/16 and 1/32), an FPN neck of ``neck`` channels and DBNet's two-branch head;
see ``detection.model`` for the layer plan.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Detector:
    stem: int  # channels of the stem's strided convolution (1/2 of the image, then max-pooled to 1/4)
    stem_kernel: int  # its kernel size
    widths: tuple[int, int, int, int]  # channels of the four stages: 1/4, 1/8, 1/16, 1/32
    blocks: tuple[int, int, int, int]  # basic residual blocks (two 3x3 convolutions each) per stage
    neck: int  # the FPN's lateral channels; each level is smoothed to neck // 4, and the four concatenated

    def __post_init__(self):
        if self.neck % 4 or min(self.blocks) < 1:
            raise ValueError("neck must be a multiple of 4 and every stage needs a block")


DETECTORS = {
    # ResNet-18's backbone (7x7 stem, 2 blocks a stage, 64..512) and DBNet's neck of 256: 12,350,914 parameters
    # (12,340,802 trainable; the rest batch-norm statistics). About 0.6 s a 640x640 image on
    # 2 CPU cores (graph mode); for GPUs.
    "dbnet": Detector(stem=64, stem_kernel=7, widths=(64, 128, 256, 512), blocks=(2, 2, 2, 2), neck=256),
    # One block a stage, a quarter of the widths: 382,066 parameters (380,498 trainable), about 0.03 s a
    # 640x640 image on 2 CPU cores. For tests and quick CPU runs.
    "dbnet_small": Detector(stem=16, stem_kernel=3, widths=(16, 32, 64, 128), blocks=(1, 1, 1, 1), neck=64),
}
