"""What the shared trainer asks of a task, and the recognition task's answers.

The trainer (``trainer.Trainer``, ``train.train``) owns what every task shares: the strategy, optimizer,
learning-rate plan, time budget, checkpoints and resume, the best checkpoint, precision, the workers'
agreement and the log. A task owns what is its own: its model, its input batches, its loss, its evaluation
and the metrics it logs. Two tasks answer the same questions:

* ``RecognitionTask`` (here): text lines, ShadowNet (CRNN) and CTC; metrics ``loss``, ``word_accuracy``,
  ``char_error_rate``.
* ``detection.task.DetectionTask``: pages, DBNet and the DB loss; metrics ``precision``, ``recall``,
  ``hmean`` (ICDAR 2015).

The records' manifest names the task (``task``; records written before it existed are text lines), and
``for_records`` gives the task that trains them: no command asks for it.

What a task provides:

* ``name``, ``metrics`` (logged after each validation, in order), ``best_default`` (the metric that picks the
  best checkpoint unless ``best_metric`` says otherwise), ``higher_is_better`` (the metrics that grow);
* ``resolve(config, explicit)``: the settings as the task trains them (a detector's model and best metric
  where the user named none; ``explicit``: the settings the user gave);
* ``build(config, synchronized_batch_norm)``: its model, with ``config.freeze`` applied;
* ``set_dropout(model, rate)``: the regime's dropout (a task without a place for it ignores it);
* ``train_batches(records_dir, config, batch_size, shard, ready, augment_strength)``: endless training
  batches ``(inputs, targets)`` of full size; ``examples(inputs)``: the tensor whose first dimension counts a
  batch's examples;
* ``loss(model, inputs, targets, config)``: the summed loss of the batch's examples; the trainer divides it by
  the global batch's examples, so that the replicas' shares add up to the global batch's mean;
* ``validation(records_dir, config)``: the validation split's elements, or None when it is empty, and
  ``evaluate(model, dataset, deadline, clock)``: ``(metrics, shown)``, ``(None, [])`` past the deadline;
* ``metric_line(prefix, metrics)``: the line tuners read; ``summaries(writer, step, metrics, shown)``;
* ``reads_enough(metrics)``: whether a waiting regularisation regime may start (``regime``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from ..architectures import ARCHITECTURES, task_of
from ..choices import HPO_METRICS
from ..config import TrainConfig
from ..data.charset import Charset
from ..errors import ShadownetError
from ..geometry import CHANNELS, HEIGHT
from . import ctc, pipeline, regime
from . import model as shadownet_model
from .metrics import Prediction, summarize


class RecognitionTask:
    """Text lines: ShadowNet (CRNN) trained with CTC on ``charset``."""

    name = "recognition"
    metrics = ("loss", "word_accuracy", "char_error_rate")
    best_default = "word_accuracy"
    higher_is_better = frozenset({"word_accuracy"})
    inputs_spec = {"image": tf.TensorSpec([None, HEIGHT, None, CHANNELS], tf.float32),
                   "width": tf.TensorSpec([None], tf.int32)}
    eval_targets_spec = {"label": tf.TensorSpec([None, None], tf.int32),
                         "label_length": tf.TensorSpec([None], tf.int32),
                         "text": tf.TensorSpec([None], tf.string),
                         "source": tf.TensorSpec([None], tf.string)}

    def __init__(self, charset: Charset):
        self.charset = charset
        self._eval_step = None  # (model, its compiled evaluation step)

    def resolve(self, config: TrainConfig, explicit: frozenset[str] = frozenset()) -> TrainConfig:
        """``config`` as this task trains it: as given, when it names a recogniser and its metrics."""
        if task_of(config.model) != self.name:
            raise ShadownetError(f"model {config.model} is a text detector; records of text lines train "
                                 f"{', '.join(ARCHITECTURES)}")
        for key, allowed in (("best_metric", self.metrics), ("hpo_metric", HPO_METRICS[:3])):
            if getattr(config, key) not in allowed:
                raise ShadownetError(f"{key} {getattr(config, key)} is a detector's; a recogniser's are "
                                     f"{', '.join(allowed)}")
        return config

    def build(self, config: TrainConfig, synchronized_batch_norm: bool = False):
        model = shadownet_model.build(config.model, self.charset.num_classes,
                                      synchronized_batch_norm=synchronized_batch_norm)
        shadownet_model.freeze(model, config.freeze)  # before the optimizer sees what trains
        return model

    @staticmethod
    def set_dropout(model, rate: float) -> None:
        shadownet_model.set_dropout(model, rate)

    @staticmethod
    def train_batches(records_dir: Path, config: TrainConfig, batch_size: int, shard, ready=None,
                      augment_strength=None) -> tf.data.Dataset:
        return pipeline.train_dataset(records_dir, config, batch_size, shard, ready, augment_strength)

    @staticmethod
    def examples(inputs):
        return inputs["width"]

    def loss(self, model, inputs, targets, config: TrainConfig):
        logits = model(inputs, training=True)
        lengths = shadownet_model.sequence_lengths(inputs["width"])
        # TensorFlow's CTC kernel, except under XLA, which cannot compile it (see ctc.loss).
        losses = ctc.loss(targets["label"], targets["label_length"], logits, lengths, self.charset.blank_index,
                          dense=bool(config.xla))
        return tf.reduce_sum(losses)

    def validation(self, records_dir: Path, config: TrainConfig, count: int):
        """The validation split (at most ``eval_max_samples`` of its ``count`` lines), or None when empty."""
        if not count:
            return None
        return pipeline.eval_dataset(records_dir, "validation", config, max_samples=config.eval_max_samples)

    def evaluate(self, model, dataset, deadline: float | None = None, clock=time.monotonic):
        """Loss, word accuracy and CER over ``dataset``; also a few (truth, prediction, image) samples.

        ``deadline`` (a ``clock()`` time): give up when it passes between batches, returning ``(None, [])``.
        """
        if self._eval_step is None or self._eval_step[0] is not model:
            step = tf.function(lambda inputs, targets: self._step(model, inputs, targets),
                               input_signature=[self.inputs_spec, self.eval_targets_spec])
            self._eval_step = (model, step)
        eval_step = self._eval_step[1]
        losses, predictions, shown = [], [], []
        for inputs, targets in dataset:
            if deadline is not None and clock() >= deadline:
                return None, []
            batch_losses, ids, confidence = eval_step(inputs, targets)
            losses.append(batch_losses.numpy())
            for i, (row, truth) in enumerate(zip(ids.numpy(), targets["text"].numpy(), strict=True)):
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

    def _step(self, model, inputs, targets):
        logits = model(inputs, training=False)
        lengths = shadownet_model.sequence_lengths(inputs["width"])
        losses = ctc.loss(targets["label"], targets["label_length"], logits, lengths, self.charset.blank_index)
        ids, confidence = ctc.greedy(logits, lengths, self.charset.blank_index)
        return losses, ids.to_tensor(default_value=-1), confidence

    @staticmethod
    def metric_line(prefix: str, metrics: dict) -> str:
        """``PREFIX validation_loss=... word_accuracy=... char_error_rate=...``: what the tuners read from the
        log (SageMaker's MetricDefinitions, Katib's StdOut filter): names of letters, digits and ``_`` only."""
        return (f"{prefix} validation_loss={metrics['loss']:.4f} word_accuracy={metrics['word_accuracy']:.4f}"
                f" char_error_rate={metrics['char_error_rate']:.4f}")

    @staticmethod
    def summaries(writer, step: int, metrics: dict, shown) -> None:
        with writer.as_default(step=step):
            for key in ("loss", "word_accuracy", "char_error_rate"):
                tf.summary.scalar(f"validation/{key}", metrics[key])
            for i, (truth, text, image) in enumerate(shown[:3]):
                picture = ((image + 1.0) * 127.5).clip(0, 255).astype("uint8")[None]
                tf.summary.image(f"validation/{i}", picture, description=f"truth: {truth!r} prediction: {text!r}")

    @staticmethod
    def reads_enough(metrics: dict) -> bool:
        return regime.reads_enough(metrics["char_error_rate"])

    @staticmethod
    def waits_for() -> str:
        return f"on at the first validation with CER <= {regime.START_CER:g}"


def for_records(manifest: dict, charset: Charset | None = None):
    """The task that trains the records of ``manifest`` (its ``task``; "recognition" when it has none)."""
    if manifest.get("task", "recognition") == "detection":
        from .detection.task import DetectionTask

        return DetectionTask()
    from .read_records import charset_of

    return RecognitionTask(charset or charset_of(manifest))
