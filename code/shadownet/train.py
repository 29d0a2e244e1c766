"""``shadownet train``: records -> a trained ShadowNet, checkpointed, resumable, time-boxed.

Layout of ``model_dir``::

    config.json             the resolved TrainConfig (and the charset) this run trains with
    checkpoints/ckpt-N.*    model, optimizer and step (tf.train.CheckpointManager, keep N)
    best/ckpt-N.*           the checkpoint with the best validation metric so far
    best.json               that metric, its value and step
    logs/                   TensorBoard scalars and decoded validation images

A rerun with the same ``model_dir`` resumes from the newest checkpoint and stops at exactly
``train_steps``. When ``max_train_seconds`` is spent, it checkpoints and returns normally.

Training runs under a ``tf.distribute`` strategy (see ``distribute``): each step trains on a
global batch of ``batch_size x replicas`` examples, and its loss and gradients are those of that
whole batch, as one device would compute them.

Under several workers each reads its own part of the records; only the chief writes ``model_dir``
(config, checkpoints, best.json, summaries) and calls ``saved``. The others save too (saving takes
part in the collectives) but into a scratch folder deleted after each save, as TensorFlow's
multi-worker guide prescribes, and write no summaries. Whatever is decided between steps (stop on
request, the time budget spent, a better validation metric) is agreed among the workers, so that
they all take the same steps and checkpoint together.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from . import ctc, distribute, model as shadownet_model, pipeline, records
from .charset import Charset
from .config import TrainConfig, save as save_config
from .errors import ShadownetError
from .fileio import write_text_atomic
from .metrics import Prediction, summarize

CONFIG_FILE = "config.json"
BEST_FILE = "best.json"


@dataclass
class TrainResult:
    step: int
    stopped_early: bool  # the time budget ran out before train_steps
    best: dict | None
    preempted: bool = False  # stopped on request (SIGTERM) after checkpointing the step reached


class Schedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``peak``, then constant or cosine decay to 5% at ``total`` steps."""

    def __init__(self, peak: float, warmup: int, total: int, kind: str):
        self.peak, self.warmup, self.total, self.kind = peak, warmup, total, kind

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warm = tf.minimum(1.0, (step + 1.0) / max(self.warmup, 1))
        if self.kind == "constant":
            return self.peak * warm
        progress = tf.clip_by_value((step - self.warmup) / max(self.total - self.warmup, 1), 0.0, 1.0)
        return self.peak * warm * (0.05 + 0.95 * 0.5 * (1.0 + tf.cos(math.pi * progress)))

    def get_config(self):
        return {"peak": self.peak, "warmup": self.warmup, "total": self.total, "kind": self.kind}


def make_optimizer(config: TrainConfig, replicas: int = 1) -> keras.optimizers.Optimizer:
    """The configured optimizer; it does not clip (the training step does, see ``Trainer``)."""
    peak = config.learning_rate * (replicas if config.scale_learning_rate else 1)
    schedule = Schedule(peak, config.warmup_steps, config.train_steps, config.lr_schedule)
    if config.optimizer == "adadelta":  # the original's; it wants a learning rate near 1
        optimizer = keras.optimizers.Adadelta(schedule)
    elif config.weight_decay:
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay)
    else:
        optimizer = keras.optimizers.Adam(schedule)
    if config.mixed_precision == "float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def set_precision(mode: str) -> None:
    """Keras' dtype policy is process-wide; set it before any model is built."""
    keras.mixed_precision.set_global_policy({"off": "float32", "bfloat16": "mixed_bfloat16",
                                             "float16": "mixed_float16"}[mode])


INPUTS_SPEC = {"image": tf.TensorSpec([None, shadownet_model.HEIGHT, None, 3], tf.float32),
               "width": tf.TensorSpec([None], tf.int32)}
EVAL_TARGETS_SPEC = {"label": tf.TensorSpec([None, None], tf.int32),
                     "label_length": tf.TensorSpec([None], tf.int32),
                     "text": tf.TensorSpec([None], tf.string),
                     "source": tf.TensorSpec([None], tf.string)}


