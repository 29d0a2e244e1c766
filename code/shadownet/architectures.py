"""The model variants by name: the one list of them (``choices.MODELS`` and ``config`` read its names,
``learn.model.build`` builds the recognisers, ``learn.detection.model.build`` the detectors). Plain data, no
imports: the generation image has no TensorFlow.

Recognisers (``ARCHITECTURES``) are ShadowNet variants. Detectors (``DETECTORS``) are DBNet variants (Liao et al.,
AAAI 2020): a ResNet-like backbone (a stem to 1/4 of the image, then four stages of basic residual blocks giving
features at 1/4, 1/8, 1/16 and 1/32), an FPN neck of ``neck`` channels and DBNet's two-branch head; see
``learn.detection.model`` for the layer plan. A model's name says its task (``task_of``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Architecture:
    filters: tuple[int, ...]  # the seven convolutions
    lstm_units: int


ARCHITECTURES = {
    "shadownet": Architecture(filters=(64, 128, 256, 256, 512, 512, 512), lstm_units=256),
    # A quarter of the compute, for tests and quick CPU runs.
    "shadownet_small": Architecture(filters=(32, 64, 128, 128, 256, 256, 256), lstm_units=128),
}


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


def task_of(model: str) -> str:
    """``detection`` for a detector's name, else ``recognition``."""
    return "detection" if model in DETECTORS else "recognition"
