"""Training under tf.distribute: MirroredStrategy over two logical CPUs computes what one device does.

Logical devices must be configured before TensorFlow starts, so every multi-device run is a
subprocess. Both runs of a comparison enable op determinism, which also makes tf.data yield its
batches in order: the two runs then see the same global batches, and what remains between them is
floating-point summation order (per-replica sums, all-reduces, batch-norm statistics computed
as E[x^2] - E[x]^2 across replicas).

Tolerances. After 4 Adam steps with gradient clipping active (the runs below), measured on the
2-core CI machine: largest weight difference 4.7e-6, largest per-example loss difference 5.7e-6
(3.5e-7 relative; losses near 19). The tests allow 1e-4 on weights and 1e-5 relative on losses,
20 to 30 times the measured differences, while the mistakes they guard against show up far above
that (measured in the same setup, seed 0): batch-norm statistics per replica instead of over the
global batch give a weight difference of 3.5e-3 and loss differences up to 0.23; clipping each
replica's gradients apart (Keras' ``global_clipnorm`` under a strategy) gives 3.3e-3 and 0.045.
On an AVX-512 CPU the same Adam runs came out 1.7e-3 and 1.8e-4 (relative) apart, rounding amplified by
Adam's near sign-sized first updates; so the command-line runs here train with Adadelta
(``conftest.SUMMATION_ONLY`` says why): 2.4e-6 and 2e-7 apart on that CPU.
"""

import json
import re
import shutil
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf

from conftest import SUMMATION_ONLY, run_cli, word_records
from shadownet.config import TrainConfig, coerce
from shadownet.learn import ctc, distribute, pipeline
from shadownet.learn import model as shadownet_model
from shadownet.learn.run_dir import load_model
from shadownet.learn.trainer import make_optimizer

WEIGHT_ATOL = 1e-4
LOSS_RTOL = 1e-5
PRINTED_LOSS_ATOL = 1.5e-4  # the log prints 4 decimals

# Runs the real command on `replicas` logical CPUs; with several, `distribute.create` is pointed at
# them (it picks GPUs otherwise). GPUs are hidden so that both runs use the same CPU kernels.
CLI_CHILD = """
import sys
import tensorflow as tf

replicas = int(sys.argv[1])
tf.config.set_visible_devices([], "GPU")
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
tf.config.experimental.enable_op_determinism()

from shadownet import cli
from shadownet.learn import distribute

if replicas > 1:
    create = distribute.create
    distribute.create = lambda **kwargs: create([f"/cpu:{i}" for i in range(replicas)], **kwargs)
sys.exit(cli.main(sys.argv[2:]))
"""

TRAIN_FLAGS = ("--model", "shadownet_small", "--log-every", "1", "--eval-every", "100", "--checkpoint-every", "2",
               "--warmup-steps", "1", "--shuffle-buffer", "64", "--augment", "false", "--regularization", "none",
               "--seed", "7", "--mixed-precision", "off",  # no dropout: its masks differ with the replicas
               *SUMMATION_ONLY)


def run_child(script: str, *args) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def train_cli(replicas: int, records_dir, model_dir, steps: int, batch_size: int) -> list[str]:
    result = run_child(CLI_CHILD, replicas, "train", "--tfrecords-dir", records_dir, "--model-dir", model_dir,
                       "--train-steps", steps, "--batch-size", batch_size, *TRAIN_FLAGS)
    return result.stdout.splitlines()


def logged(lines: list[str], key: str) -> dict[int, float]:
    """``{step: value}`` of ``key`` in the ``step=N key=value`` lines."""
    return {int(m.group(1)): float(m.group(2)) for line in lines
            if (m := re.match(rf"step=(\d+) {key}=(\S+)", line))}


