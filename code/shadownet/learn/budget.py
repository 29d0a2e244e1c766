"""A training run's time budget: when to stop, when to evaluate, and how many steps fit in it.

With ``max_train_seconds`` set, the learning-rate schedule is planned on the steps that fit in the
budget rather than on ``train_steps``, so that warm-up and decay complete before the time runs out:

    steps that fit = (time left - margin - (evaluations still due + the final one) x one evaluation)
                     / (one step + one evaluation / eval_every)

Step and evaluation times are measured in this run (the first steps, which build the graphs, are
left out); until an evaluation has been timed, one is assumed to cost as much as training on as many
images, about three times what it does. The plan is made after :data:`PLAN_AFTER` timed steps and
remade as measurements come in; training stops early enough for the final evaluation to fit.

Everything reads time from ``clock`` (``time.monotonic`` unless a test gives another).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

SKIPPED_STEPS = 3  # the first steps trace and build the graphs: not timed
PLAN_AFTER = 20  # timed steps before the first plan
MARGIN = 0.02  # of the budget, kept for checkpoints and the steps' variation
WARMUP_SHARE = 0.1  # warm-up takes at most this share of the planned steps
EVALUATIONS_PER_BUDGET = 10  # default cadence of a time-boxed run: eval_every_seconds = budget / 10


@dataclass
class Budget:
    """The clock of one ``train`` call; ``seconds == 0`` means no time limit."""

    seconds: float
    eval_every_seconds: float = 0.0
    clock: Callable[[], float] = time.monotonic
    started: float = field(default=0.0)
    _step_seconds: float = 0.0
    _timed_steps: int = 0
    _seen_steps: int = 0
    _eval_seconds: float | None = None
    _last_eval: float = 0.0

    @classmethod
    def start(cls, seconds: float, eval_every_seconds: float, clock: Callable[[], float] = time.monotonic
              ) -> "Budget":
        """The budget from now. ``eval_every_seconds`` 0: a tenth of ``seconds`` when it is set, else none."""
        if not eval_every_seconds and seconds:
            eval_every_seconds = seconds / EVALUATIONS_PER_BUDGET
        now = clock()
        return cls(seconds, eval_every_seconds, clock, started=now, _last_eval=now)

    def now(self) -> float:
        return self.clock()

    def elapsed(self) -> float:
        return self.clock() - self.started

    def step_done(self, seconds: float) -> None:
        """One training step took ``seconds``."""
        self._seen_steps += 1
        if self._seen_steps > SKIPPED_STEPS:
            self._step_seconds += seconds
            self._timed_steps += 1

    def evaluated(self, seconds: float) -> None:
        """An evaluation ended now and took ``seconds``."""
        self._eval_seconds = seconds
        self._last_eval = self.clock()

    @property
    def step_time(self) -> float | None:
        return self._step_seconds / self._timed_steps if self._timed_steps else None

    def ready_to_plan(self) -> bool:
        return bool(self.seconds) and self._timed_steps >= PLAN_AFTER

    def eval_time(self, images: int, batch_size: int) -> float:
        """Seconds one evaluation of ``images`` takes: measured, or else estimated from the training steps."""
        if self._eval_seconds is not None:
            return self._eval_seconds
        return (self.step_time or 0.0) * images / max(batch_size, 1)

    def eval_due(self) -> bool:
        """Whether ``eval_every_seconds`` have passed since the last evaluation (or the start)."""
        return bool(self.eval_every_seconds) and self.clock() - self._last_eval >= self.eval_every_seconds

    def spent(self, final_eval: float) -> bool:
        """Whether another step would leave too little time for the final evaluation (``final_eval`` seconds)."""
        if not self.seconds:
            return False
        return self.elapsed() + (self.step_time or 0.0) + final_eval >= self.seconds

    def horizon(self, step: int, eval_every_steps: int, eval_seconds: float) -> int:
        """The step at which the budget runs out, if training goes on from ``step`` as measured so far."""
        left = self.seconds - self.elapsed() - MARGIN * self.seconds
        timed_evals = math.floor(left / self.eval_every_seconds) if self.eval_every_seconds else 0
        left -= (timed_evals + 1) * eval_seconds
        per_step = (self.step_time or 0.0) + eval_seconds / max(eval_every_steps, 1)
        if per_step <= 0:
            return step
        return step + max(0, math.floor(left / per_step))


def warmup_for(horizon: int, warmup_steps: int) -> int:
    """Warm-up steps of a planned run: as configured, but at most a tenth of the steps that fit."""
    return min(warmup_steps, max(1, int(horizon * WARMUP_SHARE)))
