"""``shadownet evaluate``: a trained model on every sample of a split -> JSON report and a PNG grid (a detector's
records: ``detection.evaluate``).

Decoders: ``greedy`` (best class per step) and ``beam`` (CTC beam search). With a lexicon, the
beam's top paths and the lexicon words near the best one are rescored by their CTC likelihood
and the most likely lexicon word wins (the CRNN paper's lexicon-based transcription).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from ..choices import DECODERS
from ..errors import SettingError, ShadownetError
from ..fileio import write_text_atomic
from . import ctc, pipeline, read_records
from . import model as shadownet_model
from .lexicon import Lexicon
from .metrics import Prediction, summarize, write_grid
from .run_dir import load_model, report_name

GRID_ITEMS = 32


@dataclass(frozen=True)
class EvalConfig:
    tfrecords_dir: Path
    model_dir: Path
    split: str = "test"
    decoder: str = "greedy"
    beam_width: int = 10
    lexicon: Path | None = None
    checkpoint: str = "best"
    batch_size: int = 64
    report: Path | None = None  # default: <model_dir>/evaluation-<split>.json
    grid: Path | None = None  # default: the report's path with .png
    worst: int = 20  # wrong samples listed in the report


def evaluate(config: EvalConfig) -> dict:
    """Decode every sample of the split; returns the report (also written to disk)."""
    if config.decoder not in DECODERS:
        raise SettingError("decoder", f"must be one of {', '.join(DECODERS)}, not {config.decoder!r}")
    if read_records.read_manifest(config.tfrecords_dir, task=None).get("task") == "detection":
        from .detection.evaluate import evaluate as evaluate_pages

        return evaluate_pages(config)
    manifest = read_records.read_manifest(config.tfrecords_dir)
    model, train_config, charset = load_model(config.model_dir, config.checkpoint)
    if read_records.charset_of(manifest) != charset:
        raise ShadownetError(f"{config.tfrecords_dir} uses another charset than the model in {config.model_dir}")
    lexicon = Lexicon.load(config.lexicon) if config.lexicon else None
    blank = charset.blank_index
    top_paths = 5 if lexicon else 1

    @tf.function(reduce_retracing=True)
    def forward(inputs):
        logits = model(inputs, training=False)
        lengths = shadownet_model.sequence_lengths(inputs["width"])
        if config.decoder == "beam" or lexicon:
            paths, _, confidence = ctc.beam(logits, lengths, blank, config.beam_width, top_paths)
            return [p.to_tensor(default_value=-1) for p in paths], confidence, logits, lengths
        ids, confidence = ctc.greedy(logits, lengths, blank)
        return [ids.to_tensor(default_value=-1)], confidence, logits, lengths

    predictions: list[Prediction] = []
    dataset = pipeline.eval_dataset(config.tfrecords_dir, config.split, train_config, config.batch_size)
    for inputs, targets in dataset:
        paths, confidence, logits, lengths = forward(inputs)
        texts = [[charset.decode(c for c in row if c >= 0) for row in path.numpy()] for path in paths]
        best = texts[0]
        if lexicon:
            best = _constrain(lexicon, texts, logits, lengths, charset, blank)
        widths = inputs["width"].numpy()
        for i, (truth, source) in enumerate(zip(targets["text"].numpy(), targets["source"].numpy(), strict=True)):
            image = None
            if len(predictions) < GRID_ITEMS:
                image = ((inputs["image"][i, :, : widths[i]].numpy() + 1.0) * 127.5).clip(0, 255).astype(np.uint8)
            predictions.append(Prediction(source.decode("utf-8"), truth.decode("utf-8"), best[i],
                                          float(confidence[i]), image))
    expected = manifest["counts"][config.split]
    if len(predictions) != expected:
        raise ShadownetError(f"evaluated {len(predictions)} samples but the {config.split} split has {expected}")

    report = summarize(predictions, worst=config.worst) | {
        "split": config.split,
        # A lexicon always rescores the beam's top paths, whatever --decoder said.
        "decoder": "beam+lexicon" if lexicon else config.decoder,
        "checkpoint": config.checkpoint,
        "model": train_config.model,
        "lexicon_size": len(lexicon) if lexicon else 0,
    }
    report_path = Path(config.report or Path(config.model_dir) / report_name(config.split))
    report_path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(report_path, json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    write_grid(Path(config.grid or report_path.with_suffix(".png")), predictions[:GRID_ITEMS])
    return report


def _constrain(lexicon: Lexicon, texts, logits, lengths, charset, blank) -> list[str]:
    """Per sample: the lexicon word (among beam paths and near neighbours) with the highest CTC likelihood."""
    chosen = []
    for i in range(len(texts[0])):
        candidates = [t[i] for t in texts if t[i] in lexicon]
        # The near neighbours; when there are none, the closest words at any distance, so that
        # the output is always a lexicon word.
        candidates += lexicon.candidates(texts[0][i]) or lexicon.candidates(texts[0][i], max_distance=10**6)
        candidates = list(dict.fromkeys(c for c in candidates if c and not charset.unknown(c)))
        if not candidates:
            chosen.append(texts[0][i])
            continue
        ids = [charset.encode(c) for c in candidates]
        labels = tf.ragged.constant(ids, dtype=tf.int32).to_tensor()
        n = len(candidates)
        nll = ctc.loss(labels, [len(x) for x in ids], tf.repeat(logits[i : i + 1], n, axis=0),
                       tf.repeat(lengths[i : i + 1], n), blank)
        chosen.append(candidates[int(np.argmin(nll.numpy()))])
    return chosen
