"""The regularization regime (learn/regime.py): decided from the planned epochs, applied, logged, recorded, kept."""

import json

import numpy as np
import pytest
import tensorflow as tf

from conftest import word_records
from shadownet.config import TrainConfig
from shadownet.learn import model as shadownet_model
from shadownet.learn import pipeline, regime
from shadownet.learn.train import train


@pytest.mark.parametrize("examples, steps, batch, epochs, name", [
    (8000, 5300, 64, 42.4, "strong"),  # the captcha set's 15 minutes: learned by heart without regularisation
    (7200, 1199, 64, 10.66, "light"),  # long_lines' 15 minutes at 256 px
    (8000, 2000, 64, 16.0, "medium"),
    (100_000, 2000, 64, 1.28, "none"),  # a large set seen about once
    (4000, 250, 64, 4.0, "light"),  # the thresholds belong to the regime above them
    (4000, 750, 64, 12.0, "medium"),
    (4000, 1875, 64, 30.0, "strong"),
    (4000, 249, 64, 3.98, "none"),
    (1000, 100, 256, 25.6, "medium"),  # a global batch of 4 replicas x 64
])
def test_regime_follows_the_planned_epochs(examples, steps, batch, epochs, name):
    plan = regime.decide("auto", steps, batch, examples)
    assert plan["name"] == name and plan["epochs"] == epochs and plan["steps"] == steps
    assert plan["chosen_by"] == "epochs"
    assert {key: plan[key] for key in ("dropout", "weight_decay", "augment_strength")} == \
        {key: getattr(regime.REGIMES[name], key) for key in ("dropout", "weight_decay", "augment_strength")}


def test_regimes_grow_with_the_epochs():
    ordered = [regime.REGIMES[name] for _, name in reversed(regime.BY_EPOCHS)]
    for weaker, stronger in zip(ordered[:-1], ordered[1:], strict=True):
        assert weaker.dropout < stronger.dropout and weaker.weight_decay < stronger.weight_decay
        assert weaker.augment_strength < stronger.augment_strength
    assert ordered[0] == regime.Regime("none", 0.0, 0.0, 0.0)


def test_a_named_regime_and_an_explicit_weight_decay_override_the_decision():
    plan = regime.decide("none", 10_000, 64, 1000)  # 640 epochs, but the setting says none
    assert (plan["name"], plan["dropout"], plan["weight_decay"], plan["chosen_by"]) == ("none", 0.0, 0.0, "setting")
    assert plan["epochs"] == 640.0
    assert regime.decide("strong", 10, 64, 10**6)["dropout"] == 0.3
    assert regime.decide("auto", 10_000, 64, 1000, weight_decay=0.2)["weight_decay"] == 0.2
    # Adadelta's learning rate near 1 would make decoupled decay far too strong: none, whatever was asked.
    assert regime.decide("auto", 10_000, 64, 1000, weight_decay=0.2, optimizer="adadelta")["weight_decay"] == 0.0
    with pytest.raises(ValueError, match="regularization must be one of auto, none, light, medium, strong"):
        regime.decide("heavy", 10, 64, 100)


def test_the_log_line_says_why():
    assert regime.describe(regime.decide("auto", 5300, 64, 8000)) == (
        "regularization: strong (42.4 epochs planned (5300 steps)): dropout 0.3, weight decay 0.05, "
        "augmentation strength 1")
    assert regime.describe(regime.decide("light", 5300, 64, 8000)).startswith(
        "regularization: light (set by regularization): dropout 0.1,")


def test_dropout_acts_in_training_only_and_leaves_the_weights_alone():
    tf.random.set_seed(0)
    model = shadownet_model.build("shadownet_small", 11)
    names = [v.path for v in model.weights]
    inputs = {"image": tf.random.uniform([2, 32, 48, 3], -1, 1), "width": tf.constant([48, 40])}
    before = model(inputs, training=True).numpy()
    shadownet_model.set_dropout(model, 0.5)
    assert [v.path for v in model.weights] == names
    np.testing.assert_allclose(model(inputs, training=False).numpy(), model(inputs, training=False).numpy())
    dropped = model(inputs, training=True).numpy()
    assert np.abs(dropped - before).max() > 1e-4  # the same weights read differently under dropout
    shadownet_model.set_dropout(model, 0.0)
    np.testing.assert_allclose(model(inputs, training=True).numpy(), before, atol=1e-5)


def test_the_regime_augmentation_is_off_at_strength_zero_and_keeps_shapes():
    tf.random.set_seed(1)
    images = tf.random.uniform([4, 32, 64, 3], -1, 1)
    widths = tf.constant([64, 60, 40, 8])
    moved = pipeline._regime_augment(images, widths, tf.constant(1.0))
    assert moved.shape == images.shape
    assert float(tf.reduce_max(tf.abs(moved))) <= 1.0 + 1e-5  # bilinear mixes, never leaves the range
    assert float(tf.reduce_mean(tf.abs(moved - images))) > 0.05
    # At strength 0 every transform is the identity: the images come back as they were.
    still = pipeline._regime_augment(images, widths, tf.constant(0.0))
    np.testing.assert_allclose(still.numpy(), images.numpy(), atol=1e-5)


@pytest.fixture(scope="module")
def records_dir(tmp_path_factory):
    return word_records(tmp_path_factory.mktemp("regime"), 40, 32, 5, "--validation-ratio", "0.2")


TINY = dict(model="shadownet_small", batch_size=8, log_every=2, eval_every=4, checkpoint_every=2, warmup_steps=2,
            shuffle_buffer=64)


