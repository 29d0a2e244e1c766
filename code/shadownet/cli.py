"""The ``shadownet`` command: argument parsing and the one error boundary.

This is the only layer that turns flags into typed configs; stages below it see
paths and config objects. Every long flag is accepted with underscores too
(``--dataset_dir`` as in the seed's scripts).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from . import __version__
from .errors import ShadownetError
from .platforms import UAI_FLAGS


def _location(text: str) -> str | Path:
    """A path argument: a local path, or an ``s3://bucket/prefix`` URL kept as text (Path would fold its //)."""
    from .storage import is_remote

    return text if is_remote(text) else Path(text)


def _add_storage_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--s3-endpoint-url", help="S3-compatible store (MinIO, UFile, Ceph); default: "
                                                  "AWS_ENDPOINT_URL or AWS")
    parser.add_argument("--scratch-dir", type=Path, help="where s3:// inputs and outputs are staged "
                                                         "(default: TMPDIR/shadownet)")


def _staging(args):
    import tempfile

    from .storage import ObjectStore, Staging, StorageConfig

    scratch = args.scratch_dir or Path(tempfile.gettempdir()) / "shadownet"
    return Staging(scratch, ObjectStore(StorageConfig(endpoint_url=args.s3_endpoint_url)))


def _add_dataset_options(parser: argparse.ArgumentParser) -> None:
    from .images import IMAGE_FORMATS, INPUT_MODES
    from .parallel import default_workers
    from .validate import CASE_POLICIES, ERROR_POLICIES

    parser.add_argument("--dataset-dir", required=True, type=_location,
                        help="folder (or s3:// prefix) with char_dict.json, ord_map.json, Train/sample.txt, "
                             "Test/sample.txt")
    parser.add_argument("--workers", type=int, default=default_workers(), help="processes (default: all cores)")
    parser.add_argument("--on-error", choices=ERROR_POLICIES, default="error",
                        help="error: stop on the first bad samples (default); skip: leave them out and report them")
    parser.add_argument("--report", type=_location, help="write a JSON report of every problem found")
    _add_storage_options(parser)
    parser.add_argument("--case", choices=CASE_POLICIES, default="auto",
                        help="auto (default): lowercase labels when the charset has no uppercase letters")
    parser.add_argument("--input-mode", choices=INPUT_MODES, default="keep_ratio",
                        help="keep_ratio (default): height 32, width by aspect ratio; fixed: 100x32 as the original")
    parser.add_argument("--max-width", type=int, default=800, help="widest normalised image in keep_ratio mode")
    parser.add_argument("--image-format", choices=IMAGE_FORMATS, default="jpeg", help="encoding of stored images")
    parser.add_argument("--jpeg-quality", type=int, default=90)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shadownet", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"shadownet {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    synth = commands.add_parser("synth", help="write a synthetic dataset in the seed layout")
    synth.add_argument("--out", required=True, type=Path)
    synth.add_argument("--count", required=True, type=int)
    synth.add_argument("--kind", choices=("lines", "captcha", "digits"), default="lines")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--test-ratio", type=float, default=0.1)
    synth.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    synth.add_argument("--font", action="append", type=Path, default=[], help="extra TrueType font (repeatable)")

    charset = commands.add_parser("charset", help="write char_dict.json / ord_map.json")
    charset_commands = charset.add_subparsers(dest="charset_command", required=True, metavar="ACTION")
    build = charset_commands.add_parser("build", help="from the labels of a dataset, in sorted order")
    build.add_argument("--dataset-dir", required=True, type=Path)
    build.add_argument("--out", type=Path, help="where to write (default: the dataset dir)")
    build.add_argument("--case", choices=("keep", "lower"), default="keep")
    build.add_argument("--force", action="store_true", help="replace existing files that differ")
    preset = charset_commands.add_parser("preset", help="a built-in charset: digits_lower (36) or ascii95")
    preset.add_argument("name")
    preset.add_argument("--out", required=True, type=Path)
    preset.add_argument("--force", action="store_true", help="replace existing files that differ")

    validate = commands.add_parser("validate", help="check a dataset without writing records")
    _add_dataset_options(validate)

    records = commands.add_parser("tfrecords", help="validate a dataset and write TFRecords")
    _add_dataset_options(records)
    records.add_argument("--save-dir", required=True, type=_location, help="folder or s3:// prefix")
    records.add_argument("--shards", type=int, default=1, help="files per split")
    records.add_argument("--num-shards", type=int,
                         help="several machines: N runs, one per shard, together write what --shards N writes")
    records.add_argument("--shard-index", type=int, help="which shard this run writes, 0..N-1 (default: "
                         "JOB_COMPLETION_INDEX of a Kubernetes Indexed Job, or this host's place in SM_HOSTS)")
    records.add_argument("--validation-ratio", type=float, default=0.1, help="part of Train held out")
    records.add_argument("--seed", type=int, default=0, help="seed of the validation split and train order")

    train = commands.add_parser("train", help="train ShadowNet on a records directory (resumes a model dir)")
    train.add_argument("--tfrecords-dir", type=_location,
                       help="folder or s3:// prefix (default: what the platform provides, see README)")
    train.add_argument("--model-dir", type=_location,
                       help="the run (folder or s3:// prefix): resumed from, checkpoints saved to")
    train.add_argument("--export-dir", type=_location,
                       help="after training, export the best checkpoint here (TF Serving layout) and evaluate "
                            "the test split (default on platforms that collect a model, such as SageMaker)")
    _add_storage_options(train)
    for flag in UAI_FLAGS:  # UCloud UAI Train appends these to the command
        train.add_argument(f"--{flag.replace('_', '-')}", dest=f"uai_{flag}", help=argparse.SUPPRESS)
    train.add_argument("--config", type=Path, help="YAML or JSON file of settings (flags override it)")
    from .config import HELP, field_types

    settings = train.add_argument_group("settings (override the config file; see README)")
    for key, kind in field_types().items():
        settings.add_argument(f"--{key.replace('_', '-')}", dest=f"setting_{key}", default=argparse.SUPPRESS,
                              metavar=kind.__name__.upper(), help=HELP.get(key))

    evaluate = commands.add_parser("evaluate", help="evaluate a trained model on a split; JSON report + PNG grid")
    evaluate.add_argument("--tfrecords-dir", required=True, type=_location)
    evaluate.add_argument("--model-dir", required=True, type=_location)
    _add_storage_options(evaluate)
    evaluate.add_argument("--split", choices=("train", "validation", "test"), default="test")
    evaluate.add_argument("--report", type=_location, help="default: MODEL_DIR/evaluation-SPLIT.json")
    evaluate.add_argument("--grid", type=_location, help="PNG of sample predictions (default: the report's name .png)")
    evaluate.add_argument("--decoder", choices=("greedy", "beam"), default="greedy")
    evaluate.add_argument("--beam-width", type=int, default=10)
    evaluate.add_argument("--lexicon", type=Path, help="word list: constrain outputs to these words")
    evaluate.add_argument("--checkpoint", choices=("best", "latest"), default="best")
    evaluate.add_argument("--batch-size", type=int, default=64)
    evaluate.add_argument("--worst", type=int, default=20, help="wrong samples listed in the report (default 20)")

    export = commands.add_parser("export", help="write a SavedModel for TF Serving: NAME/VERSION/")
    export.add_argument("--model-dir", required=True, type=_location)
    export.add_argument("--export-dir", required=True, type=_location, help="folder or s3:// prefix")
    _add_storage_options(export)
    export.add_argument("--name", default="shadownet")
    export.add_argument("--version", type=int, help="default: one past the highest existing version")
    export.add_argument("--checkpoint", choices=("best", "latest"), default="best")
    export.add_argument("--precision", choices=("float32", "bfloat16"), default="float32",
                        help="bfloat16: faster on CPUs with AMX and on recent GPUs")

    predict = commands.add_parser("predict", help="recognise text in image files with an exported model")
    predict.add_argument("--model", required=True, type=_location,
                         help="export dir NAME/ or NAME/VERSION/ (or an s3:// prefix of one)")
    _add_storage_options(predict)
    predict.add_argument("images", nargs="+", type=Path)
    predict.add_argument("--json", action="store_true", help="one JSON object per line")

    jobs = commands.add_parser("jobs", help="job specs for SageMaker, Vertex AI, Kubeflow, UAI Train, Kubernetes")
    jobs_commands = jobs.add_subparsers(dest="jobs_command", required=True, metavar="ACTION")
    render = jobs_commands.add_parser("render", help="print a job spec filled with --set values, checked")
    render.add_argument("--platform", required=True,
                        choices=("sagemaker", "vertex", "kubeflow", "uai", "k8s-tfrecords"))
    render.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="image, bucket, prefix, name, role, instance_type, region, max_runtime_seconds, "
                             "endpoint_url, credentials_secret, cpu, memory, or hp.<setting> (repeatable)")
    render.add_argument("--out", type=Path, help="write the spec here instead of printing it")

    submit = commands.add_parser("submit", help="submit a rendered job spec; follow a SageMaker job to its end")
    submit.add_argument("--platform", required=True,
                        choices=("sagemaker", "vertex", "kubeflow", "uai", "k8s-tfrecords"))
    submit.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="as for jobs render")
    submit.add_argument("--no-wait", dest="wait", action="store_false", help="SageMaker: return once submitted")
    submit.add_argument("--poll-seconds", type=float, default=30.0)
    submit.add_argument("--sagemaker-endpoint-url", help="default: AWS_ENDPOINT_URL_SAGEMAKER or AWS")

    inspect = commands.add_parser("inspect", help="read a records directory back through tf.data and summarise it")
    inspect.add_argument("--tfrecords-dir", required=True, type=_location)
    _add_storage_options(inspect)
    inspect.add_argument("--show", type=int, default=3, help="examples to print per split")
    return parser


