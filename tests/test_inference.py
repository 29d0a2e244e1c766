"""The frozen inference function (what exports run) against the Keras model it was made from."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from shadownet.errors import ShadownetError
from shadownet.learn import inference
from shadownet.learn import model as shadownet_model

WIDTHS = [100, 37, 64, 93, 8]


@pytest.fixture(scope="module")
def keras_model() -> keras.Model:
    """shadownet_small with every weight random, batch-norm statistics included (so folding them is tested)."""
    keras.utils.set_random_seed(5)
    model = shadownet_model.build("shadownet_small", 11)
    rng = np.random.default_rng(5)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            for variable in layer.weights:
                variable.assign(rng.uniform(0.5, 1.5, variable.shape).astype("float32"))
        if isinstance(layer, keras.layers.Dense):  # large output weights: varied best classes per step
            layer.kernel.assign(rng.normal(0, 30.0, layer.kernel.shape).astype("float32"))
    return model


def batch() -> tuple[tf.Tensor, tf.Tensor]:
    images = np.random.default_rng(1).uniform(-1, 1, (len(WIDTHS), 32, max(WIDTHS), 3)).astype("float32")
    for i, width in enumerate(WIDTHS):
        images[i, :, width:] = 0  # padding, as the pipeline makes it
    return tf.constant(images), tf.constant(WIDTHS, tf.int32)


def valid_steps(logits: np.ndarray):
    for i, width in enumerate(WIDTHS):
        yield i, logits[i, : width // 4]


def test_float32_matches_keras_on_every_valid_step(keras_model):
    images, widths = batch()
    expected = keras_model({"image": images, "width": widths}, training=False).numpy()
    frozen = tf.function(inference.freeze(keras_model, "float32"))(images, widths).numpy()
    assert frozen.shape == expected.shape
    for i, steps in valid_steps(frozen):
        np.testing.assert_allclose(steps, expected[i, : WIDTHS[i] // 4], atol=2e-4, rtol=1e-5)
    best = expected.argmax(-1)
    assert len(np.unique(best[0, :25])) >= 3  # the comparison is between varied outputs


def test_each_image_alone_gives_its_batched_result(keras_model):
    images, widths = batch()
    forward = tf.function(inference.freeze(keras_model, "float32"))
    together = forward(images, widths).numpy()
    for i, width in enumerate(WIDTHS):
        alone = forward(images[i : i + 1, :, :width], widths[i : i + 1]).numpy()
        # A padding leak moves logits by whole units; what a batch's shape changes is summation order: up to
        # 5e-5 on these logits of magnitude up to ~75 on an AVX2-only CPU (float32), less with AVX512.
        np.testing.assert_allclose(alone[0, : width // 4], together[i, : width // 4], atol=1e-4, rtol=1e-6)


def test_bfloat16_stays_close(keras_model):
    images, widths = batch()
    expected = keras_model({"image": images, "width": widths}, training=False).numpy()
    frozen = tf.function(inference.freeze(keras_model, "bfloat16"))(images, widths).numpy()
    assert frozen.dtype == np.float32
    same = np.concatenate([steps.argmax(-1) == expected[i, : WIDTHS[i] // 4].argmax(-1)
                           for i, steps in valid_steps(frozen)])
    assert same.mean() >= 0.9, same  # random weights leave near ties that rounding may flip
    scale = np.abs(expected).max()
    for i, steps in valid_steps(frozen):
        assert np.abs(steps - expected[i, : WIDTHS[i] // 4]).max() < 0.05 * scale


def test_weights_are_graph_constants(keras_model):
    """Constants (not variables) are what lets oneDNN reorder a filter once; batch norm is folded away."""
    graph = tf.function(inference.freeze(keras_model, "bfloat16")).get_concrete_function(
        tf.TensorSpec([None, 32, None, 3], tf.float32), tf.TensorSpec([None], tf.int32)).graph.as_graph_def()
    nodes = list(graph.node) + [n for f in graph.library.function for n in f.node_def]
    ops = {n.op for n in nodes}
    assert not ops & {"ReadVariableOp", "VarHandleOp", "FusedBatchNormV3"}
    filters = [n for n in nodes if n.op == "Const" and len(n.attr["value"].tensor.tensor_shape.dim) == 4]
    assert len(filters) == 7 and all(n.attr["dtype"].type == tf.bfloat16.as_datatype_enum for n in filters)


def test_unknown_layers_and_precisions_are_refused():
    inputs = keras.Input((32, None, 3))
    odd = keras.Model(inputs, keras.layers.Dropout(0.5, name="dropout")(inputs))
    with pytest.raises(ShadownetError, match="cannot export layer 'dropout'"):
        inference.freeze(odd)
    with pytest.raises(ShadownetError, match="precision must be one of"):
        inference.freeze(odd, "float16")