def test_a_run_logs_records_and_keeps_its_regime(tmp_path, records_dir, monkeypatch):
    """About 26 train examples: 100 steps of 8 make about 30 epochs (strong). The regime waits for a validation
    that reads well enough (here any: START_CER raised to 10), then starts; a resumed run applies what config.json
    recorded, not a new decision on its new train_steps."""
    monkeypatch.setattr(regime, "START_CER", 10.0)
    train_count = json.loads((records_dir / "manifest.json").read_text())["counts"]["train"]
    model_dir, lines = tmp_path / "run", []
    train(TrainConfig(**TINY, train_steps=100, regularization="auto"), records_dir, model_dir, log=lines.append)
    plan = json.loads((model_dir / "config.json").read_text())["regularization_plan"]
    expected = regime.decide("auto", 100, 8, train_count) | {"started_at_step": 4}  # the first validation
    assert plan == expected and plan["name"] == "strong"
    assert f"{regime.describe(expected)}; on at the first validation with CER <= 10" in lines
    started = [line for line in lines if line.startswith("regularization: strong on from step")]
    assert len(started) == 1 and started[0].startswith("regularization: strong on from step 4 (validation CER ")
    validated = next(i for i, line in enumerate(lines) if line.startswith("step=4 validation_loss="))
    assert lines.index(started[0]) == validated + 1
    lines.clear()
    train(TrainConfig(**TINY, train_steps=104, regularization="auto"), records_dir, model_dir, log=lines.append)
    assert f"{regime.describe(expected)} (as decided at the start of this run; on since step 4)" in lines
    assert not any("on from step" in line for line in lines)
    assert json.loads((model_dir / "config.json").read_text())["regularization_plan"] == expected

    default, lines = tmp_path / "default", []
    train(TrainConfig(**TINY, train_steps=2), records_dir, default, log=lines.append)
    plan = json.loads((default / "config.json").read_text())["regularization_plan"]
    assert (plan["name"], plan["chosen_by"], plan["dropout"], plan["weight_decay"]) == ("none", "setting", 0.0, 0.0)
    assert plan["started_at_step"] == 0


def test_a_regime_waits_while_validation_reads_nothing(tmp_path, records_dir, monkeypatch):
    """A validation CER above START_CER (here every one: -1) leaves the run unregularised; config.json says it
    is still waiting, and a resumed run waits on."""
    from shadownet.learn import trainer as trainer_module

    monkeypatch.setattr(regime, "START_CER", -1.0)
    applied = []
    regularize = trainer_module.Trainer.regularize
    monkeypatch.setattr(trainer_module.Trainer, "regularize",
                        lambda self, plan: (applied.append(plan["name"]), regularize(self, plan)))
    model_dir, lines = tmp_path / "medium", []
    train(TrainConfig(**TINY, train_steps=8, regularization="medium"), records_dir, model_dir, log=lines.append)
    plan = json.loads((model_dir / "config.json").read_text())["regularization_plan"]
    assert (plan["name"], plan["started_at_step"]) == ("medium", None)
    assert applied == [] and not any("on from step" in line for line in lines)
    assert sum(line.startswith("step=") and "validation_loss" in line for line in lines) == 2  # steps 4 and 8
    lines.clear()
    train(TrainConfig(**TINY, train_steps=10, regularization="medium"), records_dir, model_dir, log=lines.append)
    assert f"{regime.describe(plan)} (as decided at the start of this run; on at the first validation with " \
           "CER <= -1)" in lines
    assert applied == []


def test_a_run_without_validation_starts_its_regime_at_once(tmp_path, monkeypatch):
    records = word_records(tmp_path / "records", 16, 32, 5, "--validation-ratio", "0")
    model_dir, lines = tmp_path / "run", []
    train(TrainConfig(**TINY, train_steps=2, regularization="light"), records, model_dir, log=lines.append)
    plan = json.loads((model_dir / "config.json").read_text())["regularization_plan"]
    assert (plan["name"], plan["started_at_step"]) == ("light", 0)
    assert regime.describe(plan) in lines


def test_weight_decay_shrinks_the_kernels(tmp_path, records_dir):
    """Decoupled decay shrinks the kernels by learning rate x decay each step; the biases are never decayed."""
    from shadownet.learn.read_records import charset_of, read_manifest
    from shadownet.learn.tasks import RecognitionTask
    from shadownet.learn.trainer import Trainer

    config = TrainConfig(**(TINY | {"warmup_steps": 1}), train_steps=3, learning_rate=1e-9)
    trainer = Trainer(config, RecognitionTask(charset_of(read_manifest(records_dir))), tmp_path / "wd")
    trainer.regularize({"dropout": 0.0, "weight_decay": 5e8, "augment_strength": 0.0})
    batches = iter(trainer.distribute_batches(lambda size, shard: pipeline.train_dataset(records_dir, config, size,
                                                                                       shard)))
    dense = trainer.model.get_layer("logits")
    kernel, bias = (v.numpy() for v in dense.weights)
    trainer.train_step(*next(batches))
    # lr (1e-9, the peak at the first step of a 1-step warm-up) x decay 5e8: every kernel halves; Adam's own
    # update is about the learning rate, 1e-9
    np.testing.assert_allclose(dense.weights[0].numpy(), kernel * 0.5, rtol=1e-3, atol=1e-7)
    np.testing.assert_allclose(dense.weights[1].numpy(), bias, atol=1e-6)
    # Turned off again: the step is traced without the decay (no work per step) and the kernels stay put.
    trainer.regularize({"dropout": 0.0, "weight_decay": 0.0, "augment_strength": 0.0})
    assert trainer.decaying is False
    kernel = dense.weights[0].numpy()
    trainer.train_step(*next(batches))
    np.testing.assert_allclose(dense.weights[0].numpy(), kernel, atol=1e-6)
