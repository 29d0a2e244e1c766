"""The time budget, the final evaluation and ``mixed_precision: auto`` (issue: accuracy out of the box)."""

import json
import math
import re

import pytest

from conftest import word_records
from shadownet import cli
from shadownet.config import TrainConfig
from shadownet.learn import precision
from shadownet.learn.budget import Budget, warmup_for
from shadownet.learn.precision import Hardware
from shadownet.learn.train import train
from shadownet.learn.trainer import FLOOR

TINY = dict(model="shadownet_small", batch_size=8, log_every=1, checkpoint_every=1000, warmup_steps=500,
            shuffle_buffer=64, mixed_precision="off", best_metric="loss")


class FakeClock:
    """Time that moves only when a step is reported: one second per training step."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def progress(self, step):
        self.now += 1.0


@pytest.fixture(scope="module")
def records_dir(tmp_path_factory):
    return word_records(tmp_path_factory.mktemp("budget"), 48, 40, 3, "--validation-ratio", "0.2")


def evaluations(lines):
    return [(int(m.group(1)), float(m.group(2))) for line in lines
            if (m := re.match(r"step=(\d+) validation_loss=(\S+) ", line))]


def learning_rates(lines):
    return [(int(m.group(1)), float(m.group(2))) for line in lines
            if (m := re.match(r"step=(\d+) loss=\S+ learning_rate=(\S+) ", line))]


# -- the planner alone

def test_horizon_leaves_time_for_the_evaluations_and_the_final_one():
    clock = FakeClock()
    budget = Budget.start(100.0, 0.0, clock)
    assert budget.eval_every_seconds == 10.0  # ten evaluations per budget by default
    for _ in range(23):
        clock.now += 1.0
        budget.step_done(1.0)
    assert budget.ready_to_plan() and budget.step_time == 1.0
    # 100 - 23 elapsed - 2 margin = 75 s; 7 timed evaluations + the final one at 2 s: 59 s of steps,
    # each also carrying 2 s / 50 of the step-based evaluations.
    assert budget.horizon(23, 50, 2.0) == 23 + int(59 / 1.04)
    assert not budget.spent(final_eval=2.0)
    clock.now += 74.0
    assert budget.spent(final_eval=2.0)  # 97 s gone: one more step and the final evaluation do not fit
    assert Budget.start(0.0, 0.0, clock).spent(5.0) is False


def test_warmup_is_at_most_a_tenth_of_the_planned_steps():
    assert warmup_for(2000, 500) == 200
    assert warmup_for(20_000, 500) == 500
    assert warmup_for(5, 500) == 1


def test_eval_due_by_time():
    clock = FakeClock()
    budget = Budget.start(0.0, 30.0, clock)
    clock.now += 29.0
    assert not budget.eval_due()
    clock.now += 1.0
    assert budget.eval_due()
    budget.evaluated(0.5)
    assert not budget.eval_due()


# -- auto precision

@pytest.mark.parametrize("hardware, expected", [
    (Hardware(frozenset({"avx2", "fma"})), "off"),
    (Hardware(frozenset({"avx512f", "avx512_bf16"})), "bfloat16"),
    (Hardware(frozenset({"amx_bf16", "amx_tile"})), "bfloat16"),
    (Hardware(frozenset({"avx512_bf16"}), ((7, 0),)), "float16"),  # the GPU trains: a V100
    (Hardware(frozenset(), ((8, 0), (9, 0))), "bfloat16"),
    (Hardware(frozenset(), ((9, 0), (7, 5))), "float16"),  # every replica runs the oldest GPU's choice
])
def test_auto_precision_follows_the_hardware(hardware, expected):
    assert precision.choose("auto", hardware) == expected
    assert precision.choose("float16", hardware) == "float16"  # an explicit choice stays


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16\n\nprocessor\t: 1\n")
    hardware = precision.detect(cpuinfo)
    assert {"avx512f", "avx512_bf16"} <= hardware.cpu_flags and "fpu" in hardware.cpu_flags
    assert precision.detect(tmp_path / "missing").cpu_flags == frozenset()


@pytest.mark.parametrize("flags, expected", [("avx2 fma", "off"), ("avx512f avx512_bf16", "bfloat16")])
def test_first_line_names_the_precision_auto_chose(tmp_path, records_dir, monkeypatch, capsys, flags, expected):
    monkeypatch.setattr(precision, "detect", lambda: Hardware(frozenset(flags.split())))
    model_dir = tmp_path / "model"
    code = cli.main(["train", "--tfrecords-dir", str(records_dir), "--model-dir", str(model_dir),
                     "--model", "shadownet_small", "--batch-size", "8", "--train-steps", "1"])
    assert code == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first == f"strategy=DefaultDistributionStrategy workers=1 replicas=1 mixed_precision={expected}"
    assert json.loads((model_dir / "config.json").read_text())["mixed_precision"] == expected


# -- training runs

def test_schedule_reaches_its_floor_at_the_end_of_the_budget(tmp_path, records_dir):
    clock, lines = FakeClock(), []
    config = TrainConfig(**TINY, train_steps=100_000, max_train_seconds=60, eval_every=1000)
    result = train(config, records_dir, tmp_path / "m", log=lines.append, progress=clock.progress, clock=clock)
    assert result.stopped_early and 50 <= result.step <= 60
    plan = next(line for line in lines if line.startswith("time budget: about"))
    horizon = int(re.search(r"about (\d+) steps", plan).group(1))
    assert result.step - 3 <= horizon <= result.step
    assert "warms up over 5 steps" in plan  # a tenth of the planned steps, not the configured 500
    rates = dict(learning_rates(lines))
    assert rates[result.step] == pytest.approx(FLOOR * config.learning_rate, rel=1e-3)
    middle = rates[(horizon + 23) // 2]  # between the plan and the end: decaying
    assert FLOOR * config.learning_rate * 2 < middle < config.learning_rate * 0.95


def test_budget_ending_between_evaluations_evaluates_the_final_state(tmp_path, records_dir):
    clock, lines = FakeClock(), []
    model_dir = tmp_path / "m"
    # Evaluations every 10 steps; the budget (with no timed evaluations) ends between two of them.
    config = TrainConfig(**TINY, train_steps=100_000, max_train_seconds=35, eval_every=10,
                         eval_every_seconds=10_000)
    result = train(config, records_dir, model_dir, log=lines.append, progress=clock.progress, clock=clock)
    assert result.stopped_early and result.step % 10 != 0
    evaluated = evaluations(lines)
    assert [step for step, _ in evaluated] == [10, 20, 30, result.step]
    best_step, best_loss = min(evaluated, key=lambda e: e[1])
    best = json.loads((model_dir / "best.json").read_text())
    assert best["step"] == best_step and best["value"] == pytest.approx(best_loss, abs=1e-4)
    assert result.best["step"] == best_step
    assert (model_dir / "best" / f"ckpt-{best_step}.index").is_file()


def test_train_steps_not_a_multiple_of_eval_every_ends_evaluated(tmp_path, records_dir):
    lines = []
    model_dir = tmp_path / "m"
    config = TrainConfig(**(TINY | {"warmup_steps": 2}), train_steps=14, eval_every=6)
    result = train(config, records_dir, model_dir, log=lines.append)
    evaluated = evaluations(lines)
    assert [step for step, _ in evaluated] == [6, 12, 14]
    assert json.loads((model_dir / "best.json").read_text())["step"] == min(evaluated, key=lambda e: e[1])[0]
    assert result.step == 14 and (model_dir / "checkpoints" / "ckpt-14.index").is_file()


@pytest.mark.parametrize("grace, evaluated", [(120.0, True), (10.0, False)])
def test_sigterm_checkpoints_first_then_evaluates_if_time_allows(tmp_path, records_dir, grace, evaluated):
    events, model_dir = [], tmp_path / "m"
    clock = FakeClock()
    progress_step = []

    def progress(step):
        progress_step.append(step)
        clock.progress(step)

    def saved():
        checkpoints = sorted(p.name for p in (model_dir / "checkpoints").glob("*.index"))
        events.append(("saved", checkpoints[-1] if checkpoints else None))

    config = TrainConfig(**(TINY | {"warmup_steps": 2}), train_steps=1000, eval_every=4)
    result = train(config, records_dir, model_dir, log=lambda line: events.append(("log", line)),
                   progress=progress, saved=saved, stop=lambda: progress_step[-1] >= 7, clock=clock,
                   grace_seconds=grace)
    assert result.preempted and result.step == 7
    logs = [e[1] for e in events if e[0] == "log"]
    stop_at = events.index(("log", "stop requested at step 7: checkpointing"))
    assert events[stop_at + 1] == ("saved", "ckpt-7.index")  # checkpointed and synced before anything else
    after = [line for kind, line in events[stop_at:] if kind == "log"]
    if after[-1].startswith("best_step="):  # the best once more, for the tuners, ends every run that has one
        after = after[:-1]
    if evaluated:
        assert after[1].startswith("step=7 validation_loss=")
        assert after[-1] == "final evaluation of step 7 done within the grace period"
    else:  # 10 s of grace, all of it the reserve for syncing and exiting
        assert not any(line.startswith("step=7 validation_loss=") for line in logs)
        assert after[-1].startswith("final evaluation of step 7 skipped: it takes about")
        assert "the resumed run evaluates" in after[-1]


def test_float16_with_loss_scaling_plans_its_schedule_too(tmp_path, records_dir):
    """What auto picks on GPUs older than 8.0: the loss-scaled optimizer carries the same schedule."""
    clock, lines = FakeClock(), []
    config = TrainConfig(**(TINY | {"mixed_precision": "float16"}), train_steps=100_000, max_train_seconds=40,
                         eval_every=1000)
    result = train(config, records_dir, tmp_path / "m", log=lines.append, progress=clock.progress, clock=clock)
    assert result.stopped_early and any(line.startswith("time budget: about") for line in lines)
    rates = dict(learning_rates(lines))
    assert rates[result.step] == pytest.approx(FLOOR * config.learning_rate, rel=1e-3)
    assert json.loads((tmp_path / "m" / "config.json").read_text())["mixed_precision"] == "float16"


def test_resuming_without_a_budget_follows_train_steps_again(tmp_path, records_dir):
    clock, lines = FakeClock(), []
    config = TrainConfig(**(TINY | {"warmup_steps": 2}), train_steps=100_000, max_train_seconds=40, eval_every=1000)
    first = train(config, records_dir, tmp_path / "m", log=lines.append, progress=clock.progress, clock=clock)
    assert dict(learning_rates(lines))[first.step] == pytest.approx(FLOOR * config.learning_rate, rel=1e-3)
    lines.clear()
    resumed = TrainConfig(**(TINY | {"warmup_steps": 2}), train_steps=first.step * 4, eval_every=1000)
    train(resumed, records_dir, tmp_path / "m", log=lines.append)
    # The cosine of train_steps, a quarter of the way in: far above the floor the budget had reached.
    rate = dict(learning_rates(lines))[first.step + 1]
    progress = (first.step + 1 - 2) / (first.step * 4 - 2)
    expected = config.learning_rate * (FLOOR + (1 - FLOOR) * 0.5 * (1 + math.cos(math.pi * progress)))
    assert rate == pytest.approx(expected, rel=1e-2)
