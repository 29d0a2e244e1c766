"""The training machinery: learning-rate schedule, optimizer, precision policy and ``Trainer``.

``Trainer`` holds the model, optimizer, step counter and checkpoint managers, and the compiled train
and eval steps, all created under a ``tf.distribute`` strategy; ``train.train`` drives it.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import tempfile
import time
from pathlib import Path

import keras
import tensorflow as tf

from ..config import TrainConfig
from ..errors import ShadownetError
from . import distribute, precision
from .precision import set_precision
from .run_dir import BEST_DIR, CHECKPOINTS_DIR

FLOOR = 0.05  # of the peak learning rate, reached at the end of the cosine decay


class Schedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``peak``, then constant or cosine decay to 5% at ``total`` steps.

    ``warmup`` and ``total`` are variables, checkpointed with the run: a time-boxed run sets them
    to the steps that fit in its budget once it has measured its speed (see ``budget``).
    """

    def __init__(self, peak: float, warmup: int, total: int, kind: str):
        self.peak, self.kind = peak, kind
        self.warmup = tf.Variable(max(int(warmup), 0), dtype=tf.int64, trainable=False, name="warmup")
        self.total = tf.Variable(int(total), dtype=tf.int64, trainable=False, name="total")

    def plan(self, warmup: int, total: int) -> None:
        self.warmup.assign(max(int(warmup), 0))
        self.total.assign(int(total))

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warmup, total = tf.cast(self.warmup, tf.float32), tf.cast(self.total, tf.float32)
        warm = tf.minimum(1.0, (step + 1.0) / tf.maximum(warmup, 1.0))
        if self.kind == "constant":
            return self.peak * warm
        progress = tf.clip_by_value((step - warmup) / tf.maximum(total - warmup, 1.0), 0.0, 1.0)
        return self.peak * warm * (FLOOR + (1.0 - FLOOR) * 0.5 * (1.0 + tf.cos(math.pi * progress)))

    def get_config(self):
        return {"peak": self.peak, "warmup": int(self.warmup.numpy()), "total": int(self.total.numpy()),
                "kind": self.kind}


def make_optimizer(config: TrainConfig, replicas: int = 1) -> keras.optimizers.Optimizer:
    """The configured optimizer (its ``Schedule`` as ``.schedule``); it neither clips nor decays the weights
    (the training step does both)."""
    peak = config.learning_rate * (replicas if config.scale_learning_rate else 1)
    schedule = Schedule(peak, config.warmup_steps, config.train_steps, config.lr_schedule)
    if config.optimizer == "adadelta":  # the original's; it wants a learning rate near 1
        optimizer = keras.optimizers.Adadelta(schedule)
    else:  # weight decay, when the regime has some, is the training step's (Trainer.regularize)
        optimizer = keras.optimizers.Adam(schedule)
    if config.mixed_precision == "float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    optimizer.schedule = schedule
    return optimizer


def resolve_precision(config: TrainConfig) -> TrainConfig:
    """``config`` with ``mixed_precision: auto`` replaced by what this machine runs best."""
    if config.mixed_precision != "auto":
        return config
    return dataclasses.replace(config, mixed_precision=precision.choose("auto", precision.detect()))