def training_losses(model_dir, records_dir) -> np.ndarray:
    """Per-example CTC loss of the latest checkpoint over the whole train split, in a fixed order."""
    model, config, charset = load_model(model_dir, "latest")
    losses = []
    for inputs, targets in pipeline.eval_dataset(records_dir, "train", config):
        logits = model(inputs, training=False)
        lengths = shadownet_model.sequence_lengths(inputs["width"])
        losses.append(ctc.loss(targets["label"], targets["label_length"], logits, lengths, charset.blank_index))
    return np.concatenate(losses)


def largest_weight_difference(first_dir, second_dir) -> float:
    first, second = load_model(first_dir, "latest")[0], load_model(second_dir, "latest")[0]
    return max(float(np.max(np.abs(a - b))) for a, b in zip(first.get_weights(), second.get_weights(), strict=True))


@pytest.fixture(scope="module")
def records_dir(tmp_path_factory):
    return word_records(tmp_path_factory.mktemp("distribute"), 48, 40, 3, "--validation-ratio", "0.2",
                        varied_height=True)


@pytest.fixture(scope="module")
def runs(records_dir, tmp_path_factory):
    """4 steps on 2 replicas of 4 examples, and 4 steps on one device with the same global batch of 8."""
    root = tmp_path_factory.mktemp("runs")
    mirrored = train_cli(2, records_dir, root / "mirrored", steps=4, batch_size=4)
    single = train_cli(1, records_dir, root / "single", steps=4, batch_size=8)
    return SimpleNamespace(root=root, mirrored=mirrored, single=single)


@pytest.mark.slow
def test_two_replicas_train_as_one_device_on_the_same_global_batch(runs, records_dir):
    assert runs.mirrored[0] == "strategy=MirroredStrategy workers=1 replicas=2 mixed_precision=off"
    assert runs.single[0] == "strategy=DefaultDistributionStrategy workers=1 replicas=1 mixed_precision=off"

    # The logged loss is the global batch's mean, step by step.
    mirrored_losses, single_losses = logged(runs.mirrored, "loss"), logged(runs.single, "loss")
    assert sorted(mirrored_losses) == sorted(single_losses) == [1, 2, 3, 4]
    np.testing.assert_allclose([mirrored_losses[s] for s in range(1, 5)], [single_losses[s] for s in range(1, 5)],
                               atol=PRINTED_LOSS_ATOL)
    assert single_losses[4] < single_losses[1]  # it did train
    # Validation under the strategy runs on one copy of the weights and counts every sample once.
    assert logged(runs.mirrored, "validation_loss")[4] == pytest.approx(logged(runs.single, "validation_loss")[4],
                                                                        abs=PRINTED_LOSS_ATOL)

    # After 4 steps: the same weights (moving batch-norm statistics included) and the same losses.
    assert largest_weight_difference(runs.root / "mirrored", runs.root / "single") <= WEIGHT_ATOL
    np.testing.assert_allclose(training_losses(runs.root / "mirrored", records_dir),
                               training_losses(runs.root / "single", records_dir), rtol=LOSS_RTOL)


@pytest.mark.slow
def test_resume_under_the_strategy_finishes_at_exactly_train_steps(runs, records_dir, tmp_path):
    model_dir = tmp_path / "resumed"
    shutil.copytree(runs.root / "mirrored", model_dir)
    lines = train_cli(2, records_dir, model_dir, steps=6, batch_size=4)
    assert lines[0] == "strategy=MirroredStrategy workers=1 replicas=2 mixed_precision=off"
    assert lines[1].startswith("resumed from") and lines[1].endswith("at step 4")
    assert sorted(logged(lines, "loss")) == [5, 6]
    assert lines[-1].startswith("trained to step 6")

    checkpoint = tf.train.load_checkpoint(str(model_dir / "checkpoints" / "ckpt-6"))
    assert checkpoint.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE") == 6
    # 6, not 2: the optimizer resumed with its state.
    assert checkpoint.get_tensor("optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE") == 6
    assert sorted(p.name for p in (model_dir / "checkpoints").glob("ckpt-*.index")) == [
        "ckpt-2.index", "ckpt-4.index", "ckpt-6.index"]