def _dataset_config(args, dataset_dir, report, save_dir=None, **split):
    from .images import ImageGeometry
    from .tfrecords import TFRecordsConfig

    try:
        geometry = ImageGeometry(mode=args.input_mode, max_width=args.max_width,
                                 image_format=args.image_format, jpeg_quality=args.jpeg_quality)
    except ValueError as exc:
        raise ShadownetError(str(exc)) from None
    return TFRecordsConfig(dataset_dir=dataset_dir, save_dir=save_dir, workers=args.workers,
                           on_error=args.on_error, case=args.case, geometry=geometry, report=report,
                           source=str(args.dataset_dir), **split)


def _run_tfrecords(args) -> int:
    from .tfrecord_format import MANIFEST_FILE
    from .tfrecords import run

    shards, shard_index = _sharding(args, os.environ)
    staging = _staging(args)
    save_dir = staging.output_dir(args.save_dir)
    report = staging.output_file(args.report) if args.report else None
    config = _dataset_config(args, staging.input_dir(args.dataset_dir), report, save_dir=save_dir,
                             shards=shards, validation_ratio=args.validation_ratio, seed=args.seed,
                             shard_index=shard_index)
    try:
        manifest = run(config)
    finally:
        if report:  # the report matters most when the run fails
            staging.send_file(report, args.report)
    counts = manifest["counts"]
    if shard_index is None:
        staging.sync(save_dir, args.save_dir, last=[MANIFEST_FILE])  # a reader trusts the manifest: it goes last
        print(f"wrote {counts['train']} train, {counts['validation']} validation, {counts['test']} test records "
              f"to {args.save_dir} ({manifest['skipped']} skipped)", file=sys.stderr)
        return 0
    done = _finish_shard(staging, save_dir, args.save_dir, shards)
    print(f"wrote shard {shard_index} of {shards}: {counts['train']} train, {counts['validation']} validation, "
          f"{counts['test']} test records to {args.save_dir}; "
          + ("every shard is there: manifest written" if done else "the last shard to finish writes the manifest"),
          file=sys.stderr)
    return 0


