"""The detection task, as the shared trainer asks for it (``learn/tasks.py`` lists the questions): DBNet on page
records, the DB loss, and validation by the ICDAR 2015 protocol.

* Settings (``resolve``): a page record trains a detector. ``model``, ``best_metric`` and ``batch_size`` left at
  the recogniser's defaults become ``dbnet_small``, ``hmean`` (so does ``hpo_metric``) and 8; a recogniser's name
  given on purpose is an error, as is fine-tuning (``init_from``) or ``freeze``, which detectors do not have yet.
* Training batches: ``page_size`` x ``page_size`` crops of augmented pages and their DB target maps
  (``pipeline.page_dataset``). The loss of a batch is DBNet's over the batch (``loss.db_loss``); the trainer's
  convention (summed over examples, divided by the global batch) is met by scaling it by the batch's pages, so
  that replicas of equal slices average to the global batch's mean of their losses.
* Validation: every page scaled to ``page_size`` on its longer side, its probability map turned into boxes by
  ``postprocess.PostProcess`` (in the stored page's pixels) and scored against the page's regions
  (``hmean.score_image``); the split's precision, recall and H-mean come from summed counts
  (``hmean.summarize``), by ``evaluate.score_pages``, which the command shares. Three pages are drawn for
  TensorBoard as ``evaluate.draw`` draws them.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import tensorflow as tf

from ...architectures import DETECTORS
from ...config import TrainConfig
from ...errors import ShadownetError
from ..read_records import split_files
from . import model as db_model
from . import pipeline
from .evaluate import TOTALS, draw, forward_fn, score_pages
from .hmean import summarize
from .loss import db_loss
from .postprocess import PostProcess

DEFAULT_MODEL = "dbnet_small"
DEFAULT_BATCH = 8  # pages a replica, where batch_size is left at the recogniser's default
SHOWN_PAGES = 3


class DetectionTask:
    name = "detection"
    metrics = ("precision", "recall", "hmean")
    best_default = "hmean"
    higher_is_better = frozenset(metrics)

    def __init__(self, post: PostProcess | None = None):
        self.post = post or PostProcess()
        self._forward = None  # (model, its compiled probability map)

    def resolve(self, config: TrainConfig, explicit: frozenset[str] = frozenset()) -> TrainConfig:
        changes = {}
        if config.model not in DETECTORS:
            if "model" in explicit:
                raise ShadownetError(f"model {config.model} reads text lines; page records train a detector: "
                                     f"{', '.join(DETECTORS)}")
            changes["model"] = DEFAULT_MODEL
        if "batch_size" not in explicit and config.batch_size == TrainConfig.batch_size:
            changes["batch_size"] = DEFAULT_BATCH  # 64 crops of 640 px would take minutes a step on a CPU
        if config.best_metric not in self.metrics:
            if "best_metric" in explicit:
                raise ShadownetError(f"best_metric {config.best_metric} is a recogniser's; a detector's are "
                                     f"{', '.join(self.metrics)}")
            changes["best_metric"] = self.best_default
        if config.hpo_metric != "hmean":
            if "hpo_metric" in explicit:
                raise ShadownetError(f"hpo_metric {config.hpo_metric} is a recogniser's; a detector reports hmean")
            changes["hpo_metric"] = "hmean"
        for key, off in (("init_from", ""), ("freeze", "none")):
            if getattr(config, key) != off:
                raise ShadownetError(f"{key}: a detector trains from scratch and whole in this version")
        return dataclasses.replace(config, **changes)

    @staticmethod
    def build(config: TrainConfig, synchronized_batch_norm: bool = False):
        return db_model.build(config.model, synchronized_batch_norm=synchronized_batch_norm)

    @staticmethod
    def set_dropout(model, rate: float) -> None:
        """DBNet has no place for the regime's dropout: it keeps its weight decay alone."""

    @staticmethod
    def train_batches(records_dir: Path, config: TrainConfig, batch_size: int, shard, ready=None,
                      augment_strength=None) -> tf.data.Dataset:
        files = split_files(records_dir, "train")
        for path in files if ready is not None else ():  # records still arriving: all of them first
            ready(path)
        return pipeline.page_dataset(files, batch_size=batch_size, size=config.page_size, training=True,
                                     seed=config.seed, shuffle_buffer=min(config.shuffle_buffer, 256), shard=shard)

    @staticmethod
    def examples(inputs):
        return inputs["image"]

    @staticmethod
    def loss(model, inputs, targets, config: TrainConfig):
        total, _ = db_loss(targets, model(inputs["image"], training=True))
        return total * tf.cast(tf.shape(inputs["image"])[0], tf.float32)

    @staticmethod
    def validation(records_dir: Path, config: TrainConfig, count: int):
        if not count:
            return None
        pages = pipeline.page_dataset(split_files(records_dir, "validation"), batch_size=1, size=config.page_size,
                                      training=False)
        return pages.take(config.eval_max_samples) if config.eval_max_samples else pages

    def evaluate(self, model, dataset, deadline: float | None = None, clock=time.monotonic):
        """Precision, recall and H-mean over ``dataset`` (ICDAR 2015), and a few pages drawn with their boxes."""
        if self._forward is None or self._forward[0] is not model:
            self._forward = (model, forward_fn(model))
        scores, pages = score_pages(self._forward[1], dataset, self.post, deadline, clock, drawn=SHOWN_PAGES)
        if scores is None:
            return None, []
        summary = summarize(scores)
        shown = [(page["source"], draw(page)) for page in pages if page["picture"] is not None]
        return {key: summary[key] for key in TOTALS}, shown

    @staticmethod
    def metric_line(prefix: str, metrics: dict) -> str:
        """``PREFIX precision=... recall=... hmean=...``: what the tuners read from the log."""
        return (f"{prefix} precision={metrics['precision']:.4f} recall={metrics['recall']:.4f} "
                f"hmean={metrics['hmean']:.4f}")

    @staticmethod
    def summaries(writer, step: int, metrics: dict, shown) -> None:
        with writer.as_default(step=step):
            for key in ("precision", "recall", "hmean"):
                tf.summary.scalar(f"validation/{key}", metrics[key])
            for i, (source, picture) in enumerate(shown):
                tf.summary.image(f"validation/{i}", picture[None],
                                 description=f"{source}: detections matched green, false orange; missed red")

    @staticmethod
    def reads_enough(metrics: dict) -> bool:
        return True

    @staticmethod
    def waits_for() -> str:
        return "on at the first validation"