class Trainer:
    """Holds the model, optimizer, step and the compiled train / eval functions.

    Everything with state is created in ``strategy``'s scope (default: the current strategy), so
    that each replica holds a copy. ``train_step`` takes one element of ``distribute_batches``
    (or, under the default strategy, any batch of the pipeline) and returns the loss of the
    global batch.
    """

    def __init__(self, config: TrainConfig, charset: Charset, model_dir: Path,
                 strategy: tf.distribute.Strategy | None = None):
        self.config, self.charset, self.model_dir = config, charset, Path(model_dir)
        self.strategy = strategy or tf.distribute.get_strategy()
        replicas = self.strategy.num_replicas_in_sync
        if config.xla and replicas > 1:
            # XLA compiles a function for one device, and this step reads variables on every replica's.
            raise ShadownetError(f"xla is not supported when training on {replicas} devices; set xla to false")
        set_precision(config.mixed_precision)
        with self.strategy.scope():
            self.model = shadownet_model.build(config.model, charset.num_classes,
                                               synchronized_batch_norm=replicas > 1)
            self.optimizer = make_optimizer(config, replicas)
            self.optimizer.build(self.model.trainable_variables)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer, step=self.step)
        self.workers = distribute.workers(self.strategy)
        self.chief = distribute.is_chief(self.strategy)
        # Every worker saves; only the chief where the run lives, the others into scratch (see save).
        self.write_dir = self.model_dir if self.chief else Path(tempfile.mkdtemp(prefix="shadownet-worker-"))
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.write_dir / "checkpoints",
                                                  max_to_keep=config.keep_checkpoints)
        self.best_manager = tf.train.CheckpointManager(self.checkpoint, self.write_dir / "best", max_to_keep=1)
        self.worker_mean = distribute.worker_mean(self.strategy)
        self.train_step = tf.function(self._train_step, jit_compile=bool(config.xla), reduce_retracing=True)
        # Evaluation runs outside the replicas, on the first device's copy of the weights.
        self.eval_step = tf.function(self._eval_step, input_signature=[INPUTS_SPEC, EVAL_TARGETS_SPEC])

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
        self.train_step.get_concrete_function(*batches.element_spec)
        return batches

    def _train_step(self, inputs, targets):
        losses = self.strategy.run(self._replica_step, args=(inputs, targets))
        self.step.assign_add(1)
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    def _replica_step(self, inputs, targets):
        """One replica's share of a step; returns its examples' loss divided by the global batch size."""
        context = tf.distribute.get_replica_context()
        local_size = tf.cast(tf.shape(inputs["width"])[0], tf.float32)
        global_size = context.all_reduce(tf.distribute.ReduceOp.SUM, local_size)
        with tf.GradientTape() as tape:
            logits = self.model(inputs, training=True)
            lengths = shadownet_model.sequence_lengths(inputs["width"])
            losses = ctc.loss(targets["label"], targets["label_length"], logits, lengths, self.charset.blank_index)
            # Summed over the replicas (as the optimizer sums the gradients), this is the global batch's mean.
            loss = tf.math.divide_no_nan(tf.reduce_sum(losses), global_size)
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

    def _eval_step(self, inputs, targets):
        logits = self.model(inputs, training=False)
        lengths = shadownet_model.sequence_lengths(inputs["width"])
        losses = ctc.loss(targets["label"], targets["label_length"], logits, lengths, self.charset.blank_index)
        ids, confidence = ctc.greedy(logits, lengths, self.charset.blank_index)
        return losses, ids.to_tensor(default_value=-1), confidence

    def restore(self) -> int:
        """Resume from the newest checkpoint of ``model_dir``, if any; returns the step reached.

        Every worker reads ``model_dir`` (shared, or synced from the same bucket); they must all find
        the same step, or their steps would not match.
        """
        self.restored_from = tf.train.latest_checkpoint(str(self.model_dir / "checkpoints"))
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

    def evaluate(self, dataset: tf.data.Dataset) -> tuple[dict, list[tuple[str, str, np.ndarray]]]:
        """Loss, word accuracy and CER over ``dataset``; also a few (truth, prediction, image) samples."""
        losses, predictions, shown = [], [], []
        for inputs, targets in dataset:
            batch_losses, ids, confidence = self.eval_step(inputs, targets)
            losses.append(batch_losses.numpy())
            for i, (row, truth) in enumerate(zip(ids.numpy(), targets["text"].numpy())):
                truth = truth.decode("utf-8")
                text = self.charset.decode(c for c in row if c >= 0)
                predictions.append(Prediction("", truth, text, float(confidence[i])))
                if len(shown) < 3:
                    shown.append((truth, text, inputs["image"][i, :, : int(inputs["width"][i])].numpy()))
        all_losses = np.concatenate(losses) if losses else np.zeros(0)
        finite = all_losses[np.isfinite(all_losses)]
        summary = summarize(predictions, worst=0)
        return {
            "loss": float(finite.mean()) if finite.size else float("nan"),
            "word_accuracy": summary["word_accuracy"],
            "char_error_rate": summary["char_error_rate"],
            "samples": summary["num_samples"],
        }, shown