# One step on a global batch of 3, cut 1 + 2, against one device on the same 3 examples from the
# same weights; then validation with both.
UNEVEN_CHILD = """
import json
import sys

import numpy as np
import tensorflow as tf

tf.config.set_visible_devices([], "GPU")
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
tf.config.experimental.enable_op_determinism()

from shadownet.learn import distribute, pipeline, read_records
from shadownet.config import TrainConfig
from shadownet.learn.tasks import RecognitionTask
from shadownet.learn.trainer import Trainer



def largest_difference(first, second):
    return max(float(np.max(np.abs(a - b))) for a, b in zip(first, second))


records_dir, work = sys.argv[1], sys.argv[2]
config = TrainConfig(model="shadownet_small", batch_size=2, augment=False, warmup_steps=1, mixed_precision="off")
charset = read_records.charset_of(read_records.read_manifest(records_dir))
inputs, targets = next(iter(pipeline.eval_dataset(records_dir, "validation", config, batch_size=3)))
batch = (inputs, {"label": targets["label"], "label_length": targets["label_length"]})

mirrored = Trainer(config, RecognitionTask(charset), work + "/mirrored", distribute.create(["/cpu:0", "/cpu:1"]))
single = Trainer(config, RecognitionTask(charset), work + "/single")
initial = mirrored.model.get_weights()
single.model.set_weights(initial)
# Whatever global batch size the trainer asks for, this batch of 3 is the one.
step = next(iter(mirrored.distribute_batches(lambda size, shard: tf.data.Dataset.from_tensors(batch))))
validation = pipeline.eval_dataset(records_dir, "validation", config)
print(json.dumps({
    "slices": [int(t.shape[0]) for t in mirrored.strategy.experimental_local_results(step[0]["width"])],
    "mirrored_loss": float(mirrored.train_step(*step)),
    "single_loss": float(single.train_step(*batch)),
    "weight_difference": largest_difference(mirrored.model.get_weights(), single.model.get_weights()),
    "weight_change": largest_difference(single.model.get_weights(), initial),
    "mirrored_validation": mirrored.evaluate(validation)[0],
    "single_validation": single.evaluate(validation)[0],
}))
"""


@pytest.mark.slow
def test_uneven_slices_and_validation_under_the_strategy(records_dir, tmp_path):
    result = json.loads(run_child(UNEVEN_CHILD, records_dir, tmp_path).stdout.splitlines()[-1])
    assert result["slices"] == [1, 2]
    assert result["mirrored_loss"] == pytest.approx(result["single_loss"], rel=LOSS_RTOL)
    assert result["weight_difference"] <= WEIGHT_ATOL < result["weight_change"]
    mirrored, single = result["mirrored_validation"], result["single_validation"]
    assert mirrored["samples"] == single["samples"] == 8
    assert mirrored["loss"] == pytest.approx(single["loss"], rel=LOSS_RTOL)


def as_batches(*sizes):
    """(inputs, targets) batches numbered 0, 1, ... across batches, of the given sizes."""
    start = 0
    for size in sizes:
        values = np.arange(start, start + size, dtype=np.int32)
        start += size
        yield {"width": values}, {"label_length": values * 10}


def test_split_batches_cuts_each_global_batch_into_one_slice_per_replica():
    spec = ({"width": tf.TensorSpec([None], tf.int32)}, {"label_length": tf.TensorSpec([None], tf.int32)})
    dataset = tf.data.Dataset.from_generator(lambda: as_batches(5, 1, 2, 3), output_signature=spec)
    slices = [(inputs["width"].tolist(), targets["label_length"].tolist())
              for inputs, targets in distribute.split_batches(dataset, 2).as_numpy_iterator()]
    # 5 -> 2 + 3; 1 has fewer examples than replicas and is left out; 2 -> 1 + 1; 3 -> 1 + 2.
    assert [widths for widths, _ in slices] == [[0, 1], [2, 3, 4], [6], [7], [8], [9, 10]]
    assert all(lengths == [10 * w for w in widths] for widths, lengths in slices)
    assert distribute.split_batches(dataset, 1) is dataset


