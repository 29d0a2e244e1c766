"""Model, CTC arithmetic and configuration: tiny shapes, exact values."""

import json

import numpy as np
import pytest
import tensorflow as tf

from shadownet.config import TrainConfig, coerce, load
from shadownet.data.charset import Charset
from shadownet.errors import ShadownetError
from shadownet.learn import ctc, model

CHARSET = Charset.from_preset("digits_lower")


def test_full_shadownet_has_the_original_size():
    full = model.build("shadownet", CHARSET.num_classes)
    assert CHARSET.num_classes == 37
    assert full.count_params() == 8_721_829
    names = {layer.name for layer in full.layers}
    assert {"conv1", "conv7", "bn5", "bn6", "bilstm1", "bilstm2", "logits"} <= names
    small = model.build("shadownet_small", CHARSET.num_classes)
    assert small.count_params() < full.count_params() / 3


def test_output_shape_and_time_steps():
    net = model.build("shadownet_small", 37)
    logits = net({"image": tf.zeros([2, 32, 100, 3]), "width": tf.constant([100, 40])})
    assert logits.shape == (2, 25, 37) and logits.dtype == tf.float32
    assert model.sequence_lengths(tf.constant([100, 40, 7])).numpy().tolist() == [25, 10, 1]


@pytest.mark.parametrize("width", [44, 93, 94, 95])
def test_padding_never_changes_an_image_reading(width):
    net = model.build("shadownet_small", 37)
    rng = np.random.default_rng(0)
    narrow = rng.uniform(-1, 1, size=(1, 32, width, 3)).astype("float32")
    batch = rng.uniform(-1, 1, size=(2, 32, 112, 3)).astype("float32")  # garbage in the padding
    batch[0, :, :width] = narrow[0]
    alone = net({"image": tf.constant(narrow), "width": tf.constant([width])})[0].numpy()
    together = net({"image": tf.constant(batch), "width": tf.constant([width, 112])})[0, : width // 4].numpy()
    assert alone.shape[0] == width // 4
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_serialization_round_trip(tmp_path):
    net = model.build("shadownet_small", 11)
    path = tmp_path / "m.keras"
    net.save(path)
    import keras

    again = keras.saving.load_model(path)
    x = {"image": tf.random.uniform([1, 32, 40, 3], -1, 1), "width": tf.constant([40])}
    np.testing.assert_allclose(again(x).numpy(), net(x).numpy(), atol=1e-6)


def one_hot_logits(path, classes, confidence=10.0):
    """Logits [1, T, classes] whose argmax follows ``path``."""
    logits = np.zeros((1, len(path), classes), dtype=np.float32)
    logits[0, np.arange(len(path)), path] = confidence
    return tf.constant(logits)


def test_blank_is_the_last_class_in_loss_and_decoders():
    blank = CHARSET.blank_index  # 36
    a, b = CHARSET.encode("a")[0], CHARSET.encode("b")[0]
    # a a blank a b -> "aab": the blank separates the repeated a's.
    logits = one_hot_logits([a, a, blank, a, b], CHARSET.num_classes)
    ids, confidence = ctc.greedy(logits, tf.constant([5]), blank)
    assert CHARSET.decode(ids[0].numpy()) == "aab"
    assert 0.99 < float(confidence[0]) <= 1.0
    paths, log_probs, _ = ctc.beam(logits, tf.constant([5]), blank)
    assert CHARSET.decode(paths[0][0].numpy()) == "aab"

    label = tf.constant([CHARSET.encode("aab")])
    right = ctc.loss(label, [3], logits, [5], blank)
    wrong_blank = ctc.loss(label, [3], logits, [5], 0)  # a naive port's blank_index=0
    assert float(right[0]) < 0.01
    assert float(wrong_blank[0]) > 10.0


def test_the_ctc_kernel_and_the_dense_graph_give_the_same_losses_and_gradients():
    """The kernel (sparse labels, the default) and tf.nn.ctc_loss on dense labels (training): the same values and
    gradients, padding ignored, and infinity where the steps cannot hold a label (6 steps for 'aab' + 'aa' + ...)."""
    rng = np.random.default_rng(0)
    classes = CHARSET.num_classes
    texts = ["aab", "hello", "x", "zzzz", "abcdefgh", "aaaaaaa"]
    labels = tf.ragged.constant([CHARSET.encode(t) for t in texts]).to_tensor()
    label_lengths = tf.constant([len(t) for t in texts])
    logit_lengths = tf.constant([9, 12, 3, 7, 12, 6])  # 'aaaaaaa' needs 13 steps: impossible in 6
    logits = tf.Variable(rng.normal(0, 2, (len(texts), 12, classes)).astype("float32"))
    results = []
    for dense in (False, True):
        with tf.GradientTape() as tape:
            losses = ctc.loss(labels, label_lengths, logits, logit_lengths, CHARSET.blank_index, dense=dense)
            finite = tf.reduce_sum(tf.where(tf.math.is_finite(losses), losses, 0.0))
        results.append((losses.numpy(), tape.gradient(finite, logits).numpy()))
    (kernel, kernel_grad), (dense, dense_grad) = results
    assert np.isinf(kernel[5]) and np.isinf(dense[5])
    assert np.all(np.isfinite(kernel[:5])) and np.all(kernel[:5] > 0)
    np.testing.assert_allclose(kernel[:5], dense[:5], rtol=1e-4)
    np.testing.assert_allclose(kernel_grad, dense_grad, atol=1e-4)
    assert np.abs(kernel_grad[5]).max() == 0.0 and np.abs(kernel_grad[2, 3:]).max() == 0.0  # nothing past a length
    assert ctc.min_time_steps(labels, label_lengths).numpy().tolist() == [4, 6, 1, 7, 8, 13]


def test_greedy_ignores_steps_past_the_length():
    blank = CHARSET.blank_index
    logits = one_hot_logits([1, blank, 2, 3, 4], CHARSET.num_classes)
    ids, _ = ctc.greedy(logits, tf.constant([3]), blank)
    assert ids[0].numpy().tolist() == [1, 2]


def test_beam_refuses_a_blank_that_is_not_last():
    with pytest.raises(ValueError, match="blank last"):
        ctc.beam(tf.zeros([1, 4, 5]), tf.constant([4]), blank_index=0)


def test_config_coerces_platform_strings():
    assert coerce("train_steps", "1200") == 1200
    assert coerce("train_steps", "1e3") == 1000
    assert coerce("learning_rate", "0.01") == 0.01
    assert coerce("augment", "False") is False and coerce("xla", "true") is True
    assert coerce("optimizer", '"adadelta"') == "adadelta"  # SageMaker's double encoding
    for key, value, message in [
        ("train_steps", "12.5", "whole number"),
        ("augment", "maybe", "true or false"),
        ("learning_rate", "fast", "a number"),
        ("bogus_key", "1", "unknown setting 'bogus_key'"),
    ]:
        with pytest.raises(ShadownetError, match=message):
            coerce(key, value)
    with pytest.raises(ShadownetError, match="optimizer must be one of"):
        TrainConfig(optimizer="sgd")
    with pytest.raises(ShadownetError, match="max_width must be a multiple of 4"):
        TrainConfig(max_width=130)


def test_config_precedence_file_then_flags(tmp_path):
    (tmp_path / "c.yaml").write_text("train_steps: 300\nbatch_size: '16'\noptimizer: adadelta\n")
    config = load(tmp_path / "c.yaml", {"train_steps": "50"})
    assert (config.train_steps, config.batch_size, config.optimizer) == (50, 16, "adadelta")
    assert config.learning_rate == TrainConfig().learning_rate
    (tmp_path / "bad.json").write_text(json.dumps({"train_stepz": 3}))
    with pytest.raises(ShadownetError, match="bad.json"):
        load(tmp_path / "bad.json")
    (tmp_path / "broken.yaml").write_text("a: [\n")
    with pytest.raises(ShadownetError, match=r"broken.yaml:\d+: malformed YAML"):
        load(tmp_path / "broken.yaml")