def _sharding(args, env) -> tuple[int, int | None]:
    """(shards, this run's shard or None): --num-shards with --shard-index, JOB_COMPLETION_INDEX or SM_HOSTS."""
    if args.num_shards is None:
        if args.shard_index is not None:
            raise ShadownetError("--shard-index needs --num-shards")
        return args.shards, None
    if args.shards not in (1, args.num_shards):
        raise ShadownetError(f"--shards {args.shards} and --num-shards {args.num_shards} disagree; give one")
    index = args.shard_index
    if index is None and env.get("JOB_COMPLETION_INDEX", "").isdigit():
        index = int(env["JOB_COMPLETION_INDEX"])
    if index is None and env.get("SM_HOSTS") and env.get("SM_CURRENT_HOST"):
        from .platforms import sagemaker_cluster

        try:
            hosts = json.loads(env["SM_HOSTS"])
        except json.JSONDecodeError:
            raise ShadownetError(f"SM_HOSTS: not JSON: {env['SM_HOSTS'][:200]}") from None
        index = sagemaker_cluster(hosts, env["SM_CURRENT_HOST"], "SM_HOSTS").task_index  # the toolkit's numbering
    if index is None:
        raise ShadownetError("--num-shards needs --shard-index (or JOB_COMPLETION_INDEX, as an Indexed Job sets it)")
    return args.num_shards, index