def is_better(metric: str, value: float, best: float | None) -> bool:
    if best is None:
        return True
    return value > best if metric == "word_accuracy" else value < best


def train(config: TrainConfig, tfrecords_dir: Path, model_dir: Path, log=print, progress=None,
          strategy: tf.distribute.Strategy | None = None, saved=None, stop=None,
          log_dir: Path | None = None) -> TrainResult:
    """Train (or resume) until ``train_steps`` or ``max_train_seconds``; see the module docstring.

    ``progress(step)`` is called with the step reached: once at start, then after every step.
    ``saved()`` is called after every checkpoint written (to copy ``model_dir`` elsewhere, say).
    ``stop()`` is asked before every step; when it says so, the step reached is checkpointed and training
    returns with ``preempted`` set (a platform's SIGTERM: the rerun resumes from there).
    ``log_dir``: TensorBoard's folder, ``model_dir/logs`` by default.
    ``strategy`` (default: the current one) must have been created at program start (``distribute.create``).
    Under several workers, each calls ``train`` with its own view of the same paths; see the module docstring.
    """
    started = time.monotonic()
    tfrecords_dir, model_dir = Path(tfrecords_dir), Path(model_dir)
    manifest = records.read_manifest(tfrecords_dir)
    charset = records.charset_of(manifest)
    chief = distribute.is_chief(strategy or tf.distribute.get_strategy())
    model_dir.mkdir(parents=True, exist_ok=True)
    _check_same_run(model_dir, config, charset)
    if chief:
        save_config(config, model_dir / CONFIG_FILE)
        write_text_atomic(model_dir / "charset.json", json.dumps({"characters": "".join(charset.characters)},
                                                                  ensure_ascii=False) + "\n")
    if manifest["counts"]["train"] == 0:
        raise ShadownetError(f"{tfrecords_dir}: the train split is empty")
    keras.utils.set_random_seed(config.seed)

    trainer = Trainer(config, charset, model_dir, strategy)
    try:
        return _train_loop(trainer, config, tfrecords_dir, manifest, started, log, progress,
                           saved if chief else None, stop, log_dir)
    finally:
        trainer.close()


def _train_loop(trainer: Trainer, config: TrainConfig, tfrecords_dir: Path, manifest: dict, started: float,
                log, progress, saved, stop, log_dir: Path | None) -> TrainResult:
    model_dir = trainer.model_dir
    step = trainer.restore()
    if progress is not None:
        progress(step)
    if step:
        log(f"resumed from {trainer.restored_from} at step {step}")
    if step >= config.train_steps:
        log(f"already trained: step {step} of {config.train_steps}")
        return TrainResult(step, False, _read_best(model_dir))
    batches = iter(trainer.distribute_batches(
        lambda size, shard: pipeline.train_dataset(tfrecords_dir, config, size, shard)))
    has_validation = manifest["counts"]["validation"] > 0
    validation = pipeline.eval_dataset(tfrecords_dir, "validation", config,
                                       max_samples=config.eval_max_samples) if has_validation else None
    # Summaries are the chief's; the others' go nowhere (they hold the same values).
    writer = tf.summary.create_file_writer(str(log_dir or model_dir / "logs")) if trainer.chief \
        else tf.summary.create_noop_writer()
    best = _read_best(model_dir)
    window_loss, window_images, window_start = [], 0, time.monotonic()
    stopped_early = preempted = False
    first_step = saved_step = step

    while step < config.train_steps:
        requested = stop is not None and stop()
        # The budget is checked after each step trained (the first one always runs).
        spent = bool(config.max_train_seconds) and step > first_step \
            and time.monotonic() - started >= config.max_train_seconds
        if trainer.workers > 1:  # what one worker saw, all act on
            requested, spent = (bool(v > 0) for v in trainer.worker_mean([requested, spent]).numpy())
        if requested:
            log(f"stop requested at step {step}: checkpointing")
            preempted = True
            break
        if spent:
            log(f"time budget of {config.max_train_seconds:.0f} s spent at step {step}: stopping")
            stopped_early = True
            break
        inputs, targets = next(batches)
        loss = trainer.train_step(inputs, targets)
        step += 1
        if progress is not None:
            progress(step)
        window_loss.append(loss)
        # Every worker's batch has the same size (training batches are full).
        window_images += distribute.local_examples(trainer.strategy, inputs["width"]) * trainer.workers
        if step % config.log_every == 0 or step == config.train_steps:
            mean_loss = float(np.mean([float(v) for v in window_loss]))
            rate = window_images / max(time.monotonic() - window_start, 1e-9)
            lr = float(trainer.optimizer.learning_rate)
            log(f"step={step} loss={mean_loss:.4f} learning_rate={lr:.6f} images_per_sec={rate:.1f}")
            with writer.as_default(step=step):
                tf.summary.scalar("train/loss", mean_loss)
                tf.summary.scalar("train/learning_rate", lr)
                tf.summary.scalar("train/images_per_sec", rate)
            window_loss, window_images, window_start = [], 0, time.monotonic()
        if validation is not None and (step % config.eval_every == 0 or step == config.train_steps):
            metrics, shown = trainer.evaluate(validation)
            log(f"step={step} validation_loss={metrics['loss']:.4f} word_accuracy={metrics['word_accuracy']:.4f}"
                f" char_error_rate={metrics['char_error_rate']:.4f}")
            _summaries(writer, step, metrics, shown)
            value = metrics[config.best_metric]
            better = is_better(config.best_metric, value, best and best["value"])
            if trainer.workers > 1:
                better = bool(trainer.worker_mean([better]).numpy()[0] > 0)
            if better:
                best = {"metric": config.best_metric, "value": value, "step": step, **metrics}
                trainer.save(trainer.best_manager, step)
                if trainer.chief:
                    write_text_atomic(model_dir / BEST_FILE, json.dumps(best, indent=2) + "\n")
                writer.flush()
                if saved:
                    saved()
        if step % config.checkpoint_every == 0:
            trainer.save(trainer.manager, step)
            saved_step = step
            writer.flush()
            if saved:
                saved()
    if saved_step != step:
        trainer.save(trainer.manager, step)
    writer.flush()
    if saved:
        saved()
    return TrainResult(step, stopped_early, best, preempted)


