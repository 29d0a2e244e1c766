"""The model variants by name: the one list of them (``choices.MODELS`` and ``config`` read its names,
``learn.model.build`` builds from it). Plain data, no imports: the generation image has no TensorFlow.
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
