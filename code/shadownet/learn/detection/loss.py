"""DBNet's loss (Liao et al., AAAI 2020), in ``keras.ops``: runs in the TensorFlow training step, in a
``tf.function``, under XLA and on each replica alike (no data-dependent shapes).

    L = L_s + alpha * L_b + beta * L_t,   alpha = 1, beta = 10 (the paper's weights)

* L_s, the probability map: binary cross-entropy with online hard-negative mining. Every positive pixel
  (``gt`` inside ``mask``) counts, and of the negatives (outside ``gt``, inside ``mask``) only the ``k`` of
  highest loss, k = min(negatives, 3 x positives); L_s is their summed loss over (positives + k). With no
  positive in the batch (empty pages), k = min(negatives, 100) instead: DBNet's reference takes none there
  and its loss is 0, so an empty page would teach nothing; the 100 hardest negatives keep pushing false
  alarms down.
* L_b, the approximate binary map (``model.binary_map`` of the two outputs): dice loss against ``gt`` over
  ``mask``, 1 - 2 |B gt| / (|B| + |gt|). With no positive in the batch it is 1 (the ratio is 0) and gives
  no gradient.
* L_t, the threshold map: mean absolute error against ``thresh`` over the pixels of ``thresh_mask``.

All three are taken over the whole batch at once, as in DBNet's reference, not per image and averaged: a
page with much text lends its quota of hard negatives to the batch's other pages, and a large page weighs
more than a small one. With several replicas each computes the loss of its own slice; the mean of the
replicas' losses (each divided by the number of replicas before the gradients are summed) stands for the
global batch's.

Pixel counts are floats (``gt`` and the masks are 0/1 maps), and every ratio has ``EPS`` under it, so an
all-masked batch gives 0, not NaN.
"""

from __future__ import annotations

from keras import ops

from .model import binary_map

ALPHA = 1.0  # the binary map's dice loss
BETA = 10.0  # the threshold map's L1 loss
NEGATIVE_RATIO = 3.0  # hard negatives per positive
EMPTY_NEGATIVES = 100  # hard negatives of a batch without positives
EPS = 1e-6
_CLIP = 1e-6  # probabilities are kept in [_CLIP, 1 - _CLIP] for the logarithms


def _map(x):
    """float32 [B, H, W] from [B, H, W] or [B, H, W, 1]."""
    x = ops.cast(x, "float32")
    return ops.squeeze(x, axis=-1) if len(x.shape) == 4 else x


def balanced_bce(prob, gt, mask, negative_ratio: float = NEGATIVE_RATIO, empty_negatives: int = EMPTY_NEGATIVES):
    """L_s (see the module): the cross-entropy of ``prob`` against ``gt`` over the positives and the hardest
    negatives of the batch. All [B, H, W] (or [B, H, W, 1]); returns a float32 scalar.

    The negatives are ranked by sorting all of the batch's pixels' negative losses (0 for a positive or a
    masked pixel, so those rank last) and those of rank under k are summed: k may be any count, in a graph
    whose shapes do not depend on it.
    """
    prob, gt, mask = _map(prob), _map(gt), _map(mask)
    p = ops.clip(prob, _CLIP, 1.0 - _CLIP)
    bce = -(gt * ops.log(p) + (1.0 - gt) * ops.log(1.0 - p))
    positive = gt * mask
    negative = (1.0 - gt) * mask
    positives = ops.sum(positive)
    negatives = ops.sum(negative)
    k = ops.where(positives > 0, ops.minimum(negatives, ops.floor(positives * negative_ratio)),
                  ops.minimum(negatives, float(empty_negatives)))
    ranked = -ops.sort(-ops.reshape(bce * negative, [-1]))  # largest first
    rank = ops.cast(ops.arange(ops.shape(ranked)[0]), "float32")
    hard = ops.sum(ops.where(rank < k, ranked, 0.0))
    return (ops.sum(bce * positive) + hard) / (positives + k + EPS)


def dice(binary, gt, mask):
    """L_b: 1 - 2 sum(B gt mask) / (sum(B mask) + sum(gt mask) + EPS), over the batch; float32 scalar."""
    binary, gt, mask = _map(binary), _map(gt), _map(mask)
    intersection = ops.sum(binary * gt * mask)
    union = ops.sum(binary * mask) + ops.sum(gt * mask) + EPS
    return 1.0 - 2.0 * intersection / union


def masked_l1(thresh, target, thresh_mask):
    """L_t: the mean of |thresh - target| over ``thresh_mask``'s pixels (0 for an empty mask); float32 scalar."""
    thresh, target, thresh_mask = _map(thresh), _map(target), _map(thresh_mask)
    return ops.sum(ops.abs(thresh - target) * thresh_mask) / (ops.sum(thresh_mask) + EPS)


def db_loss(targets: dict, outputs: dict, alpha: float = ALPHA, beta: float = BETA):
    """DBNet's loss of a batch (see the module).

    ``targets``: the maps of ``targets.db_targets`` stacked over the batch, ``gt``, ``mask``, ``thresh`` and
    ``thresh_mask``, each [B, H, W] float32; ``outputs``: the model's ``prob`` and ``thresh``, [B, H, W, 1].
    Returns ``(total, parts)``: float32 scalars, ``parts`` = {"prob": L_s, "binary": L_b, "thresh": L_t}
    unweighted, total = L_s + alpha L_b + beta L_t.
    """
    prob, thresh = outputs["prob"], outputs["thresh"]
    parts = {
        "prob": balanced_bce(prob, targets["gt"], targets["mask"]),
        "binary": dice(binary_map(prob, thresh), targets["gt"], targets["mask"]),
        "thresh": masked_l1(thresh, targets["thresh"], targets["thresh_mask"]),
    }
    total = parts["prob"] + alpha * parts["binary"] + beta * parts["thresh"]
    return total, parts
