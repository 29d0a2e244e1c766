"""How hard a run regularises: decided from the epochs it will make of its training set.

A small set trained for many epochs is learned by heart (the captcha set: training loss 0.012 while the
validation loss stays at 0.40); a large one seen a few times is not, and regularising it only slows
learning. So the regime grows with the planned epochs, ``planned steps x global batch / train examples``:

    epochs       regime   dropout  weight decay  augmentation strength
    < 4          none     0        0             0
    4 .. 12      light    0.1      0.01          0.35
    12 .. 30     medium   0.2      0.03          0.7
    >= 30        strong   0.3      0.05          1.0

* dropout: on the inputs of each of the two recurrent layers (``learn.model.set_dropout``: each direction's
  LSTM, one mask per sequence); none at inference, and nothing in the weights.
* weight decay: decoupled (AdamW's), on the kernels only (not biases, nor batch norm); Adam runs only:
  Adadelta's learning rate near 1 would make any decoupled decay far too strong.
* augmentation strength: the size of what ``learn.pipeline`` adds to the stretch, contrast, brightness and
  noise every augmented run has: a slant and a small rotation, a vertical shift and scale, a blur, light
  text on dark. 0 adds nothing. ``augment: false`` turns all augmentation off, whatever the regime.

Off by default (``regularization: none``): from scratch on the captcha set, ``auto`` chose ``medium`` at step 23,
applied it at once, and the run never left CTC's all-blank plateau (0 % read in 900 s, against 95.8 % without); a
fine-tune under ``light`` learned normally. See docs/training.md. So a regime now waits for the run to read:
it is switched on at the first validation whose CER is at most ``START_CER`` (a run without a validation split
switches it on when it decides). ``config.json`` records the step under ``started_at_step``.

The run knows its planned steps before it learns anything: ``train_steps`` when it is not time-boxed; a
time-boxed run decides when it first plans its budget (after ``budget.PLAN_AFTER`` timed steps), and runs
its first steps without regularisation. The decision is logged and recorded in ``config.json`` under
``regularization_plan``; a run resumed from its checkpoints applies it again. ``regularization`` set to a
regime's name takes that regime whatever the epochs; ``weight_decay`` set above 0 replaces the regime's.

Plain Python: no TensorFlow (the unit tests, and a plan made before anything is built).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..choices import REGULARIZATION

AUTO = "auto"
# A regime starts at the first validation whose CER is at most this. Before, CTC is still leaving its all-blank
# plateau (CER near 1): what makes the task harder then kept the captcha run there for good.
START_CER = 0.5


@dataclass(frozen=True)
class Regime:
    name: str
    dropout: float
    weight_decay: float
    augment_strength: float


REGIMES = {
    "none": Regime("none", 0.0, 0.0, 0.0),
    "light": Regime("light", 0.1, 0.01, 0.35),
    "medium": Regime("medium", 0.2, 0.03, 0.7),
    "strong": Regime("strong", 0.3, 0.05, 1.0),
}
# (fewest planned epochs, regime): the first row that the epochs reach
BY_EPOCHS = ((30.0, "strong"), (12.0, "medium"), (4.0, "light"), (0.0, "none"))
NAMES = REGULARIZATION  # the choices of the ``regularization`` setting: auto and the regimes
assert NAMES == (AUTO, *REGIMES), "choices.REGULARIZATION names auto and the regimes of REGIMES, in order"


def epochs(planned_steps: int, global_batch: int, train_examples: int) -> float:
    """How many times the run sees its training set: ``planned_steps x global_batch / train_examples``."""
    return planned_steps * global_batch / max(train_examples, 1)


def decide(setting: str, planned_steps: int, global_batch: int, train_examples: int,
           weight_decay: float = 0.0, optimizer: str = "adam") -> dict:
    """The regime of a run: ``setting`` (``auto`` or a regime's name) and what the run plans.

    Returns what ``config.json`` records and the log shows: the regime's ``name``, its ``dropout``,
    ``weight_decay`` and ``augment_strength`` (with ``weight_decay`` > 0 in place of the regime's, and 0
    unless ``optimizer`` is adam), the planned ``epochs`` and ``steps``, and ``chosen_by`` (``epochs`` or
    ``setting``).
    """
    planned = epochs(planned_steps, global_batch, train_examples)
    if setting == AUTO:
        name = next(name for least, name in BY_EPOCHS if planned >= least)
    elif setting in REGIMES:
        name = setting
    else:
        raise ValueError(f"regularization must be one of {', '.join(NAMES)}, not {setting!r}")
    values = asdict(REGIMES[name])
    if weight_decay > 0:
        values["weight_decay"] = weight_decay
    if optimizer != "adam":
        values["weight_decay"] = 0.0
    return values | {"epochs": round(planned, 2), "steps": int(planned_steps),
                     "chosen_by": "epochs" if setting == AUTO else "setting"}


def waiting(plan: dict | None) -> bool:
    """Whether ``plan`` is a regime waiting to be switched on (``started_at_step`` recorded as null; runs from
    before the wait have no such key, and started at once)."""
    return plan is not None and "started_at_step" in plan and plan["started_at_step"] is None


def reads_enough(char_error_rate: float) -> bool:
    """Whether a validation CER lets a waiting regime start."""
    return char_error_rate <= START_CER


def describe(plan: dict) -> str:
    """The log line of a decision."""
    why = (f"{plan['epochs']:g} epochs planned ({plan['steps']} steps)" if plan["chosen_by"] == "epochs"
           else "set by regularization")
    return (f"regularization: {plan['name']} ({why}): dropout {plan['dropout']:g}, weight decay "
            f"{plan['weight_decay']:g}, augmentation strength {plan['augment_strength']:g}")