def load_model(model_dir: Path, which: str = "best") -> tuple[keras.Model, TrainConfig, Charset]:
    """The model of a training run in float32, restored from its ``best`` or ``latest`` checkpoint (for inference)."""
    from .config import load as load_config

    model_dir = Path(model_dir)
    if not (model_dir / CONFIG_FILE).exists():
        raise ShadownetError(f"{model_dir}: no {CONFIG_FILE}; is this the --model-dir of a training run?")
    config = load_config(model_dir / CONFIG_FILE)
    charset = Charset(tuple(json.loads((model_dir / "charset.json").read_text(encoding="utf-8"))["characters"]))
    set_precision("off")  # whatever a training run in this process left behind
    model = shadownet_model.build(config.model, charset.num_classes)
    path = tf.train.latest_checkpoint(str(model_dir / ("best" if which == "best" else "checkpoints")))
    if path is None and which == "best":
        path = tf.train.latest_checkpoint(str(model_dir / "checkpoints"))
    if path is None:
        raise ShadownetError(f"{model_dir}: no checkpoint found")
    tf.train.Checkpoint(model=model).restore(path).expect_partial()
    return model, config, charset


def _check_same_run(model_dir: Path, config: TrainConfig, charset: Charset) -> None:
    """Resuming with another model or charset would load mismatched weights: refuse with a clear message."""
    previous = model_dir / "charset.json"
    if previous.exists():
        old = json.loads(previous.read_text(encoding="utf-8"))["characters"]
        if old != "".join(charset.characters):
            raise ShadownetError(f"{model_dir} holds a run with another charset; use a new --model-dir")
    config_path = model_dir / CONFIG_FILE
    if config_path.exists():
        old_model = json.loads(config_path.read_text(encoding="utf-8")).get("model")
        if old_model != config.model:
            raise ShadownetError(f"{model_dir} holds a {old_model} run, not {config.model}; use a new --model-dir")


def _read_best(model_dir: Path) -> dict | None:
    path = model_dir / BEST_FILE
    return json.loads(path.read_text()) if path.exists() else None


def _summaries(writer, step: int, metrics: dict, shown) -> None:
    with writer.as_default(step=step):
        for key in ("loss", "word_accuracy", "char_error_rate"):
            tf.summary.scalar(f"validation/{key}", metrics[key])
        for i, (truth, text, image) in enumerate(shown[:3]):
            picture = ((image + 1.0) * 127.5).clip(0, 255).astype("uint8")[None]
            tf.summary.image(f"validation/{i}", picture, description=f"truth: {truth!r} prediction: {text!r}")

