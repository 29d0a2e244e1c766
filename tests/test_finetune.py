"""Fine-tuning: --init-from another run, the output layer rebuilt by character, --freeze conv, resume, bad input."""

from __future__ import annotations

import json
import shutil
import signal

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import Dataset, run_cli, words
from shadownet.config import TrainConfig
from shadownet.data.charset import Charset
from shadownet.errors import ShadownetError
from shadownet.learn import finetune, run_dir
from shadownet.learn import model as shadownet_model
from shadownet.learn.finetune import Parent
from test_preemption import start, wait_for_step

TRAIN = ["--batch-size", "4", "--log-every", "1", "--warmup-steps", "2", "--shuffle-buffer", "64"]


def tiny_parent(characters: str, seed: int = 1) -> Parent:
    keras.utils.set_random_seed(seed)
    charset = Charset(tuple(characters))
    model = shadownet_model.build("shadownet_small", charset.num_classes)
    return Parent("parent", TrainConfig(), charset, model, step=7)


def test_the_output_layer_is_rebuilt_by_character_and_the_rest_copied():
    parent = tiny_parent("abcd")  # blank 4
    keras.utils.set_random_seed(2)
    charset = Charset(tuple("bxc"))  # b 0 (was 1), x 1 (new), c 2 (same index), blank 3 (was 4)
    model = shadownet_model.build("shadownet_small", charset.num_classes)
    fresh_kernel = model.get_layer("logits").get_weights()[0].copy()
    kept = finetune.transfer(parent, model, charset)
    assert kept == {"kept": 2, "added": ["x"], "dropped": ["a", "d"]}
    assert finetune.describe(kept) == "kept 2 classes, added 1, dropped 2; added: 'x'; dropped: 'a' 'd'"

    old_kernel, old_bias = parent.model.get_layer("logits").get_weights()
    kernel, bias = model.get_layer("logits").get_weights()
    assert kernel.shape == (old_kernel.shape[0], 4) and bias.shape == (4,)
    for new, old in ((0, 1), (2, 2), (3, 4)):  # b, c and the blank, bit for bit
        assert np.array_equal(kernel[:, new], old_kernel[:, old]) and bias[new] == old_bias[old]
    # x, new: the mean of the old rows plus its own fresh row scaled to an L1 norm of 0.5; the bias one lower.
    part = kernel[:, 1] - old_kernel[:, :4].mean(axis=1)
    assert np.allclose(part, fresh_kernel[:, 1] * 0.5 / np.abs(fresh_kernel[:, 1]).sum(), atol=1e-6)
    assert np.isclose(bias[1], old_bias[:4].mean() - 1.0)
    for layer in model.layers:
        if layer.weights and layer.name != "logits":
            theirs_all = parent.model.get_layer(layer.name).get_weights()
            for mine, theirs in zip(layer.get_weights(), theirs_all, strict=True):
                assert np.array_equal(mine, theirs), layer.name


def test_a_new_character_whose_other_case_the_parent_knows_starts_from_that_row():
    parent = tiny_parent("abcd")
    keras.utils.set_random_seed(3)
    charset = Charset(tuple("abBx"))  # B: a new capital of a known b; x: new with no other case
    model = shadownet_model.build("shadownet_small", charset.num_classes)
    fresh_kernel = model.get_layer("logits").get_weights()[0].copy()
    finetune.transfer(parent, model, charset)
    old_kernel, old_bias = parent.model.get_layer("logits").get_weights()
    kernel, bias = model.get_layer("logits").get_weights()
    scale = 0.5 / np.abs(fresh_kernel[:, 2]).sum()
    assert np.allclose(kernel[:, 2] - old_kernel[:, 1], fresh_kernel[:, 2] * scale, atol=1e-6)  # B from b
    assert np.isclose(bias[2], old_bias[1] - 1.0)
    assert np.allclose(kernel[:, 3] - old_kernel[:, :4].mean(axis=1),
                       fresh_kernel[:, 3] * 0.5 / np.abs(fresh_kernel[:, 3]).sum(), atol=1e-6)  # x from the mean
    assert not np.allclose(kernel[:, 2], kernel[:, 1])  # B and b stay apart


