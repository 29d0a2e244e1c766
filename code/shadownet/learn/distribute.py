"""Which ``tf.distribute`` strategy trains, and how a global batch is shared among its replicas.

Several machines (a ``platforms.Cluster``: TF_CONFIG, Vertex AI's pools, SageMaker's hosts) train with
``MultiWorkerMirroredStrategy``; several local GPUs with ``MirroredStrategy``; one GPU or none with
TensorFlow's default strategy, which runs exactly the single-device code. TensorFlow wants the strategy
created at program start, before any model or dataset: the command line does that, logs
``describe(strategy)`` and hands the strategy to ``train.train``.

Under several workers nobody waits forever for a worker that died: its broken connections fail the
others' next collective, and TensorFlow's coordination service reports a worker whose heartbeats stop
(a dead or frozen process, within about 10 s); the survivors get one of ``PEER_ERRORS``. Optionally
every collective also fails after ``timeout_seconds`` (TensorFlow keeps one thread per collective
that long, about 34 per step of ShadowNet: off by default).

A step trains on one global batch of ``batch_size x replicas`` examples, built by the input
pipeline as for a single device and then cut into one contiguous slice per replica
(``split_batches``). So a step sees the same examples, padded to the same width, whatever the
number of replicas, and training on N devices computes what one device would on that batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import tensorflow as tf

from ..errors import ShadownetError

# What a collective raises when a peer died, hung or aborted the group.
PEER_ERRORS = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.AbortedError,
               tf.errors.CancelledError)
DEFAULT_TIMEOUT_SECONDS = 0.0  # see the module docstring


class WorkerLost(ShadownetError):
    """Another worker died or stopped answering: this one cannot go on alone.

    Exit code 143, as for a preemption: the platforms retry it (Kubeflow's ExitCode policy retries
    codes >= 128) and the restarted job resumes from the last checkpoint.
    """

    exit_code = 143


def worker_lost(error: tf.errors.OpError, timeout_seconds: float) -> WorkerLost:
    """The one-line message for a collective that failed because of another worker."""
    lines = [line.strip() for line in str(error.message).splitlines() if line.strip()]
    cause = next((line for line in lines if "aborted by" in line or "unhealthy" in line), lines[-1] if lines else "")
    if isinstance(error, tf.errors.DeadlineExceededError):
        cause = f"no answer within worker_timeout_seconds={timeout_seconds:g}"
    return WorkerLost(f"another training worker failed or stopped answering ({type(error).__name__}: "
                      f"{cause[:300]}); stopping. Restart every worker of the job: it resumes from the last "
                      "checkpoint")


def create(devices: Sequence[str] | None = None, cluster=None,
           timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> tf.distribute.Strategy:
    """The strategy for this process (see the module docstring).

    ``cluster``: a ``platforms.Cluster`` of two or more workers -> ``MultiWorkerMirroredStrategy`` over it
    (one replica per local GPU, or the CPU), its collectives bounded by ``timeout_seconds`` (0: not).
    Otherwise ``MirroredStrategy`` over ``devices`` when there are two or more, else the default strategy.
    ``devices`` defaults to every local GPU; tests pass logical CPU devices (``["/cpu:0", "/cpu:1"]``).
    """
    if cluster is not None and cluster.workers > 1:
        resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
            tf.train.ClusterSpec({job: list(hosts) for job, hosts in cluster.jobs.items()}),
            task_type=cluster.task_type, task_id=cluster.task_index, rpc_layer="grpc")
        options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout_seconds or None)
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver, communication_options=options)
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
    """The strategy's public name (``DefaultDistributionStrategy`` for the default one), workers and replicas."""
    name = type(strategy).__name__.lstrip("_")
    name = PUBLIC_NAMES.get(name, name)
    return Description(name, _workers(strategy), strategy.num_replicas_in_sync)


# tf.distribute.MultiWorkerMirroredStrategy is exported under another name than its class's.
PUBLIC_NAMES = {"CollectiveAllReduceStrategy": "MultiWorkerMirroredStrategy"}


def _workers(strategy: tf.distribute.Strategy) -> int:
    # Only multi-worker strategies carry a cluster resolver; the chief trains too.
    resolver = strategy.cluster_resolver
    if resolver is None:
        return 1
    spec = resolver.cluster_spec()
    return max(1, sum(spec.num_tasks(job) for job in ("chief", "worker") if job in spec.jobs))


def workers(strategy: tf.distribute.Strategy) -> int:
    """Processes training together (1 unless the strategy spans several machines)."""
    return _workers(strategy)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run (checkpoints, summaries, exports): always, unless it is a
    multi-worker strategy's worker other than the chief."""
    resolver = strategy.cluster_resolver
    if resolver is None or _workers(strategy) == 1:
        return True
    spec = resolver.cluster_spec()
    if "chief" in spec.jobs:
        return resolver.task_type == "chief"
    return resolver.task_type == "worker" and resolver.task_id == 0


def worker_mean(strategy: tf.distribute.Strategy):
    """A function ``values (float64 [n]) -> their mean over the workers``, the same result on every worker.

    Decisions taken between steps (stop on SIGTERM, the time budget spent, a better validation
    metric) must be the same on every worker, or one of them would wait in a collective the others
    never join: each worker contributes what it saw, all act on the mean. With one worker it returns
    its argument.
    """
    if _workers(strategy) == 1:
        return lambda values: tf.convert_to_tensor(values, tf.float64)

    def replica(values):  # every replica of a worker holds that worker's values: the mean is the workers'
        # identity: a tensor on this replica's device (a constant may live on /job:localhost).
        return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.MEAN, tf.identity(values))

    @tf.function
    def mean(values):
        return strategy.experimental_local_results(strategy.run(replica, args=(values,)))[0]

    return lambda values: mean(tf.convert_to_tensor(values, tf.float64))


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