def _finish_shard(staging, save_dir: Path, save_path, shards: int) -> bool:
    """Publish this shard; if every shard's manifest part is there, merge them into the manifest."""
    import tempfile

    from .storage import S3Url, is_remote
    from .tfrecord_format import MANIFEST_FILE
    from .tfrecords import finish_shards, part_name

    if not is_remote(save_path):
        return finish_shards(save_dir, shards) is not None
    url = S3Url.parse(str(save_path))
    parts = [part_name(shard, shards) for shard in range(shards)]
    staging.store.delete([url.child(MANIFEST_FILE)])  # an older manifest would describe a mix of files
    staging.sync(save_dir, save_path, last=parts)  # this shard's records, then its part
    present = {relative for relative, *_ in staging.store.list(url)}
    if not set(parts) <= present:
        return False
    Path(staging.scratch).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=staging.scratch) as merge_dir:
        for part in parts:
            staging.store.download(url.child(part), Path(merge_dir) / part)
        finish_shards(Path(merge_dir), shards)
        staging.store.upload(Path(merge_dir) / MANIFEST_FILE, url.child(MANIFEST_FILE))
    staging.store.delete([url.child(part) for part in parts])
    return True


def _run_validate(args) -> int:
    from .tfrecords import run

    staging = _staging(args)
    report = staging.output_file(args.report) if args.report else None
    try:
        result = run(_dataset_config(args, staging.input_dir(args.dataset_dir), report))  # DataError on problems
    finally:
        if report:
            staging.send_file(report, args.report)
    counts = result["counts"]
    skipped = f"; {result['skipped']} skipped (see --report)" if result["skipped"] else ""
    print(f"ok: {counts['train'] + counts['validation']} Train and {counts['test']} Test samples pass every check"
          f"{skipped}")
    return 0


def _run_inspect(args) -> int:
    from .errors import DataError
    from .records import charset_of, load_split, read_manifest

    tfrecords_dir = _staging(args).input_dir(args.tfrecords_dir)
    manifest = read_manifest(tfrecords_dir)
    charset = charset_of(manifest)
    print(f"{args.tfrecords_dir}: schema {manifest['schema_version']}, {charset.size} characters "
          f"(blank {charset.blank_index}), images {manifest['image']}")
    for split, expected in manifest["counts"].items():
        count, widths = 0, []
        for example in load_split(tfrecords_dir, split).as_numpy_iterator():
            if count < args.show:
                text = example["text"].decode()
                if charset.decode(example["label"]) != text:
                    raise DataError(f"{split}: label ids of {example['source'].decode()} do not spell {text!r}")
                print(f"  {split}: {example['source'].decode()} {example['image'].shape} {text!r}")
            count += 1
            widths.append(int(example["width"]))
        if count != expected:
            raise DataError(f"{split}: read {count} records, the manifest says {expected}")
        mean_width = sum(widths) / len(widths) if widths else 0
        print(f"{split}: {count} records read back, mean width {mean_width:.0f} px")
    return 0