def test_zero_steps_of_fine_tuning_read_as_the_parent_on_kept_characters():
    parent = tiny_parent("0123456789abcdefghijklmnopqrstuvwxyz")
    charset = Charset(tuple("0123456789abcdefghijklmnopqrstuvwxyzABC"))
    model = shadownet_model.build("shadownet_small", charset.num_classes)
    finetune.transfer(parent, model, charset)
    rng = np.random.default_rng(0)
    inputs = {"image": rng.uniform(-1, 1, (3, 32, 64, 3)).astype("float32"), "width": np.array([64, 40, 24])}
    old, new = parent.model(inputs).numpy(), model(inputs).numpy()
    # The kept classes' and the blank's scores are the parent's to the bit: the network before them is the same.
    assert np.array_equal(new[..., :36], old[..., :36]) and np.array_equal(new[..., -1], old[..., -1])
    lengths = shadownet_model.sequence_lengths(inputs["width"])
    from shadownet.learn import ctc

    old_ids, _ = ctc.greedy(tf.constant(old), lengths, 36)
    new_ids, _ = ctc.greedy(tf.constant(new), lengths, 39)
    assert old_ids.to_list() == new_ids.to_list()


def test_freeze_conv_stops_the_convolutions_only():
    model = shadownet_model.build("shadownet_small", 5)
    shadownet_model.freeze(model, "conv")
    frozen = {layer.name for layer in model.layers if layer.weights and not layer.trainable}
    assert frozen == {f"conv{i}" for i in range(1, 8)} | {"bn5", "bn6"}
    assert {layer.name for layer in model.layers if layer.trainable_weights} == {"bilstm1", "bilstm2", "logits"}


def test_architecture_comes_from_the_parent_and_a_contradiction_is_refused():
    parent = TrainConfig(model="shadownet", input_mode="fixed", max_width=128)
    child = finetune.inherit(TrainConfig(learning_rate=0.01), frozenset({"learning_rate"}), parent, "RUN")
    assert (child.model, child.input_mode, child.max_width, child.learning_rate) == ("shadownet", "fixed", 128, 0.01)
    assert finetune.inherit(TrainConfig(model="shadownet"), frozenset({"model"}), parent, "RUN").model == "shadownet"
    with pytest.raises(ShadownetError, match="model: RUN is a model=shadownet run, and this run sets "
                                        "model=shadownet_small"):
        finetune.inherit(TrainConfig(), frozenset({"model"}), parent, "RUN")


# -- end to end: the command as a user runs it ----------------------------------------------------------


