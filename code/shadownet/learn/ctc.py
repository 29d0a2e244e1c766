"""CTC loss and decoding, with the blank index stated explicitly everywhere.

shadownet's blank is the LAST class (``Charset.blank_index == num_classes - 1``). TF2's
``tf.nn.ctc_loss`` takes ``blank_index`` (a naive port leaves it at 0 and silently trains
class 0 as the blank), ``tf.nn.ctc_beam_search_decoder`` always uses the last class; both
are pinned by tests.

Shapes: logits [batch, time, classes] (batch-major), lengths [batch] int32 valid time steps.
Confidence is the per-step geometric mean probability of the decoded path,
``exp(log p / valid steps)``, in [0, 1] and comparable across lengths.
"""

from __future__ import annotations

import tensorflow as tf


def loss(labels, label_lengths, logits, logit_lengths, blank_index: int, dense: bool = False):
    """Per-sample CTC negative log-likelihood [batch], computed in float32; infinite for a label that the
    time steps cannot hold (its characters plus its adjacent repeats outnumber them).

    ``labels`` [batch, max_label] int32 (padding past ``label_lengths`` is ignored).

    TensorFlow's CTC kernel (``tf.compat.v1.nn.ctc_loss``, sparse labels) computes it; ``tf.nn.ctc_loss`` with
    dense labels builds the same sums from graph ops, about 8x slower on a CPU for 40-character labels over 200
    time steps (0.57 s against 0.07 s a batch of 64, the same gradients to 1e-5). That one is used where ``dense``
    asks for it (the training step under XLA, which cannot compile the kernel), and with a blank that is not the
    last class.
    """
    labels, logits = tf.cast(labels, tf.int32), tf.cast(logits, tf.float32)
    label_lengths, logit_lengths = tf.cast(label_lengths, tf.int32), tf.cast(logit_lengths, tf.int32)
    classes = logits.shape[-1]
    if dense or classes is None or blank_index != classes - 1:
        losses = tf.nn.ctc_loss(labels=labels, logits=logits, label_length=label_lengths,
                                logit_length=logit_lengths, logits_time_major=False, blank_index=blank_index)
    else:  # the kernel's blank is the last class
        sparse = tf.RaggedTensor.from_tensor(labels, lengths=label_lengths).to_sparse()
        losses = tf.compat.v1.nn.ctc_loss(sparse, logits, logit_lengths, preprocess_collapse_repeated=False,
                                          ctc_merge_repeated=True, ignore_longer_outputs_than_inputs=True,
                                          time_major=False)
    # A label the steps cannot hold: the kernel gives 0, the graph a large finite number; its likelihood is 0
    # (what evaluation leaves out of its mean, and no gradient).
    return tf.where(min_time_steps(labels, label_lengths) > logit_lengths, tf.constant(float("inf")), losses)


def min_time_steps(labels, lengths):
    """The fewest time steps that can hold each label: its characters plus its adjacent repeats (a blank must
    separate two equal characters)."""
    valid = tf.sequence_mask(lengths - 1, tf.shape(labels)[1] - 1)
    repeats = tf.reduce_sum(tf.cast(tf.equal(labels[:, 1:], labels[:, :-1]) & valid, tf.int32), axis=1)
    return lengths + repeats


def greedy(logits, lengths, blank_index: int):
    """Best class per step, repeats merged, blanks and padding dropped.

    Returns (ids: RaggedTensor [batch, None] int32, confidence [batch] float32).
    """
    logits = tf.cast(logits, tf.float32)
    steps = tf.shape(logits)[1]
    valid = tf.sequence_mask(lengths, steps)
    best = tf.argmax(logits, axis=-1, output_type=tf.int32)
    previous = tf.pad(best[:, :-1], [[0, 0], [1, 0]], constant_values=-1)
    keep = valid & tf.not_equal(best, blank_index) & tf.not_equal(best, previous)
    ids = tf.ragged.boolean_mask(best, keep)
    log_max = tf.reduce_max(tf.nn.log_softmax(logits, axis=-1), axis=-1)
    path_log_prob = tf.reduce_sum(tf.where(valid, log_max, 0.0), axis=1)
    return ids, _confidence(path_log_prob, lengths)


def beam(logits, lengths, blank_index: int, beam_width: int = 10, top_paths: int = 1):
    """CTC beam search (``tf.nn.ctc_beam_search_decoder``, whose blank is the last class).

    Returns (ids: list of ``top_paths`` RaggedTensors [batch, None] int32, log_probs [batch, top_paths],
    confidence of the best path [batch]).
    """
    logits = tf.cast(logits, tf.float32)
    classes = logits.shape[-1]
    if classes is not None and blank_index != classes - 1:
        raise ValueError(f"beam search needs the blank last (index {classes - 1}), not {blank_index}")
    decoded, log_probs = tf.nn.ctc_beam_search_decoder(
        tf.transpose(logits, [1, 0, 2]), tf.cast(lengths, tf.int32), beam_width=beam_width, top_paths=top_paths
    )
    batch = tf.shape(logits)[0]
    paths = []
    for sparse in decoded:
        dense_shape = tf.stack([tf.cast(batch, tf.int64), sparse.dense_shape[1]])
        sparse = tf.SparseTensor(sparse.indices, tf.cast(sparse.values, tf.int32), dense_shape)
        paths.append(tf.RaggedTensor.from_sparse(sparse))
    return paths, log_probs, _confidence(log_probs[:, 0], lengths)


def to_text(ids, characters):
    """RaggedTensor of class ids -> string tensor [batch], via a table of ``characters``."""
    return tf.strings.reduce_join(tf.gather(characters, ids), axis=-1)


def _confidence(log_prob, lengths):
    steps = tf.maximum(tf.cast(lengths, tf.float32), 1.0)
    return tf.exp(log_prob / steps)