def _run_train(args) -> int:
    from . import distribute
    from .config import load
    from .platforms import cluster, pick
    from .progress import Progress
    from .train import resolve_precision, train

    platform = args.runs_on
    flags = {k[len("setting_"):]: v for k, v in vars(args).items() if k.startswith("setting_")}
    config = resolve_precision(load(args.config, flags, platform.settings, f"{platform.name} hyperparameters"))
    tfrecords_path = pick(args.tfrecords_dir, platform.tfrecords_dir, "--tfrecords-dir", platform)
    model_path = pick(args.model_dir, platform.model_dir, "--model-dir", platform)
    export_path = args.export_dir or platform.export_dir
    # Before any model or dataset exists, as TensorFlow requires. Several workers: TF_CONFIG (Kubeflow,
    # Vertex AI), Vertex AI's CLUSTER_SPEC or SageMaker's hosts (see platforms.cluster).
    workers = cluster(os.environ, Path("/"))
    strategy = distribute.create(cluster=workers, timeout_seconds=config.worker_timeout_seconds)
    bar: Progress | None = None

    def progress(step: int) -> None:
        nonlocal bar
        if bar is None:  # created at the first call, which gives the step a resumed run starts from
            bar = Progress(config.train_steps, "train", initial=step)
        else:
            bar.update(step - bar.done)

    def log(line: str) -> None:
        # On a terminal the bar is redrawn under each line; elsewhere plain lines for log scrapers.
        print(("\r\033[K" if bar else "") + line, file=sys.stderr if bar else sys.stdout, flush=True)

    log(f"{distribute.describe(strategy)} mixed_precision={config.mixed_precision}")
    if platform.name != "local":
        log(f"platform={platform.name}")
    # From here a SIGTERM (preemption, a stopped job) finishes the step in progress, checkpoints and exits
    # with a code the platforms retry; the checkpoint is where the restarted job resumes.
    stop_requested = _stop_on_sigterm()
    staging = _staging(args)
    tfrecords_dir = staging.input_dir(tfrecords_path)
    model_dir = staging.output_dir(model_path, existing=True)  # a run to resume comes back first

    def saved() -> None:  # checkpoint state files last: a resumed job trusts them
        staging.sync(model_dir, model_path, last=RUN_STATE_FILES)

    tty = sys.stderr.isatty()
    try:
        result = train(config, Path(tfrecords_dir), Path(model_dir), log=log, progress=progress if tty else None,
                       strategy=strategy, saved=saved, stop=stop_requested,
                       log_dir=Path(platform.log_dir) if platform.log_dir else None,
                       grace_seconds=platform.grace_seconds)
    except distribute.PEER_ERRORS as exc:
        if workers is None:  # one process: a bug, keep its traceback
            raise
        raise distribute.worker_lost(exc, config.worker_timeout_seconds) from None
    if bar:
        bar.close()
    if result.preempted:
        print(f"shadownet: stopped at step {result.step} on SIGTERM; checkpoint saved to {model_path}, "
              "a rerun resumes from it", file=sys.stderr)
        return PREEMPTED_EXIT
    best = result.best or {}
    print(f"trained to step {result.step}" + (" (time budget spent)" if result.stopped_early else "")
          + (f"; best {best['metric']}={best['value']:.4f} at step {best['step']}" if best else ""))
    if export_path is not None and distribute.is_chief(strategy):  # the chief's run is the one to export
        _export_after_training(staging, model_dir, tfrecords_dir, export_path, platform.report_dir or model_path)
    return 0


def _export_after_training(staging, model_dir: Path, tfrecords_dir: Path, export_path, report_dir) -> None:
    """What a platform's job leaves behind: the best model for serving, and its test-split report."""
    from .evaluate import EvalConfig, evaluate
    from .export import SAVED_MODEL_FILE, export
    from .records import read_manifest

    export_dir = staging.output_dir(export_path, existing=True)
    path = export(Path(model_dir), Path(export_dir))
    staging.sync(export_dir, export_path, last=[SAVED_MODEL_FILE])
    print(f"exported {path}")
    if read_manifest(Path(tfrecords_dir))["counts"].get("test"):
        report_path = f"{str(report_dir).rstrip('/')}/evaluation-test.json"
        report_file = staging.output_file(report_path)
        report = evaluate(EvalConfig(Path(tfrecords_dir), Path(model_dir), "test", report=Path(report_file)))
        staging.send_file(report_file, report_path)
        staging.send_file(Path(report_file).with_suffix(".png"), _with_suffix(report_path, ".png"))
        print(f"test word_accuracy={report['word_accuracy']} char_error_rate={report['char_error_rate']}")


