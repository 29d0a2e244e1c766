"""The ``shadownet`` command: flags, dispatch, staging to and from object storage, and the one error boundary.

Each handler turns flags into the stage's typed config, stages ``s3://`` inputs into local folders, calls
the stage, and publishes its outputs; the stages below see local paths and config objects only. Every
long flag is accepted with underscores too (``--dataset_dir`` as in the seed's scripts).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from .errors import SettingError, ShadownetError
from .fileio import with_suffix
from .flags import build_parser

# The commands that import TensorFlow, whose C++ start-up lines are filtered (tflog).
TENSORFLOW_COMMANDS = ("train", "evaluate", "export", "predict", "inspect", "serve")


# -- the commands: stage in, call, publish ---------------------------------------------------------------


def _staging(args):
    import tempfile

    from .cloud.storage import ObjectStore, Staging, StorageConfig

    scratch = args.scratch_dir or Path(tempfile.gettempdir()) / "shadownet"
    return Staging(scratch, ObjectStore(StorageConfig(endpoint_url=args.s3_endpoint_url)))


def _dataset_config(args, dataset_dir, report, save_dir=None, **split):
    from .data.images import ImageGeometry
    from .data.write_records import TFRecordsConfig

    try:
        geometry = ImageGeometry(mode=args.input_mode, max_width=args.max_width,
                                 image_format=args.image_format, jpeg_quality=args.jpeg_quality)
    except ValueError as exc:
        raise ShadownetError(str(exc)) from None
    return TFRecordsConfig(dataset_dir=dataset_dir, save_dir=save_dir, workers=args.workers,
                           on_error=args.on_error, case=args.case, geometry=geometry, report=report,
                           source=str(args.dataset_dir), layout=args.layout, csv_delimiter=args.csv_delimiter,
                           points_outside=args.points_outside, **split)


def _run_tfrecords(args) -> int:
    from .cloud.publish import publish_shard
    from .data.record_format import MANIFEST_FILE
    from .data.write_records import run

    shards, shard_index = _sharding(args)
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
              f"to {args.save_dir} ({manifest['skipped']} skipped) from the {manifest['source']['layout']} layout",
              file=sys.stderr)
        return 0
    done = publish_shard(staging, save_dir, args.save_dir, shards)
    print(f"wrote shard {shard_index} of {shards}: {counts['train']} train, {counts['validation']} validation, "
          f"{counts['test']} test records to {args.save_dir}; "
          + ("every shard is there: manifest written" if done else "the last shard to finish writes the manifest"),
          file=sys.stderr)
    return 0


def _sharding(args) -> tuple[int, int | None]:
    """(shards, this run's shard or None): --num-shards with --shard-index, or the platform's machine index."""
    if args.num_shards is None:
        if args.shard_index is not None:
            raise ShadownetError("--shard-index needs --num-shards")
        return args.shards, None
    if args.shards not in (1, args.num_shards):
        raise ShadownetError(f"--shards {args.shards} and --num-shards {args.num_shards} disagree; give one")
    from .cloud.platforms import job_index

    index = args.shard_index if args.shard_index is not None else job_index(os.environ)
    if index is None:
        raise ShadownetError("--num-shards needs --shard-index (or JOB_COMPLETION_INDEX, as an Indexed Job sets it)")
    return args.num_shards, index


def _run_validate(args) -> int:
    from .data.write_records import run

    staging = _staging(args)
    report = staging.output_file(args.report) if args.report else None
    try:
        result = run(_dataset_config(args, staging.input_dir(args.dataset_dir), report))  # DataError on problems
    finally:
        if report:
            staging.send_file(report, args.report)
    counts = result["counts"]
    skipped = f"; {result['skipped']} skipped (see --report)" if result["skipped"] else ""
    noun = "pages" if result["task"] == "detection" else "samples"
    print(f"ok: {counts['train'] + counts['validation']} Train and {counts['test']} Test {noun} pass every check"
          f"{skipped} ({result['layout']} layout)")
    return 0


def _run_convert(args) -> int:
    from .data.convert import ConvertConfig, run

    staging = _staging(args)
    report = staging.output_file(args.report) if args.report else None
    records = _dataset_config(args, staging.input_dir(args.dataset_dir), report)
    out = staging.output_dir(args.out)
    config = ConvertConfig(dataset_dir=records.dataset_dir, out=out, to=args.to, workers=records.workers,
                           on_error=records.on_error, case=records.case, geometry=records.geometry, report=report,
                           source=records.source, layout=records.layout, csv_delimiter=records.csv_delimiter)
    try:
        result = run(config)
    finally:
        if report:
            staging.send_file(report, args.report)
    staging.sync(out, args.out)
    counts = result["counts"]
    print(f"wrote {counts['train']} Train, {counts['validation']} Validation, {counts['test']} Test samples as "
          f"{args.to} to {args.out} ({result['skipped']} skipped) from the {result['layout']} layout", file=sys.stderr)
    return 0


def _run_inspect(args) -> int:
    from .learn.read_records import inspect

    inspect(_staging(args).input_dir(args.tfrecords_dir), str(args.tfrecords_dir), args.show)
    return 0


def _run_train(args) -> int:
    from .train_job import run

    return run(args, lambda: _staging(args))


def _run_evaluate(args) -> int:
    from .cloud.storage import is_remote
    from .learn.evaluate import EvalConfig, evaluate
    from .learn.run_dir import report_path

    staging = _staging(args)
    report = args.report
    if report is None and is_remote(args.model_dir):  # the default, next to the run
        report = report_path(str(args.model_dir), args.split)
    grid = args.grid or (with_suffix(report, ".png") if report else None)
    outputs = {path: staging.output_file(path) for path in (report, grid) if path is not None}
    result = evaluate(EvalConfig(staging.input_dir(args.tfrecords_dir), staging.input_dir(args.model_dir),
                                 args.split, args.decoder, args.beam_width, args.lexicon, args.checkpoint,
                                 args.batch_size, outputs.get(report), outputs.get(grid), max(args.worst, 0)))
    for remote, local in outputs.items():
        staging.send_file(local, remote)
    keys = ("num_samples", "word_accuracy", "word_accuracy_case_insensitive", "char_error_rate",
            "normalized_edit_distance", "word_accuracy_ignoring_case_and_spaces")
    if "hmean" in result:  # a detector's
        keys = ("images", "precision", "recall", "hmean")
    print(" ".join(f"{k}={result[k]}" for k in keys))
    return 0


def _run_export(args) -> int:
    from .cloud.publish import export_version
    from .cloud.storage import is_remote
    from .learn.export import SAVED_MODEL_FILE, export
    from .learn.onnx_model import ONNX_FILE

    staging = _staging(args)
    model_dir = staging.input_dir(args.model_dir)
    # Versions already in the bucket count, as a local folder's would: never overwrite one.
    version = export_version(staging, args.export_dir, args.name, args.version, (SAVED_MODEL_FILE, ONNX_FILE))
    export_dir = staging.output_dir(args.export_dir)
    path = export(model_dir, export_dir, name=args.name, version=version, checkpoint=args.checkpoint,
                  precision=args.precision, formats=args.format, quantize=args.quantize)
    # TF Serving loads a version once saved_model.pb is there: everything it refers to goes first.
    staging.sync(export_dir, args.export_dir, last=[SAVED_MODEL_FILE])
    if is_remote(args.export_dir):
        path = f"{str(args.export_dir).rstrip('/')}/{path.relative_to(export_dir).as_posix()}"
    print(f"exported {path}")
    return 0


def _run_predict(args) -> int:
    from .errors import DataError
    from .learn.predict import load

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
        message = f"{args.images[index]}: {str(exc).split(': ', 1)[1]}" if index is not None else str(exc)
        raise DataError(message) from None
    for path, result in zip(args.images, results, strict=True):
        if args.json:
            print(json.dumps({"image": str(path), "text": result["text"], "confidence": round(result["confidence"], 4)},
                             ensure_ascii=False))
        else:
            print(f"{path}\t{result['text']}\t{result['confidence']:.3f}")
    return 0


def _run_serve(args) -> int:
    from .serve.workers import serve_command

    return serve_command(args, _staging(args).input_dir)


def _run_jobs(args) -> int:
    from .cloud.jobs import render
    from .fileio import write_text_atomic

    text = render(args.platform, _image_settings(args.images) + args.set)
    if args.out:
        write_text_atomic(args.out, text)
    else:
        sys.stdout.write(text)
    return 0


def _run_submit(args) -> int:
    from .cloud.submit import SubmitConfig, submit

    return submit(SubmitConfig(args.platform, tuple(_image_settings(args.images) + args.set), args.wait,
                               args.poll_seconds, args.sagemaker_endpoint_url))


def _image_settings(images: Path | None) -> list[str]:
    """``--images FILE`` as the ``--set`` values it stands for (explicit ``--set`` values come after: they win)."""
    from .cloud.jobs import image_settings

    return image_settings(images) if images else []


def _run_synth(args) -> int:
    from .data.synth import SynthConfig, generate
    from .parallel import default_workers
    from .progress import Progress

    config = SynthConfig(out_dir=args.out, count=args.count, kind=args.kind, seed=args.seed,
                         test_ratio=args.test_ratio, workers=args.workers or default_workers(),
                         fonts=tuple(args.font), font_dirs=tuple(args.font_dir))
    progress = Progress(args.count, "synth")
    result = generate(config, progress=lambda done, total: progress.update(done - progress.done))
    progress.close()
    what = "pages (ICDAR 2015 layout)" if args.kind == "pages" else f"{args.kind} samples"
    print(f"wrote {result['train']} Train and {result['test']} Test {what} to {args.out}", file=sys.stderr)
    for font in result["fonts"][1:]:  # after the built-in one: what a rerun needs to draw the same images
        print(f"font {font['name']} {font['size']} bytes sha256 {font['sha256']}", file=sys.stderr)
    for font in result["skipped_fonts"]:
        print(f"font {font['name']} left out: {font['reason']}", file=sys.stderr)
    return 0


def _run_charset(args) -> int:
    from .data.charset import Charset, from_labels, write

    if args.charset_command == "preset":
        charset, out = Charset.from_preset(args.name), args.out
    else:
        from .data.layouts import dataset_folder

        charset = from_labels(args.dataset_dir, args.case, args.layout, args.csv_delimiter)
        out = args.out or dataset_folder(args.dataset_dir)  # a CSV file's charset goes beside it
    write(charset, out, args.force)
    print(f"wrote {charset.size} characters (blank index {charset.blank_index}) to {out}", file=sys.stderr)
    return 0


HANDLERS = {"tfrecords": _run_tfrecords, "validate": _run_validate, "convert": _run_convert, "synth": _run_synth,
            "charset": _run_charset,
            "inspect": _run_inspect, "train": _run_train, "evaluate": _run_evaluate, "export": _run_export,
            "predict": _run_predict, "serve": _run_serve, "jobs": _run_jobs, "submit": _run_submit}


def _normalize_flag(token: str) -> str:
    if not token.startswith("--"):
        return token
    name, eq, value = token.partition("=")
    return name.replace("_", "-") + eq + value


def _raise_on_sigterm(signum, frame):
    # Turn a platform's SIGTERM into an exception so that cleanup (partial files) runs.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    process = argv is None  # the console command (not a test calling main): it owns the process's stderr
    argv = [_normalize_flag(t) for t in (sys.argv[1:] if argv is None else argv)]
    args = build_parser().parse_args(argv)
    # TensorFlow's start-up chatter drowns our own lines in cloud logs; the user's own level, or --verbose, wins.
    if "TF_CPP_MIN_LOG_LEVEL" not in os.environ and not getattr(args, "verbose", False):
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
        if process and args.command in TENSORFLOW_COMMANDS:
            from . import tflog

            tflog.install()
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    from .cloud.platforms import Platform, detect, write_failure
    from .errors import access_error

    args.runs_on = Platform("local")
    try:
        # The one place the platform's environment and files are read (see platforms.py); inside the
        # boundary, since reading them can fail too (an unreadable or malformed hyperparameters.json).
        uai = {key[len("uai_"):]: value for key, value in vars(args).items() if key.startswith("uai_") and value}
        args.runs_on = detect(os.environ, Path("/"), uai=uai)
        return HANDLERS[args.command](args)
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
        message = error.flag_message() if isinstance(error, SettingError) else str(error)
        print(f"shadownet: error: {message}", file=sys.stderr)
        write_failure(platform, f"shadownet {args.command}: {message}")
        return error.exit_code
    except KeyboardInterrupt:
        print("shadownet: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
