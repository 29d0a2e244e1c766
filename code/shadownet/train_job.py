"""``shadownet train`` as a job: the platform's settings and paths, several workers, object storage in and out,
preemption, and what a platform's job leaves behind (the export and its test-split report). ``learn.train`` does
the training; this module puts it in its place.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
from pathlib import Path

from .fileio import with_suffix

# 128 + SIGTERM: what a process killed by SIGTERM reports; Kubeflow's ExitCode policy retries codes >= 128.
PREEMPTED_EXIT = 128 + signal.SIGTERM


def run(args, make_staging) -> int:
    """`shadownet train ARGS`; ``make_staging()`` stages its inputs and outputs. Returns the exit code."""
    from .cloud import hypertune
    from .cloud.platforms import cluster, gcs_path, pick
    from .cloud.storage import check_writable, is_remote
    from .config import explicit, load
    from .learn import distribute, run_dir
    from .learn.read_records import read_manifest, stage_share
    from .learn.tasks import for_records
    from .learn.train import resolve_precision, train
    from .progress import StepDisplay

    platform = args.runs_on
    flags = {k[len("setting_"):]: v for k, v in vars(args).items() if k.startswith("setting_")}
    config = resolve_precision(load(args.config, flags, platform.settings, f"{platform.name} hyperparameters"))
    if platform.init_dir and not config.init_from:  # SageMaker's channel "init": fine-tune from that run
        config = dataclasses.replace(config, init_from=platform.init_dir)
    tfrecords_path = pick(args.tfrecords_dir, platform.tfrecords_dir, "--tfrecords-dir", platform)
    model_path = pick(args.model_dir, platform.model_dir, "--model-dir", platform)
    export_path = args.export_dir or platform.export_dir
    for output in (model_path, export_path):  # a gs:// output is refused now, not after training
        check_writable(output)
    # Before any model or dataset exists, as TensorFlow requires. Several workers: TF_CONFIG (Kubeflow,
    # Vertex AI), Vertex AI's CLUSTER_SPEC or SageMaker's hosts (see platforms.cluster).
    workers = cluster(os.environ, Path("/"))
    strategy = distribute.create(cluster=workers, timeout_seconds=config.worker_timeout_seconds)
    display = StepDisplay(config.train_steps)
    display.log(f"{distribute.describe(strategy)} mixed_precision={config.mixed_precision}"
                + (f" cluster={workers.source} task={workers.task_type}:{workers.task_index}" if workers else ""))
    if platform.name != "local":
        display.log(f"platform={platform.name}")
    # From here a SIGTERM (preemption, a stopped job) finishes the step in progress, checkpoints and exits
    # with a code the platforms retry; the checkpoint is where the restarted job resumes.
    stop_requested = stop_on_sigterm()
    staging = make_staging()
    # Several workers on object storage: each stages its own share (and trains while the rest of it arrives).
    arrivals = None
    if workers is not None and is_remote(tfrecords_path):
        tfrecords_dir, arrivals = stage_share(staging, tfrecords_path, (workers.input_index, workers.workers),
                                              export_path is not None and workers.is_chief, display.log)
    else:
        tfrecords_dir = staging.input_dir(tfrecords_path)
    model_dir = staging.output_dir(model_path, existing=True)  # a run to resume comes back first
    given = explicit(args.config, flags, platform.settings)
    # The records say what is trained (a detector takes its own model and metrics where none were given).
    task = for_records(read_manifest(Path(tfrecords_dir), task=None))
    config = task.resolve(config, given)

    # The run to fine-tune from, unless this one resumes its own checkpoints (gs://: Vertex AI's /gcs mount).
    init_dir = None
    if config.init_from and not run_dir.has_checkpoints(model_dir):
        init_dir = staging.input_dir(gcs_path(config.init_from))

    def saved() -> None:  # checkpoint state files last: a resumed job trusts them
        staging.sync(model_dir, model_path, last=run_dir.STATE_FILES)

    try:
        result = train(config, Path(tfrecords_dir), Path(model_dir), log=display.log,
                       progress=display.progress if display.tty else None, strategy=strategy, saved=saved,
                       stop=stop_requested, log_dir=Path(platform.log_dir) if platform.log_dir else None,
                       grace_seconds=platform.grace_seconds, init_dir=init_dir,
                       explicit=given,
                       report=hypertune.reporter(platform.metric_file, platform.trial_id, config.hpo_metric)
                       if distribute.is_chief(strategy) else None,
                       records_ready=arrivals.wait if arrivals else None)
    except Exception as exc:
        if arrivals is not None and arrivals.error is not None:  # a record file that could not be staged
            raise arrivals.error from None
        if workers is None or not isinstance(exc, distribute.PEER_ERRORS):  # one process: a bug, its traceback
            raise
        raise distribute.worker_lost(exc, config.worker_timeout_seconds) from None
    display.close()
    if result.preempted:
        print(f"shadownet: stopped at step {result.step} on SIGTERM; checkpoint saved to {model_path}, "
              "a rerun resumes from it", file=sys.stderr)
        return PREEMPTED_EXIT
    best = result.best or {}
    print(f"trained to step {result.step}" + (" (time budget spent)" if result.stopped_early else "")
          + (f"; best {best['metric']}={best['value']:.4f} at step {best['step']}" if best else ""))
    if export_path is not None and distribute.is_chief(strategy) and task.name != "recognition":
        print(f"not exported: the export of a {task.name} run is not built yet; the run is in {model_path}",
              file=sys.stderr)
    elif export_path is not None and distribute.is_chief(strategy):  # the chief's run is the one to export
        export_after_training(staging, model_dir, tfrecords_dir, export_path, platform.report_dir or model_path)
    return 0


def export_after_training(staging, model_dir: Path, tfrecords_dir: Path, export_path, report_dir) -> None:
    """What a platform's job leaves behind: the best model for serving, and its test-split report."""
    from .learn.evaluate import EvalConfig, evaluate
    from .learn.export import SAVED_MODEL_FILE, export
    from .learn.read_records import read_manifest
    from .learn.run_dir import report_path

    export_dir = staging.output_dir(export_path, existing=True)
    path = export(Path(model_dir), Path(export_dir))
    staging.sync(export_dir, export_path, last=[SAVED_MODEL_FILE])
    print(f"exported {path}")
    if read_manifest(Path(tfrecords_dir))["counts"].get("test"):
        remote = report_path(report_dir if isinstance(report_dir, Path) else str(report_dir), "test")
        report_file = staging.output_file(remote)
        report = evaluate(EvalConfig(Path(tfrecords_dir), Path(model_dir), "test", report=Path(report_file)))
        staging.send_file(report_file, remote)
        staging.send_file(Path(report_file).with_suffix(".png"), with_suffix(remote, ".png"))
        # Named test_*: no tuner takes it for the objective (Katib's filter keys on the name, SageMaker's
        # MetricDefinitions on the validation line's sequence); tuning selects on validation, never on test.
        print(f"test_word_accuracy={report['word_accuracy']} test_char_error_rate={report['char_error_rate']}")


def stop_on_sigterm():
    """From now on SIGTERM only raises a flag, which the training loop polls between steps."""
    requested = []
    signal.signal(signal.SIGTERM, lambda signum, frame: requested.append(signum))
    return lambda: bool(requested)
