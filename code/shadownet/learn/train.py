"""``shadownet train``: records -> a trained model (a recogniser, or from page records a detector: ``tasks``),
checkpointed, resumable, time-boxed.

What it writes to ``model_dir`` (config, charset, checkpoints, best, logs) is laid out by ``run_dir``.

A rerun with the same ``model_dir`` resumes from the newest checkpoint and stops at exactly
``train_steps``. When ``max_train_seconds`` is spent, it checkpoints and returns normally.

The final state always counts: whatever ends the run (``train_steps``, the time budget, SIGTERM),
it is evaluated on the validation split unless it just was, and becomes ``best`` when it is better;
after SIGTERM the checkpoint comes first and the evaluation only if the platform's grace period
leaves time for it. Evaluations come every ``eval_every`` steps and every ``eval_every_seconds``
(by default a tenth of the time budget). A time-boxed run fits its learning-rate schedule to the
steps that fit in the budget (see ``budget``).

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

import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from ..config import TrainConfig
from ..errors import ShadownetError
from . import distribute, finetune, read_records, regime, run_dir, tasks
from .budget import Budget, warmup_for
from .trainer import Trainer, resolve_precision


@dataclass
class TrainResult:
    step: int
    stopped_early: bool  # the time budget ran out before train_steps
    best: dict | None
    preempted: bool = False  # stopped on request (SIGTERM) after checkpointing the step reached


def is_better(metric: str, value: float, best: float | None, higher: frozenset[str] = frozenset({"word_accuracy"})
              ) -> bool:
    """Whether ``value`` of ``metric`` beats ``best``; the metrics of ``higher`` grow (a task's
    ``higher_is_better``), the others shrink."""
    if best is None:
        return True
    return value > best if metric in higher else value < best


DEFAULT_GRACE_SECONDS = 30.0  # Kubernetes' default terminationGracePeriodSeconds
GRACE_RESERVE = 10.0  # of the grace period, kept for syncing the run and exiting


def train(config: TrainConfig, tfrecords_dir: Path, model_dir: Path, log=print, progress=None,
          strategy: tf.distribute.Strategy | None = None, saved=None, stop=None,
          log_dir: Path | None = None, clock=time.monotonic,
          grace_seconds: float = DEFAULT_GRACE_SECONDS, init_dir: Path | None = None,
          explicit: frozenset[str] = frozenset(), report=None, records_ready=None) -> TrainResult:
    """Train (or resume) until ``train_steps`` or ``max_train_seconds``; see the module docstring.

    ``progress(step)`` is called with the step reached: once at start, then after every step.
    ``saved()`` is called after every checkpoint written (to copy ``model_dir`` elsewhere, say).
    ``stop()`` is asked before every step; when it says so, the step reached is checkpointed and training
    returns with ``preempted`` set (a platform's SIGTERM: the rerun resumes from there). The final state
    is then evaluated too if that fits in what is left of ``grace_seconds`` (the platform's time between
    SIGTERM and SIGKILL).
    ``log_dir``: TensorBoard's folder, ``model_dir/logs`` by default.
    ``strategy`` (default: the current one) must have been created at program start (``distribute.create``).
    ``clock``: where time is read (the budget, evaluation cadence, the grace period).
    Under several workers, each calls ``train`` with its own view of the same paths; see the module docstring.
    Fine-tuning (``config.init_from``): ``init_dir`` is that run, staged here (default: ``init_from`` itself);
    ``explicit``: the settings the user gave, which must not contradict the parent's architecture (``finetune``).
    ``records_ready(path)``: blocks until a train record file still being staged is there (a worker that
    starts training on its first files while the rest of its share arrives).
    ``report(step, metrics)``: called after every evaluation, and once more at the end with the best one
    (a tuner's metric file). The log gets the same values: ``step=N validation_loss=... word_accuracy=...
    char_error_rate=...`` after each evaluation, ``best_step=N ...`` (the same keys) at the end.
    """
    budget = Budget.start(config.max_train_seconds, config.eval_every_seconds, clock)
    config = resolve_precision(config)
    tfrecords_dir, model_dir = Path(tfrecords_dir), Path(model_dir)
    manifest = read_records.read_manifest(tfrecords_dir, task=None)
    task = tasks.for_records(manifest)
    config = task.resolve(config, explicit)
    charset = getattr(task, "charset", None)  # a detector has none
    chief = distribute.is_chief(strategy or tf.distribute.get_strategy())
    if manifest["counts"]["train"] == 0:
        raise ShadownetError(f"{tfrecords_dir}: the train split is empty")
    parent, config = _parent(config, model_dir, init_dir, explicit)  # before anything is written
    model_dir.mkdir(parents=True, exist_ok=True)
    run_dir.check_same_run(model_dir, config, charset)
    if chief:
        run_dir.write_run(model_dir, config, charset, parent.record(config.init_checkpoint) if parent else None)
    keras.utils.set_random_seed(config.seed)

    trainer = Trainer(config, task, model_dir, strategy)
    if parent is not None:
        log(f"initialised from {parent.run} (step {parent.step}): "
            + finetune.describe(finetune.transfer(parent, trainer.model, charset)))
    try:
        run = _Run(trainer, config, tfrecords_dir, manifest, budget, log, saved if chief else None, log_dir,
                   report, records_ready)
        result = run.loop(progress, stop, grace_seconds)
    finally:
        trainer.close()
    if result.best:  # the objective once more, last: SageMaker's tuner takes the last value the log shows
        log(task.metric_line(f"best_step={result.best['step']}", result.best))
        if report is not None:
            report(result.best["step"], result.best)
    return result


def _parent(config: TrainConfig, model_dir: Path, init_dir: Path | None, explicit: frozenset[str]):
    """(the parent run to initialise from or None, the config with its architecture) for ``init_from``.

    A model dir with checkpoints of its own resumes them (a restarted job), if they are this fine-tuning's;
    it never re-initialises from the parent.
    """
    if not config.init_from:
        return None, config
    if run_dir.has_checkpoints(model_dir):
        recorded = run_dir.read_parent(model_dir) or {}
        if recorded.get("run") != config.init_from:
            origin = f"initialised from {recorded['run']}" if recorded else "trained from scratch"
            raise ShadownetError(f"{model_dir} already holds checkpoints of its own ({origin}); --init-from "
                                 f"{config.init_from} starts a new run: give a new --model-dir")
        own, _ = run_dir.read_run(model_dir)
        return None, finetune.inherit(config, explicit, own, f"{model_dir} (fine-tuned from {config.init_from})")
    parent = finetune.Parent.load(Path(init_dir or config.init_from), config.init_from, config.init_checkpoint)
    return parent, finetune.inherit(config, explicit, parent.config, f"--init-from {config.init_from}")


class _Run:
    """The loop of one ``train`` call and what it keeps between steps: the best metric, the plan, the log."""

    def __init__(self, trainer: Trainer, config: TrainConfig, tfrecords_dir: Path, manifest: dict,
                 budget: Budget, log, saved, log_dir: Path | None, report=None, records_ready=None):
        self.trainer, self.config, self.budget, self.log, self.saved = trainer, config, budget, log, saved
        self.report, self.records_ready = report, records_ready
        self.tfrecords_dir, self.model_dir = tfrecords_dir, trainer.model_dir
        counts = manifest["counts"]
        self.train_examples = counts["train"]
        self.regime_plan: dict | None = None
        self.eval_images = min(counts["validation"], config.eval_max_samples or counts["validation"])
        self.validation = trainer.task.validation(tfrecords_dir, config, self.eval_images)
        # Summaries are the chief's; the others' go nowhere (they hold the same values).
        self.writer = tf.summary.create_file_writer(str(log_dir or self.model_dir / run_dir.LOGS_DIR)) \
            if trainer.chief else tf.summary.create_noop_writer()
        self.best = run_dir.read_best(self.model_dir)
        self.evaluated_step: int | None = None
        self.planned = False

    def loop(self, progress, stop, grace_seconds: float) -> TrainResult:
        trainer, config, budget, log = self.trainer, self.config, self.budget, self.log
        step = trainer.restore()
        if not budget.seconds:  # the schedule of train_steps, whatever plan a time-boxed run left in the checkpoint
            trainer.schedule.plan(config.warmup_steps, config.train_steps)
        if progress is not None:
            progress(step)
        if step:
            log(f"resumed from {trainer.restored_from} at step {step}")
        if step >= config.train_steps:
            log(f"already trained: step {step} of {config.train_steps}")
            return TrainResult(step, False, self.best)
        self.regime_plan = run_dir.read_regularization(self.model_dir) if step else None
        if self.regime_plan is not None:  # a resumed run keeps what it decided, and whether it started
            if regime.waiting(self.regime_plan):
                log(f"{regime.describe(self.regime_plan)} (as decided at the start of this run; "
                    f"{self._waits_for()})")
            else:
                trainer.regularize(self.regime_plan)
                log(f"{regime.describe(self.regime_plan)} (as decided at the start of this run; on since step "
                    f"{self.regime_plan.get('started_at_step', 0)})")
        elif not budget.seconds:  # the planned steps are train_steps
            self._regularize(config.train_steps)
        batches = iter(trainer.distribute_batches(
            lambda size, shard: trainer.task.train_batches(self.tfrecords_dir, config, size, shard,
                                                           self.records_ready, trainer.augment_strength)))
        window_loss, window_images, window_start = [], 0, budget.now()
        stopped_early = preempted = False
        first_step = saved_step = step
        deadline = None

        while step < config.train_steps:
            requested = stop is not None and stop()
            # The budget is checked after each step trained (the first one always runs).
            spent = step > first_step and budget.spent(self._eval_seconds())
            timed_eval = budget.eval_due()
            if trainer.workers > 1:  # what one worker saw, all act on
                requested, spent, timed_eval = (bool(v > 0) for v in
                                                trainer.worker_mean([requested, spent, timed_eval]).numpy())
            if requested:
                log(f"stop requested at step {step}: checkpointing")
                deadline = budget.now() + grace_seconds - GRACE_RESERVE
                preempted = True
                break
            if spent:
                log(f"time budget of {config.max_train_seconds:.0f} s spent at step {step}: stopping")
                stopped_early = True
                break
            began = budget.now()
            inputs, targets = next(batches)
            loss = trainer.train_step(inputs, targets)
            step += 1
            if progress is not None:
                progress(step)
            budget.step_done(budget.now() - began)  # waiting for the input counts too
            window_loss.append(loss)
            # Every worker's batch has the same size (training batches are full).
            examples = distribute.local_examples(trainer.strategy, trainer.task.examples(inputs))
            window_images += examples * trainer.workers
            if budget.ready_to_plan() and (not self.planned or step % config.log_every == 0):
                self._plan(step, first_step)
            if step % config.log_every == 0 or step == config.train_steps:
                mean_loss = float(np.mean([float(v) for v in window_loss]))
                rate = window_images / max(budget.now() - window_start, 1e-9)
                lr = float(trainer.optimizer.learning_rate)
                log(f"step={step} loss={mean_loss:.4f} learning_rate={lr:.6f} images_per_sec={rate:.1f}")
                with self.writer.as_default(step=step):
                    tf.summary.scalar("train/loss", mean_loss)
                    tf.summary.scalar("train/learning_rate", lr)
                    tf.summary.scalar("train/images_per_sec", rate)
                window_loss, window_images, window_start = [], 0, budget.now()
            if self.validation is not None and (step % config.eval_every == 0 or timed_eval) \
                    and step < config.train_steps:  # the last step is evaluated after the loop
                began = budget.now()
                self._evaluate(step)
                window_start += budget.now() - began  # the images per second are training's
            if step % config.checkpoint_every == 0:
                self._checkpoint(step)
                saved_step = step
        if saved_step != step:
            self._checkpoint(step)  # on SIGTERM the checkpoint comes first, then the evaluation if time allows
        if self.validation is not None and step != self.evaluated_step and step > first_step:
            self._final_evaluation(step, deadline)
        self.writer.flush()
        if self.saved:
            self.saved()
        return TrainResult(step, stopped_early, self.best, preempted)

    def _eval_seconds(self) -> float:
        return self.budget.eval_time(self.eval_images, self.config.batch_size) if self.validation else 0.0

    def _plan(self, step: int, first_step: int) -> None:
        """Fit the learning-rate schedule to the steps the time budget leaves (see ``budget``)."""
        horizon = self.budget.horizon(step, self.config.eval_every, self._eval_seconds())
        if self.trainer.workers > 1:  # the same plan on every worker
            horizon = int(self.trainer.worker_mean([horizon]).numpy()[0])
        horizon = min(horizon, self.config.train_steps)
        schedule = self.trainer.schedule
        warmup = int(schedule.warmup.numpy())
        if not self.planned and first_step == 0:  # warm-up is planned once, before it is over
            warmup = warmup_for(horizon, self.config.warmup_steps)
        # The schedule counts the optimizer's updates: under float16 loss scaling, steps whose gradients
        # overflowed made none, so the horizon in updates is that many lower.
        skipped = step - int(self.trainer.optimizer.iterations.numpy())
        schedule.plan(warmup, horizon - skipped)
        if not self.planned:
            self.log(f"time budget: about {horizon} steps fit in {self.config.max_train_seconds:.0f} s "
                     f"({self.budget.step_time:.3f} s a step); learning rate warms up over {warmup} steps "
                     f"and decays until step {horizon}")
        if self.regime_plan is None:
            self._regularize(horizon, step)
        self.planned = True

    def _regularize(self, planned_steps: int, step: int = 0) -> None:
        """Decide the regime from the epochs ``planned_steps`` make (``regime``), log and record it; switch it on
        now if the run has no validation split, else at the first validation that reads well enough."""
        config, trainer = self.config, self.trainer
        self.regime_plan = regime.decide(config.regularization, planned_steps,
                                         config.batch_size * trainer.strategy.num_replicas_in_sync,
                                         self.train_examples, config.weight_decay, config.optimizer)
        if self.validation is None or self.regime_plan["name"] == "none":
            self._start_regime(step)
            self.log(regime.describe(self.regime_plan))
        else:
            self.regime_plan["started_at_step"] = None
            self.log(f"{regime.describe(self.regime_plan)}; {self._waits_for()}")
            self._record_regime()

    def _waits_for(self) -> str:
        return self.trainer.task.waits_for()

    def _start_regime(self, step: int) -> None:
        self.regime_plan = self.regime_plan | {"started_at_step": step}
        self.trainer.regularize(self.regime_plan)
        self._record_regime()

    def _record_regime(self) -> None:
        if self.trainer.chief:
            run_dir.write_regularization(self.model_dir, self.regime_plan)

    def _evaluate(self, step: int, deadline: float | None = None) -> bool:
        """Evaluate on the validation split and keep the best checkpoint; False if ``deadline`` came first."""
        trainer, config = self.trainer, self.config
        began = self.budget.now()
        metrics, shown = trainer.evaluate(self.validation, deadline, self.budget.clock)
        if metrics is None:
            return False
        self.budget.evaluated(self.budget.now() - began)
        self.evaluated_step = step
        self.log(trainer.task.metric_line(f"step={step}", metrics))
        if self.report is not None:
            self.report(step, metrics)
        trainer.task.summaries(self.writer, step, metrics, shown)
        if regime.waiting(self.regime_plan):
            reads = trainer.task.reads_enough(metrics)
            if trainer.workers > 1:  # all switch at the same step
                reads = bool(trainer.worker_mean([reads]).numpy()[0] >= 0.5)
            if reads:
                self._start_regime(step)
                self.log(f"regularization: {self.regime_plan['name']} on from step {step} (validation "
                         + (f"CER {metrics['char_error_rate']:.4f})" if "char_error_rate" in metrics else "reads)"))
        value = metrics[config.best_metric]
        better = is_better(config.best_metric, value, self.best and self.best["value"],
                           trainer.task.higher_is_better)
        if trainer.workers > 1:
            better = bool(trainer.worker_mean([better]).numpy()[0] > 0)
        if better:
            self.best = {"metric": config.best_metric, "value": value, "step": step, **metrics}
            trainer.save(trainer.best_manager, step)
            if trainer.chief:
                run_dir.write_best(self.model_dir, self.best)
            self.writer.flush()
            if self.saved:
                self.saved()
        return True

    def _final_evaluation(self, step: int, deadline: float | None) -> None:
        """The final state counts: evaluated like the others; after SIGTERM only within the grace period."""
        if deadline is None:
            self._evaluate(step)
            return
        if self.trainer.workers > 1:  # the workers could not agree on a deadline: the resumed run evaluates
            self.log(f"final evaluation of step {step} left to the resumed run (several workers)")
            return
        left, needed = deadline - self.budget.now(), self._eval_seconds()
        if left <= 0 or needed > left:
            self.log(f"final evaluation of step {step} skipped: it takes about {needed:.0f} s and {max(left, 0):.0f}"
                     " s of the grace period are left; the resumed run evaluates")
        elif self._evaluate(step, deadline):
            self.log(f"final evaluation of step {step} done within the grace period")
        else:
            self.log(f"final evaluation of step {step} cut off by the end of the grace period; "
                     "the resumed run evaluates")

    def _checkpoint(self, step: int) -> None:
        self.trainer.save(self.trainer.manager, step)
        self.writer.flush()
        if self.saved:
            self.saved()