def test_default_strategy_and_its_description():
    assert distribute.create([]) is tf.distribute.get_strategy()
    assert distribute.create(["/cpu:0"]) is tf.distribute.get_strategy()
    assert str(distribute.describe(tf.distribute.get_strategy())) == \
        "strategy=DefaultDistributionStrategy workers=1 replicas=1"


def test_description_counts_the_workers_of_a_cluster():
    class MultiWorkerMirroredStrategy:  # as a multi-worker strategy presents itself
        num_replicas_in_sync = 6
        cluster_resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
            tf.train.ClusterSpec({"chief": ["a:2222"], "worker": ["b:2222", "c:2222"]}))

    description = distribute.describe(MultiWorkerMirroredStrategy())
    assert str(description) == "strategy=MultiWorkerMirroredStrategy workers=3 replicas=6"


def test_learning_rate_scales_with_the_replicas_only_when_asked():
    base = dict(learning_rate=0.01, lr_schedule="constant", warmup_steps=0)
    assert coerce("scale_learning_rate", "True") is True
    assert float(make_optimizer(TrainConfig(**base), replicas=4).learning_rate) == pytest.approx(0.01)
    scaled = make_optimizer(TrainConfig(**base, scale_learning_rate=True), replicas=4)
    assert float(scaled.learning_rate) == pytest.approx(0.04)


def test_train_help_says_batch_size_is_per_replica():
    result = run_cli("train", "--help", check=True)
    assert "batch_size x replicas" in " ".join(result.stdout.split())
    assert "--scale-learning-rate" in result.stdout


def fake_strategy(name: str, jobs: dict, task_type: str, task_id: int):
    """An object presenting itself as a multi-worker strategy of class ``name`` does."""
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec(jobs), task_type=task_type, task_id=task_id)
    return type(name, (), {"num_replicas_in_sync": 2, "cluster_resolver": resolver})()


def test_multi_worker_strategy_is_named_as_exported_and_the_chief_is_found():
    # tf.distribute.MultiWorkerMirroredStrategy's class is CollectiveAllReduceStrategy.
    workers = {"worker": ["a:1", "b:1"]}
    first, second = (fake_strategy("CollectiveAllReduceStrategy", workers, "worker", i) for i in (0, 1))
    assert str(distribute.describe(first)) == "strategy=MultiWorkerMirroredStrategy workers=2 replicas=2"
    assert (distribute.is_chief(first), distribute.is_chief(second), distribute.workers(second)) == (True, False, 2)
    with_chief = {"chief": ["c:1"], "worker": ["a:1"]}
    assert distribute.is_chief(fake_strategy("CollectiveAllReduceStrategy", with_chief, "chief", 0))
    assert not distribute.is_chief(fake_strategy("CollectiveAllReduceStrategy", with_chief, "worker", 0))
    assert distribute.is_chief(tf.distribute.get_strategy()) and distribute.workers(tf.distribute.get_strategy()) == 1


def test_a_lost_worker_is_told_in_one_line():
    error = tf.errors.UnavailableError(None, None, "Graph execution error:\n\nDetected at node adam/Collective\n"
                                                   "  File x.py\n\nCollective ops is aborted by: recvmsg:Connection "
                                                   "reset by peer\nThe error could be from a previous operation.")
    lost = distribute.worker_lost(error, 600)
    assert lost.exit_code == 143 and "\n" not in str(lost)
    assert str(lost).startswith("another training worker failed or stopped answering (UnavailableError: "
                                "Collective ops is aborted by: recvmsg:Connection reset by peer); stopping.")
    late = distribute.worker_lost(tf.errors.DeadlineExceededError(None, None, "Collective timed out"), 60)
    assert "no answer within worker_timeout_seconds=60" in str(late)