def _run_evaluate(args) -> int:
    from .evaluate import EvalConfig, evaluate
    from .storage import is_remote

    staging = _staging(args)
    report_path = args.report
    if report_path is None and is_remote(args.model_dir):  # the default, next to the run
        report_path = f"{str(args.model_dir).rstrip('/')}/evaluation-{args.split}.json"
    grid_path = args.grid or (_with_suffix(report_path, ".png") if report_path else None)
    outputs = {path: staging.output_file(path) for path in (report_path, grid_path) if path is not None}
    report = evaluate(EvalConfig(staging.input_dir(args.tfrecords_dir), staging.input_dir(args.model_dir),
                                 args.split, args.decoder, args.beam_width, args.lexicon, args.checkpoint,
                                 args.batch_size, outputs.get(report_path), outputs.get(grid_path),
                                 max(args.worst, 0)))
    for remote, local in outputs.items():
        staging.send_file(local, remote)
    keys = ("num_samples", "word_accuracy", "word_accuracy_case_insensitive", "char_error_rate",
            "normalized_edit_distance")
    print(" ".join(f"{k}={report[k]}" for k in keys))
    return 0


def _run_export(args) -> int:
    from .export import SAVED_MODEL_FILE, export
    from .storage import S3Url, is_remote

    staging = _staging(args)
    model_dir = staging.input_dir(args.model_dir)
    version = args.version
    if is_remote(args.export_dir):
        # Versions already in the bucket count, as a local folder's would: never overwrite one.
        base = S3Url.parse(str(args.export_dir)).child(args.name)
        published = {int(rel.split("/")[0]) for rel, *_ in staging.store.list(base)
                     if rel.split("/")[0].isdigit() and rel.endswith(SAVED_MODEL_FILE)}
        if version is None:
            version = max(published, default=0) + 1
        elif version in published:
            raise ShadownetError(f"{base}/{version} already exists; versions are never overwritten "
                                 "(choose another --version)")
    export_dir = staging.output_dir(args.export_dir)
    path = export(model_dir, export_dir, name=args.name, version=version, checkpoint=args.checkpoint,
                  precision=args.precision)
    # TF Serving loads a version once saved_model.pb is there: everything it refers to goes first.
    staging.sync(export_dir, args.export_dir, last=[SAVED_MODEL_FILE])
    if is_remote(args.export_dir):
        path = f"{str(args.export_dir).rstrip('/')}/{path.relative_to(export_dir).as_posix()}"
    print(f"exported {path}")
    return 0


def _run_predict(args) -> int:
    from .export import load

    from .errors import DataError

    predictor = load(_staging(args).input_dir(args.model))
    data = []
    for path in args.images:
        try:
            data.append(path.read_bytes())
        except OSError as exc:
            raise ShadownetError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        results = predictor.predict(data)
    except DataError as exc:
        index = getattr(exc, "index", None)
        raise DataError(f"{args.images[index]}: {str(exc).split(': ', 1)[1]}" if index is not None else str(exc)) from None
    for path, result in zip(args.images, results):
        if args.json:
            print(json.dumps({"image": str(path), "text": result["text"], "confidence": round(result["confidence"], 4)},
                             ensure_ascii=False))
        else:
            print(f"{path}\t{result['text']}\t{result['confidence']:.3f}")
    return 0


def _run_jobs(args) -> int:
    from .fileio import write_text_atomic
    from .jobs import render

    text = render(args.platform, args.set)
    if args.out:
        write_text_atomic(args.out, text)
    else:
        sys.stdout.write(text)
    return 0


def _run_submit(args) -> int:
    from .submit import SubmitConfig, submit

    return submit(SubmitConfig(args.platform, tuple(args.set), args.wait, args.poll_seconds,
                               args.sagemaker_endpoint_url))


def _run_synth(args) -> int:
    from .parallel import default_workers
    from .progress import Progress
    from .synth import SynthConfig, generate

    config = SynthConfig(out_dir=args.out, count=args.count, kind=args.kind, seed=args.seed,
                         test_ratio=args.test_ratio, workers=args.workers or default_workers(),
                         fonts=tuple(args.font))
    progress = Progress(args.count, "synth")
    result = generate(config, progress=lambda done, total: progress.update(done - progress.done))
    progress.close()
    print(f"wrote {result['train']} Train and {result['test']} Test {args.kind} samples to {args.out}",
          file=sys.stderr)
    return 0


