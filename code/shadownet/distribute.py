"""Which ``tf.distribute`` strategy trains, and how a global batch is shared among its replicas.

Several local GPUs train with ``MirroredStrategy``; one GPU or none with TensorFlow's default
strategy, which runs exactly the single-device code. TensorFlow wants the strategy created at
program start, before any model or dataset: the command line does that, logs
``describe(strategy)`` and hands the strategy to ``train.train``.

A step trains on one global batch of ``batch_size x replicas`` examples, built by the input
pipeline as for a single device and then cut into one contiguous slice per replica
(``split_batches``). So a step sees the same examples, padded to the same width, whatever the
number of replicas, and training on N devices computes what one device would on that batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import tensorflow as tf


def create(devices: Sequence[str] | None = None) -> tf.distribute.Strategy:
    """``MirroredStrategy`` over ``devices`` when there are two or more, else the default strategy.

    ``devices`` defaults to every local GPU; tests pass logical CPU devices (``["/cpu:0", "/cpu:1"]``).
    """
    if devices is None:
        devices = [device.name for device in tf.config.list_logical_devices("GPU")]
    if len(devices) > 1:
        return tf.distribute.MirroredStrategy(list(devices))
    return tf.distribute.get_strategy()


@dataclass(frozen=True)
class Description:
    strategy: str
    workers: int
    replicas: int

    def __str__(self) -> str:
        return f"strategy={self.strategy} workers={self.workers} replicas={self.replicas}"


def describe(strategy: tf.distribute.Strategy) -> Description:
    """The strategy's class name (``DefaultDistributionStrategy`` for the default one), workers and replicas."""
    return Description(type(strategy).__name__.lstrip("_"), _workers(strategy), strategy.num_replicas_in_sync)


def _workers(strategy: tf.distribute.Strategy) -> int:
    # Only multi-worker strategies carry a cluster resolver; the chief trains too.
    resolver = strategy.cluster_resolver
    if resolver is None:
        return 1
    spec = resolver.cluster_spec()
    return max(1, sum(spec.num_tasks(job) for job in ("chief", "worker") if job in spec.jobs))


def split_batches(dataset: tf.data.Dataset, replicas: int) -> tf.data.Dataset:
    """Batches ``(inputs, targets)`` -> ``replicas`` consecutive slices of each, one per replica of a step.

    The slices of a batch differ in size by at most one example. A batch with fewer examples than
    replicas is left out: convolutions fail on an empty slice (oneDNN and cuDNN kernels).
    """
    if replicas == 1:
        return dataset

    def examples(inputs):
        return tf.shape(tf.nest.flatten(inputs)[0])[0]

    def slices(inputs, targets):
        bounds = examples(inputs) * tf.range(replicas + 1) // replicas
        return tf.data.Dataset.range(replicas).map(
            lambda r: tf.nest.map_structure(lambda t: t[bounds[r]: bounds[r + 1]], (inputs, targets)))

    return dataset.filter(lambda inputs, targets: examples(inputs) >= replicas).flat_map(slices)


def local_examples(strategy: tf.distribute.Strategy, value) -> int:
    """Examples in a batch tensor, summed over this worker's replicas when it is split among them."""
    return sum(int(t.shape[0]) for t in strategy.experimental_local_results(value))