class Trainer:
    """Holds the model, optimizer, step and the compiled train / eval functions.

    Everything with state is created in ``strategy``'s scope (default: the current strategy), so
    that each replica holds a copy. ``train_step`` takes one element of ``distribute_batches``
    (or, under the default strategy, any batch of the pipeline) and returns the loss of the
    global batch.
    """

    def __init__(self, config: TrainConfig, task, model_dir: Path,
                 strategy: tf.distribute.Strategy | None = None):
        """``task``: what is trained (``tasks.RecognitionTask`` or ``detection.task.DetectionTask``)."""
        config = resolve_precision(config)
        self.config, self.task, self.model_dir = config, task, Path(model_dir)
        self.strategy = strategy or tf.distribute.get_strategy()
        replicas = self.strategy.num_replicas_in_sync
        if config.xla and replicas > 1:
            # XLA compiles a function for one device, and this step reads variables on every replica's.
            raise ShadownetError(f"xla is not supported when training on {replicas} devices; set xla to false")
        set_precision(config.mixed_precision)
        # The input pipeline reads it (a variable of the host, outside the replicas): 0 adds no augmentation.
        self.augment_strength = tf.Variable(0.0, trainable=False, name="augment_strength")
        with self.strategy.scope():
            self.model = task.build(config, synchronized_batch_norm=replicas > 1)
            self.optimizer = make_optimizer(config, replicas)
            self.optimizer.build(self.model.trainable_variables)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            self.schedule = self.optimizer.schedule
            # The regime's (learn/regime.py): set by regularize once the run has planned its epochs.
            self.weight_decay = tf.Variable(0.0, trainable=False, name="weight_decay")
            self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer, step=self.step,
                                                  schedule=tf.train.Checkpoint(warmup=self.schedule.warmup,
                                                                               total=self.schedule.total))
        # Decoupled weight decay (AdamW's) on the kernels; not under Adadelta (see learn/regime.py).
        self.decayed = [v for v in self.model.trainable_variables if len(v.shape) >= 2] \
            if config.optimizer == "adam" else []
        self.dropout = 0.0  # the regime's (task.set_dropout)
        self.decaying = False  # whether the traced step applies weight decay at all (none: no work per step)
        self.workers = distribute.workers(self.strategy)
        self.chief = distribute.is_chief(self.strategy)
        # Every worker saves; only the chief where the run lives, the others into scratch (see save).
        self.write_dir = self.model_dir if self.chief else Path(tempfile.mkdtemp(prefix="shadownet-worker-"))
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.write_dir / CHECKPOINTS_DIR,
                                                  max_to_keep=config.keep_checkpoints)
        self.best_manager = tf.train.CheckpointManager(self.checkpoint, self.write_dir / BEST_DIR, max_to_keep=1)
        self.worker_mean = distribute.worker_mean(self.strategy)
        self.train_step = self._compile_train_step()
        self._batch_spec = None

    def distribute_batches(self, make_batches) -> tf.data.Dataset | tf.distribute.DistributedDataset:
        """``make_batches(batch_size, shard)`` (a ``tf.data.Dataset``) -> what ``train_step`` takes, per step.

        ``shard=(index, count)``: this worker's part of the records, ``(0, 1)`` on one machine. Each
        worker's batch of ``batch_size x its replicas`` is cut into one slice per replica; the
        workers' batches together make the global batch of ``batch_size x replicas``.
        """
        def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
            # A worker's share of the replicas (all of them on one machine).
            replicas = context.num_replicas_in_sync // context.num_input_pipelines
            shard = (context.input_pipeline_id, context.num_input_pipelines)
            return distribute.split_batches(make_batches(self.config.batch_size * replicas, shard), replicas)

        batches = self.strategy.distribute_datasets_from_function(dataset_fn)
        # One trace for every batch shape (widths vary by bucket); XLA still compiles per shape.
        self._batch_spec = batches.element_spec
        self.train_step.get_concrete_function(*self._batch_spec)
        return batches

    def _compile_train_step(self):
        return tf.function(self._train_step, jit_compile=bool(self.config.xla), reduce_retracing=True)

    def regularize(self, plan: dict) -> None:
        """Apply a regime (``regime.decide``'s plan): dropout, weight decay and augmentation strength. A new
        dropout rate, or weight decay turned on or off, retraces the training step (they are part of the traced
        graph); the rates of decay and augmentation are variables."""
        decay = plan["weight_decay"] if self.decayed else 0.0
        self.weight_decay.assign(decay)
        self.augment_strength.assign(plan["augment_strength"])
        if plan["dropout"] != self.dropout or (decay > 0) != self.decaying:
            self.dropout, self.decaying = plan["dropout"], decay > 0
            self.task.set_dropout(self.model, self.dropout)
            self.train_step = self._compile_train_step()
            if self._batch_spec is not None:
                self.train_step.get_concrete_function(*self._batch_spec)

    def _train_step(self, inputs, targets):
        learning_rate = self.schedule(self.optimizer.iterations)  # this step's, before the update counts it
        losses = self.strategy.run(self._replica_step, args=(inputs, targets))
        for variable in self.decayed if self.decaying else ():  # cross-replica context: every copy alike
            variable.assign_sub(variable * (self.weight_decay * learning_rate))
        self.step.assign_add(1)
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    def _replica_step(self, inputs, targets):
        """One replica's share of a step; returns its examples' loss divided by the global batch size."""
        context = tf.distribute.get_replica_context()
        local_size = tf.cast(tf.shape(self.task.examples(inputs))[0], tf.float32)
        global_size = context.all_reduce(tf.distribute.ReduceOp.SUM, local_size)
        with tf.GradientTape() as tape:
            summed = self.task.loss(self.model, inputs, targets, self.config)
            # Summed over the replicas (as the optimizer sums the gradients), this is the global batch's mean.
            loss = tf.math.divide_no_nan(summed, global_size)
            scaled = self.optimizer.scale_loss(loss)  # identity unless float16 loss scaling
        gradients = tape.gradient(scaled, self.model.trainable_variables)
        if self.config.clip_norm:
            gradients = self._clip(gradients, context)
        self.optimizer.apply(gradients, self.model.trainable_variables)
        return loss

    def _clip(self, gradients, context):
        """Scale this replica's gradients so that their sum over the replicas has at most ``clip_norm``.

        Keras optimizers clip each replica's gradients before summing them, which changes the
        result with the number of replicas; the norm here is the global batch's, as on one device.
        """
        total = context.all_reduce(tf.distribute.ReduceOp.SUM, gradients)  # one device: the gradients
        loss_scale = self.optimizer.scale_loss(1.0)  # the gradients are still multiplied by it
        clipped, _ = tf.clip_by_global_norm(gradients, self.config.clip_norm * loss_scale,
                                            use_norm=tf.linalg.global_norm(total))
        return clipped

    def restore(self) -> int:
        """Resume from the newest checkpoint of ``model_dir``, if any; returns the step reached.

        Every worker reads ``model_dir`` (shared, or synced from the same bucket); they must all find
        the same step, or their steps would not match.
        """
        self.restored_from = tf.train.latest_checkpoint(str(self.model_dir / CHECKPOINTS_DIR))
        if self.restored_from:
            self.checkpoint.restore(self.restored_from).expect_partial()
        step = int(self.step.numpy())
        if self.workers > 1:
            mean, mean_square = self.worker_mean([step, step * step]).numpy()
            if mean_square != mean * mean:  # the steps vary among the workers
                raise ShadownetError(
                    f"the workers found checkpoints of different steps in {self.model_dir} (this one: step "
                    f"{step}, the mean: {mean:g}); every worker must see the chief's --model-dir (a shared "
                    "file system or the same s3:// prefix)")
        return step

    def save(self, manager: tf.train.CheckpointManager, step: int) -> None:
        """Checkpoint ``step`` with ``manager`` on every worker; a non-chief's copy is deleted at once."""
        manager.save(checkpoint_number=step)
        if not self.chief:
            shutil.rmtree(self.write_dir, ignore_errors=True)

    def close(self) -> None:
        if not self.chief:
            shutil.rmtree(self.write_dir, ignore_errors=True)

    def evaluate(self, dataset, deadline: float | None = None, clock=time.monotonic):
        """The task's validation metrics over ``dataset`` and a few samples to show (``task.evaluate``), on the
        first device's copy of the weights, outside the replicas; ``(None, [])`` once ``deadline`` passes."""
        return self.task.evaluate(self.model, dataset, deadline, clock)