def _run_charset(args) -> int:
    from .charset import Charset

    if args.charset_command == "preset":
        charset = Charset.from_preset(args.name)
        out = args.out
    else:
        from .annotations import TEST_FILE, TRAIN_FILE, AnnotationIndex, LineError
        from .errors import DataError

        chars: set[str] = set()
        for name in (TRAIN_FILE, TEST_FILE):
            index = AnnotationIndex(args.dataset_dir, name)
            for i, item in index:
                if isinstance(item, LineError):
                    raise DataError(f"{index.path}:{int(index.line_numbers[i])}: {item}")
                chars.update(item.label.lower() if args.case == "lower" else item.label)
        if not chars:
            raise DataError(f"{args.dataset_dir}: no labels found to build a charset from")
        charset = Charset.from_text(chars)
        out = args.out or args.dataset_dir
    _save_charset(charset, out, args.force)
    print(f"wrote {charset.size} characters (blank index {charset.blank_index}) to {out}", file=sys.stderr)
    return 0


# What a reader of a run trusts (CheckpointManager's state files, the best checkpoint's record): sent last.
RUN_STATE_FILES = ("checkpoint", "best.json")


def _with_suffix(path: str | Path, suffix: str) -> str | Path:
    if isinstance(path, Path):
        return path.with_suffix(suffix)
    stem, dot, ext = path.rpartition(".")
    return (stem if dot and "/" not in ext else path) + suffix


def _save_charset(charset, out: Path, force: bool) -> None:
    from .charset import CHAR_DICT_FILE, Charset

    if (out / CHAR_DICT_FILE).exists() and not force:
        try:
            existing = Charset.load(out)
        except ShadownetError:
            existing = None
        if existing != charset:
            raise ShadownetError(
                f"{out / CHAR_DICT_FILE} exists with other classes; replacing it changes every class index "
                "(models trained on it would decode wrongly). Use --force to replace it."
            )
    charset.save(out)


def _normalize_flag(token: str) -> str:
    if not token.startswith("--"):
        return token
    name, eq, value = token.partition("=")
    return name.replace("_", "-") + eq + value


def _raise_on_sigterm(signum, frame):
    # Turn a platform's SIGTERM into an exception so that cleanup (partial files) runs.
    raise SystemExit(128 + signum)


# 128 + SIGTERM: what a process killed by SIGTERM reports; Kubeflow's ExitCode policy retries codes >= 128.
PREEMPTED_EXIT = 128 + signal.SIGTERM


def _stop_on_sigterm():
    """From now on SIGTERM only raises a flag, which the training loop polls between steps."""
    requested = []

    def handler(signum, frame):
        requested.append(signum)

    signal.signal(signal.SIGTERM, handler)
    return lambda: bool(requested)


def main(argv: list[str] | None = None) -> int:
    # TensorFlow's start-up chatter (oneDNN, CPU features) drowns our own lines in cloud logs.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    argv = [_normalize_flag(t) for t in (sys.argv[1:] if argv is None else argv)]
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    from .errors import access_error
    from .platforms import Platform, detect, write_failure

    handlers = {"tfrecords": _run_tfrecords, "validate": _run_validate, "synth": _run_synth,
                "charset": _run_charset, "inspect": _run_inspect, "train": _run_train,
                "evaluate": _run_evaluate, "export": _run_export, "predict": _run_predict, "jobs": _run_jobs,
                "submit": _run_submit}
    args.runs_on = Platform("local")
    try:
        # The one place the platform's environment and files are read (see platforms.py); inside the
        # boundary, since reading them can fail too (an unreadable or malformed hyperparameters.json).
        uai = {key[len("uai_"):]: value for key, value in vars(args).items() if key.startswith("uai_") and value}
        args.runs_on = detect(os.environ, Path("/"), uai=uai)
        return handlers[args.command](args)
    except Exception as exc:
        # A path this process may not read or write (who it runs as, a read-only or full mount) is the
        # setup's problem: one line and exit 1 like any user error, wherever it was raised.
        output = next((str(getattr(args, key)) for key in ("save_dir", "out", "export_dir", "model_dir")
                       if getattr(args, key, None) is not None), None)
        error = access_error(exc, output) or (exc if isinstance(exc, ShadownetError) else None)
        # Where detect() itself failed, the platform it had recognised (platforms._sagemaker).
        platform = getattr(exc, "platform", None) or args.runs_on
        if error is None:  # a bug: the traceback goes to the log, a short reason to the platform
            write_failure(platform, f"shadownet {args.command}: internal error: {type(exc).__name__}: {exc}")
            raise
        print(f"shadownet: error: {error}", file=sys.stderr)
        write_failure(platform, f"shadownet {args.command}: {error}")
        return error.exit_code
    except KeyboardInterrupt:
        print("shadownet: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