def mixed_case_records(root, count=24):
    # Sorted: the capitals come before the lowercase letters, so every kept letter's index moves.
    charset = Charset.from_text("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    ds = Dataset(root / "dataset", charset)
    for i, word in enumerate(words(count, seed=4)):
        ds.sample("Train" if i < 18 else "Test", f"img/{i}.jpg", word[:1].upper() + word[1:] if i % 2 else word)
    ds.write()
    run_cli("tfrecords", "--dataset-dir", ds.root, "--save-dir", root / "records", "--workers", "1", check=True)
    return root / "records"


@pytest.fixture(scope="module")
def parent_run(tmp_path_factory):
    """A 4-step shadownet_small run on lowercase words (36 classes) and mixed-case records (62)."""
    from conftest import word_records

    root = tmp_path_factory.mktemp("finetune")
    records = word_records(root / "lower", 24, 18, 3, "--workers", "1")
    run_cli("train", "--tfrecords-dir", records, "--model-dir", root / "parent", "--train-steps", 4,
            "--eval-every", 4, "--model", "shadownet_small", *TRAIN, check=True)
    return root / "parent", mixed_case_records(root / "mixed")


@pytest.mark.slow
def test_init_from_a_run_onto_another_charset_then_sigterm_and_resume(parent_run, tmp_path):
    parent = shutil.copytree(parent_run[0], tmp_path / "parent")  # removed below
    records = parent_run[1]
    model_dir = tmp_path / "child"
    args = ["--tfrecords-dir", records, "--model-dir", model_dir, "--init-from", parent, "--train-steps", 30,
            "--checkpoint-every", 1000, "--eval-every", 1000, *TRAIN]
    process = start(*args)
    lines = wait_for_step(process, 2)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 143, err
    assert any(f"initialised from {parent} (step 4): kept 36 classes, added 26, dropped 0; "
               "added: 'A' 'B' 'C' 'D' 'E' 'F' 'G' 'H' 'I' 'J' ..." in line for line in lines), lines
    assert "step=1 loss=" in "".join(lines)  # a new run: its own steps from 0, a fresh schedule
    stopped = int(err.split("stopped at step ")[1].split()[0])
    recorded = json.loads((model_dir / "config.json").read_text())
    assert recorded["parent"] == {"run": str(parent), "checkpoint": "best", "step": 4,
                                  "charset_sha256": Charset(tuple("0123456789abcdefghijklmnopqrstuvwxyz")).sha256}
    assert recorded["model"] == "shadownet_small" and recorded["init_from"] == str(parent)

    shutil.rmtree(parent)  # the rerun resumes its own checkpoint: it does not read the parent again
    resumed = run_cli("train", *args, check=True)
    assert "initialised from" not in resumed.stdout
    assert f"step={stopped + 1} " in resumed.stdout and "trained to step 30" in resumed.stdout
    assert json.loads((model_dir / "config.json").read_text())["parent"] == recorded["parent"]


@pytest.mark.slow
def test_freeze_conv_leaves_the_convolutions_bit_identical(parent_run, tmp_path):
    parent, records = parent_run
    run_cli("train", "--tfrecords-dir", records, "--model-dir", tmp_path / "frozen", "--init-from", parent,
            "--freeze", "conv", "--train-steps", 6, "--eval-every", 6, *TRAIN, check=True)
    before, _, _ = run_dir.load_model(parent, "best")
    after, _, _ = run_dir.load_model(tmp_path / "frozen", "latest")

    def same(name: str) -> bool:
        return all(np.array_equal(x, y) for x, y in zip(before.get_layer(name).get_weights(),
                                                        after.get_layer(name).get_weights(), strict=True))

    conv = [layer.name for layer in before.layers if layer.name.startswith(("conv", "bn"))]
    assert len(conv) == 9 and all(same(name) for name in conv)  # batch-norm statistics included
    assert not same("bilstm1") and not same("bilstm2")


@pytest.mark.slow
def test_an_explicit_other_architecture_or_a_foreign_run_dir_is_refused(parent_run, tmp_path):
    parent, records = parent_run
    clash = run_cli("train", "--tfrecords-dir", records, "--model-dir", tmp_path / "a", "--init-from", parent,
                    "--model", "shadownet", "--train-steps", 2)
    assert clash.returncode == 2 and "model=shadownet_small run, and this run sets model=shadownet" in clash.stderr
    assert not (tmp_path / "a").exists() or not any((tmp_path / "a").iterdir())
    foreign = run_cli("train", "--tfrecords-dir", records, "--model-dir", parent, "--init-from", tmp_path / "x",
                      "--train-steps", 2)
    assert foreign.returncode == 2 and "already holds checkpoints of its own (trained from scratch)" in foreign.stderr


def broken(parent, tmp_path, how):
    copy = tmp_path / how
    shutil.copytree(parent, copy)
    if how == "no-checkpoint":
        shutil.rmtree(copy / "checkpoints"), shutil.rmtree(copy / "best")
    elif how == "other-architecture":
        config = json.loads((copy / "config.json").read_text())
        (copy / "config.json").write_text(json.dumps(dict(config, model="shadownet")))
    elif how == "corrupt":
        for data in copy.glob("*/ckpt-*.data-*"):
            data.write_bytes(data.read_bytes()[:100])
    elif how == "charset":
        (copy / "charset.json").write_text("{not json")
    return copy


@pytest.mark.slow
@pytest.mark.parametrize("how, message", [
    ("missing", "no config.json; is this the --model-dir of a training run?"),
    ("no-checkpoint", "no checkpoint found"),
    ("other-architecture", "does not hold a shadownet with 37 outputs"),
    ("corrupt", "cannot be read"),
    ("charset", "charset.json: not JSON"),
])
def test_a_bad_parent_is_one_line_and_nothing_is_written(parent_run, tmp_path, how, message):
    parent, records = parent_run
    source = tmp_path / "nowhere" if how == "missing" else broken(parent, tmp_path, how)
    model_dir = tmp_path / "child"
    result = run_cli("train", "--tfrecords-dir", records, "--model-dir", model_dir, "--init-from", source,
                     "--train-steps", 2)
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("shadownet: error:")]
    assert len(errors) == 1 and f"--init-from {source}" in errors[0] and message in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not model_dir.exists() or not any(model_dir.iterdir())


@pytest.mark.slow
def test_init_from_an_s3_prefix(parent_run, s3, bucket, tmp_path):
    from shadownet.cloud.storage import ObjectStore, S3Url, StorageConfig

    parent, records = parent_run
    ObjectStore(StorageConfig(endpoint_url=s3.endpoint)).publish(parent, S3Url(bucket, "runs/parent"))
    remote = f"s3://{bucket}/runs/parent"
    result = run_cli("train", "--tfrecords-dir", records, "--model-dir", tmp_path / "child", "--init-from", remote,
                     "--train-steps", 2, "--eval-every", 2, "--s3-endpoint-url", s3.endpoint,
                     "--scratch-dir", tmp_path / "scratch", *TRAIN, check=True)
    assert f"initialised from {remote} (step 4): kept 36 classes, added 26" in result.stdout
    assert json.loads((tmp_path / "child" / "config.json").read_text())["parent"]["run"] == remote
