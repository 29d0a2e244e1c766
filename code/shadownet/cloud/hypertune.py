"""Objective metrics for hyperparameter tuners: one report, read three ways.

* SageMaker reads the log with the MetricDefinitions regexes (``jobs.METRIC_DEFINITIONS``) and takes the
  last value the job printed;
* Katib's default StdOut collector reads ``name=value`` pairs from the log with
  ``KATIB_FILTER``; every name we print is letters, digits and ``_`` only;
* Vertex AI reads the file that Google's ``cloudml-hypertune`` library writes (``MetricFile``).

So training prints its validation lines as it always has (``step=N validation_loss=... word_accuracy=...
char_error_rate=...``, a task's ``metric_line``), the best values once more at the end (``best_step=N
validation_loss=...``), and on Vertex AI (or wherever ``CLOUD_ML_HP_METRIC_FILE`` is set) also reports
``hpo_metric`` to the metric file.

The file is written here rather than through ``cloudml-hypertune`` itself: its one release (0.1.0.dev6,
2019) is a source archive only, and our images install hash-locked wheels and nothing else. The format is
the library's, entry for entry: the file rewritten with the last 100 reports, one JSON object a line with
sorted keys, every value a string: ``{"checkpoint_path": "", "global_step": "1200", "timestamp": ...,
"trial": "<CLOUD_ML_TRIAL_ID>", "<tag>": "<value>"}``. We write it to a temporary file and rename it, so
the reader never sees half of it.
"""

from __future__ import annotations

import collections
import json
import os
import time
from pathlib import Path

# Katib's default StdOut filter (metricsCollectorSpec: kind StdOut, no filter given).
KATIB_FILTER = r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"
KEPT_REPORTS = 100  # what cloudml-hypertune keeps: the file holds the newest 100 reports


def metric_value(name: str, metrics: dict) -> float:
    """``hpo_metric``'s value among the validation metrics (``validation_loss`` is the metrics' ``loss``)."""
    return float(metrics["loss" if name == "validation_loss" else name])


class MetricFile:
    """cloudml-hypertune's ``HyperTune().report_hyperparameter_tuning_metric``, in its file format."""

    def __init__(self, path: str | Path, trial_id: str = "0", tag: str = "word_accuracy", clock=time.time):
        self.path, self.trial_id, self.tag, self.clock = Path(path), str(trial_id), tag, clock
        self.reports: collections.deque = collections.deque(maxlen=KEPT_REPORTS)

    def report(self, value: float, step: int) -> None:
        self.reports.append({"timestamp": self.clock(), "trial": self.trial_id, self.tag: str(float(value)),
                             "global_step": str(int(step)), "checkpoint_path": ""})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.partial")
        temporary.write_text("".join(json.dumps(entry, sort_keys=True) + "\n" for entry in self.reports),
                             encoding="utf-8")
        os.replace(temporary, self.path)


def reporter(path: str | None, trial_id: str, metric: str):
    """``report(step, metrics)`` writing ``metric`` to the metric file at ``path``; None when there is none."""
    if not path:
        return None
    metric_file = MetricFile(path, trial_id, metric)
    return lambda step, metrics: metric_file.report(metric_value(metric, metrics), step)
