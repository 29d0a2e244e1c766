"""``mixed_precision: auto``: the fastest training precision this machine runs well.

* a GPU of compute capability 8.0 or newer (Ampere, Hopper): ``bfloat16``;
* an older GPU: ``float16``, with loss scaling (see ``trainer.make_optimizer``);
* no GPU, a CPU with AMX or AVX512-BF16 (oneDNN runs bf16 convolutions and matrix products natively,
  about 2x fp32 here): ``bfloat16``;
* otherwise ``off`` (float32): bf16 emulated on older CPUs is slower than fp32.

The hardware is described by :class:`Hardware`, read from ``/proc/cpuinfo`` and TensorFlow's device
details by :func:`detect`, so that tests can describe any machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
BF16_GPU_CAPABILITY = (8, 0)


@dataclass(frozen=True)
class Hardware:
    cpu_flags: frozenset[str] = frozenset()
    gpu_capabilities: tuple[tuple[int, int], ...] = ()  # one (major, minor) per visible GPU


def choose(mode: str, hardware: Hardware) -> str:
    """``mode`` as set (off, bfloat16, float16), or for ``auto`` the choice above."""
    if mode != "auto":
        return mode
    if hardware.gpu_capabilities:
        oldest = min(hardware.gpu_capabilities)  # every replica must run the same precision
        return "bfloat16" if oldest >= BF16_GPU_CAPABILITY else "float16"
    if any(flag in hardware.cpu_flags for flag in BF16_CPU_FLAGS):
        return "bfloat16"
    return "off"


def set_precision(mode: str) -> None:
    """Keras' dtype policy is process-wide; set it before any model is built (``mode`` resolved, not ``auto``)."""
    import keras

    keras.mixed_precision.set_global_policy({"off": "float32", "bfloat16": "mixed_bfloat16",
                                             "float16": "mixed_float16"}[mode])


def detect(cpuinfo: Path = Path("/proc/cpuinfo")) -> Hardware:
    """This machine: the CPU's feature flags and the compute capability of each GPU TensorFlow sees."""
    import tensorflow as tf

    flags: set[str] = set()
    try:
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("flags"):
                flags.update(line.partition(":")[2].split())
                break
    except OSError:  # not Linux: no flags, fp32 unless a GPU says otherwise
        pass
    capabilities = []
    for gpu in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        if capability:
            capabilities.append(tuple(int(v) for v in capability))
    return Hardware(frozenset(flags), tuple(capabilities))
