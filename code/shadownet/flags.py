"""The flags of every ``shadownet`` command (argparse): the one place a command's options are declared.

Choices come from ``choices``, the training settings (with their help, choices and defaults) from ``config``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import __version__, choices
from .cloud.platforms import SERVING_PORT, UAI_FLAGS

DESCRIPTION = """\
Train CRNN (ShadowNet) text-line recognizers: a dataset of images and labels in, TFRecords, a trained
model and a TF Serving export out, on this machine, in Docker or as a cloud training job (SageMaker,
Vertex AI, Kubeflow, UAI Train, Kubernetes). Paths may be s3:// prefixes."""
EPILOG = "Try: shadownet synth --out data/sample --count 2000, then validate, tfrecords, train (see COMMAND --help)."


def _location(text: str) -> str | Path:
    """A path argument: a local path, or an ``s3://`` or ``gs://`` URL kept as text (Path would fold its //).
    A ``gs://`` output is refused where it is used (``storage.check_writable``): gs:// is read only."""
    from .cloud.gcs import is_gcs
    from .cloud.storage import is_remote

    return text if is_remote(text) or is_gcs(text) else Path(text)


def _formats(text: str) -> tuple[str, ...]:
    formats = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [f for f in formats if f not in choices.EXPORT_FORMATS]
    if not formats or unknown:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(choices.EXPORT_FORMATS)}, comma-separated "
                                         f"(not {text!r})")
    return formats


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, not {text}")
        return value

    return parse


def _positive_or_zero(text: str) -> float:
    return max(0.0, float(text))


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="show TensorFlow's C++ log lines (start-up messages) too")
    return common


def _storage(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--s3-endpoint-url", help="S3-compatible store (MinIO, UFile, Ceph); default: "
                                                  "AWS_ENDPOINT_URL or AWS")
    parser.add_argument("--scratch-dir", type=Path, help="where s3:// inputs and outputs are staged "
                                                         "(default: TMPDIR/shadownet)")


def _dataset(parser: argparse.ArgumentParser) -> None:
    from .parallel import default_workers

    parser.add_argument("--dataset-dir", required=True, type=_location,
                        help="folder (or s3:// prefix) with char_dict.json, ord_map.json and the samples in the "
                             "seed layout (Train/sample.txt, Test/sample.txt), an LMDB tree (Train/, Test/ or "
                             "training/, evaluation/) or an MJSynth tree (annotation_*.txt, lexicon.txt); or pages "
                             "with their text regions (ICDAR 2015: train_images/, train_gts/; PaddleOCR: "
                             "Train/label.txt), which need no charset")
    _layout(parser)
    parser.add_argument("--workers", type=int, default=default_workers(), help="processes (default: all cores)")
    parser.add_argument("--on-error", choices=choices.ERROR_POLICIES, default="error",
                        help="error: stop on the first bad samples (default); skip: leave them out and report them")
    parser.add_argument("--report", type=_location, help="write a JSON report of every problem found")
    _storage(parser)
    parser.add_argument("--case", choices=choices.CASE_POLICIES, default="auto",
                        help="auto (default): lowercase labels when the charset has no uppercase letters")
    parser.add_argument("--input-mode", choices=choices.INPUT_MODES, default="keep_ratio",
                        help="keep_ratio (default): height 32, width by aspect ratio; fixed: 100x32 as the original")
    parser.add_argument("--max-width", type=int, default=800, help="widest normalised image in keep_ratio mode")
    parser.add_argument("--image-format", choices=choices.IMAGE_FORMATS, default="jpeg",
                        help="encoding of stored images (default: jpeg)")
    parser.add_argument("--jpeg-quality", type=int, default=90)


def _layout(parser: argparse.ArgumentParser) -> None:
    from .data.layouts import LAYOUTS

    parser.add_argument("--layout", choices=LAYOUTS, default=None,
                        help="the dataset's layout (default: found from what the folder holds; see docs/datasets.md)")
    parser.add_argument("--csv-delimiter", default=";", metavar="CHAR",
                        help="csv layout: the character between image path and label (default: ;)")
    parser.add_argument("--points-outside", choices=("clip", "refuse"), default="clip",
                        help="pages: a region's point outside its image is clamped onto the border (clip, the "
                             "default) or is a problem (refuse)")


def _settings(parser: argparse.ArgumentParser) -> None:
    from .config import CHOICES, HELP, TrainConfig, field_types

    group = parser.add_argument_group("settings (override the config file; see docs/training.md)")
    defaults = TrainConfig()
    for key, kind in field_types().items():
        allowed = CHOICES.get(key)
        default = getattr(defaults, key)
        help_text = f"{HELP[key]} (default: {str(default).lower() if isinstance(default, bool) else default})"
        group.add_argument(f"--{key.replace('_', '-')}", dest=f"setting_{key}", default=argparse.SUPPRESS,
                           metavar="{" + ",".join(allowed) + "}" if allowed else kind.__name__.upper(),
                           help=help_text)


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(prog="shadownet", description=DESCRIPTION, epilog=EPILOG, parents=[common],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"shadownet {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str, sub=commands) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text, parents=[common])

    synth = command("synth", "write a synthetic dataset in the seed layout (--kind pages: page images with their "
                             "text lines, for detection, in the ICDAR 2015 layout)")
    synth.add_argument("--out", required=True, type=Path)
    synth.add_argument("--count", required=True, type=int)
    synth.add_argument("--kind", choices=choices.SYNTH_KINDS, default="lines",
                       help="default: lines; pages writes train_images/, train_gts/, test_images/, test_gts/")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--test-ratio", type=float, default=0.1)
    synth.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    synth.add_argument("--font", action="append", type=Path, default=[], help="extra TrueType font (repeatable)")
    synth.add_argument("--font-dir", action="append", type=Path, default=[],
                       help="every .ttf/.otf/.ttc font under DIR, sorted (repeatable)")

    charset = command("charset", "write char_dict.json / ord_map.json")
    charset_commands = charset.add_subparsers(dest="charset_command", required=True, metavar="ACTION")
    build = command("build", "from the labels of a dataset, in sorted order", charset_commands)
    build.add_argument("--dataset-dir", required=True, type=Path)
    _layout(build)
    build.add_argument("--out", type=Path, help="where to write (default: the dataset dir)")
    build.add_argument("--case", choices=choices.CHARSET_CASES, default="keep")
    build.add_argument("--force", action="store_true", help="replace existing files that differ")
    preset = command("preset", "a built-in charset: digits_lower (36) or ascii95", charset_commands)
    preset.add_argument("name")
    preset.add_argument("--out", required=True, type=Path)
    preset.add_argument("--force", action="store_true", help="replace existing files that differ")

    _dataset(command("validate", "check a dataset without writing records"))

    convert = command("convert", "validate a dataset and write it in another layout (LMDB or seed)")
    _dataset(convert)
    from .data.layouts import CONVERT_TARGETS

    convert.add_argument("--to", required=True, choices=CONVERT_TARGETS,
                         help="lmdb: OUT/Train, OUT/Test (OUT/Validation) environments; seed: image files and "
                              "sample.txt")
    convert.add_argument("--out", required=True, type=_location, help="a new folder (or s3:// prefix)")

    records = command("tfrecords", "validate a dataset and write TFRecords")
    _dataset(records)
    records.add_argument("--save-dir", required=True, type=_location, help="folder or s3:// prefix")
    records.add_argument("--shards", type=int, default=1, help="files per split")
    records.add_argument("--num-shards", type=int,
                         help="several machines: N runs, one per shard, together write what --shards N writes")
    records.add_argument("--shard-index", type=int, help="which shard this run writes, 0..N-1 (default: "
                         "JOB_COMPLETION_INDEX of a Kubernetes Indexed Job, or this host's place in SM_HOSTS)")
    records.add_argument("--validation-ratio", type=float, default=0.1, help="part of Train held out")
    records.add_argument("--seed", type=int, default=0, help="seed of the validation split and train order")

    train = command("train", "train ShadowNet on a records directory (resumes a model dir)")
    train.add_argument("--tfrecords-dir", type=_location,
                       help="folder or s3:// prefix (default: what the platform provides, see docs/cloud.md)")
    train.add_argument("--model-dir", type=_location,
                       help="the run (folder or s3:// prefix): resumed from, checkpoints saved to")
    train.add_argument("--export-dir", type=_location,
                       help="after training, export the best checkpoint here (TF Serving layout) and evaluate "
                            "the test split (default on platforms that collect a model, such as SageMaker)")
    _storage(train)
    for flag in UAI_FLAGS:  # UCloud UAI Train appends these to the command
        train.add_argument(f"--{flag.replace('_', '-')}", dest=f"uai_{flag}", help=argparse.SUPPRESS)
    train.add_argument("--config", type=Path, help="YAML or JSON file of settings, e.g. configs/demo.yaml "
                                                   "(flags override it)")
    _settings(train)

    evaluate = command("evaluate", "evaluate a trained model on a split; JSON report + PNG grid")
    evaluate.add_argument("--tfrecords-dir", required=True, type=_location)
    evaluate.add_argument("--model-dir", required=True, type=_location)
    _storage(evaluate)
    evaluate.add_argument("--split", choices=choices.SPLITS, default="test")
    evaluate.add_argument("--report", type=_location, help="default: MODEL_DIR/evaluation-SPLIT.json")
    evaluate.add_argument("--grid", type=_location, help="PNG of sample predictions (default: the report's name .png)")
    evaluate.add_argument("--decoder", choices=choices.DECODERS, default="greedy")
    evaluate.add_argument("--beam-width", type=int, default=10)
    evaluate.add_argument("--lexicon", type=Path, help="word list: constrain outputs to these words")
    evaluate.add_argument("--checkpoint", choices=choices.CHECKPOINTS, default="best")
    evaluate.add_argument("--batch-size", type=int, default=64)
    evaluate.add_argument("--worst", type=int, default=20, help="wrong samples listed in the report (default 20)")

    export = command("export", "write a SavedModel for TF Serving (and/or model.onnx): NAME/VERSION/")
    export.add_argument("--model-dir", required=True, type=_location)
    export.add_argument("--export-dir", required=True, type=_location, help="folder or s3:// prefix")
    _storage(export)
    export.add_argument("--name", default="shadownet")
    export.add_argument("--version", type=int, help="default: one past the highest existing version")
    export.add_argument("--checkpoint", choices=choices.CHECKPOINTS, default="best")
    export.add_argument("--precision", choices=choices.EXPORT_PRECISIONS, default="float32",
                        help="bfloat16: faster on CPUs with AMX and on recent GPUs (the SavedModel; ONNX is float32)")
    export.add_argument("--format", default="savedmodel", type=_formats, metavar="savedmodel,onnx",
                        help="what to write, comma-separated: savedmodel (default), onnx (model.onnx, for "
                             "onnxruntime; needs shadownet[onnx])")
    export.add_argument("--quantize", choices=choices.QUANTIZATIONS, default="none",
                        help="int8: also write model.int8.onnx, dynamically quantised (onnxruntime)")

    predict = command("predict", "recognise text in image files with an exported model")
    predict.add_argument("--model", required=True, type=_location,
                         help="export dir NAME/ or NAME/VERSION/ (or an s3:// prefix of one), or a model.onnx file")
    _storage(predict)
    predict.add_argument("images", nargs="+", type=Path)
    predict.add_argument("--json", action="store_true", help="one JSON object per line")

    serve = command("serve", "serve an export over HTTP: SageMaker, Vertex AI, KServe (v1, v2) and TF Serving's "
                             "REST API on one port (see docs/serving.md)")
    serve.add_argument("--model", type=_location,
                       help="export dir (NAME/, NAME/VERSION/ or the folder holding NAME/), s3:// or gs:// prefix "
                            "(default: the platform's: /opt/ml/model, AIP_STORAGE_URI, /mnt/models)")
    _storage(serve)
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=_positive(int),
                       help=f"default: AIP_HTTP_PORT, SAGEMAKER_BIND_TO_PORT, else {SERVING_PORT}")
    serve.add_argument("--workers", type=_positive(int), help="server processes, each with the model "
                                                   "(default: SAGEMAKER_MODEL_SERVER_WORKERS, else 1)")
    serve.add_argument("--max-batch", type=_positive(int), default=64,
                       help="most images per model call; 1 turns dynamic batching off (default 64)")
    serve.add_argument("--batch-wait-ms", type=_positive_or_zero, default=2.0,
                       help="how long a batch waits for more images once it has one (default 2)")
    serve.add_argument("--request-timeout", type=_positive(float), default=30.0,
                       help="seconds per request (default 30)")
    serve.add_argument("--max-body-mb", type=_positive(float), default=8.0, help="largest request body (default 8 MiB)")

    jobs = command("jobs", "job specs for SageMaker, Vertex AI, Kubeflow, UAI Train, Kubernetes")
    jobs_commands = jobs.add_subparsers(dest="jobs_command", required=True, metavar="ACTION")
    from .cloud.jobs import DEFAULTS
    from .cloud.registry import PLATFORMS

    render = command("render", "print a job spec filled with --set values, checked", jobs_commands)
    render.add_argument("--platform", required=True, choices=tuple(PLATFORMS))
    render.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help=f"{', '.join(DEFAULTS)}, or hp.<setting> (repeatable; the settings start from "
                             "configs/cloud.yaml)")
    render.add_argument("--out", type=Path, help="write the spec here instead of printing it")
    render.add_argument("--images", type=Path, metavar="FILE",
                        help="images.json of `make push`: the pushed images, pinned by digest, for the image fields")

    submit = command("submit", "submit a rendered job spec; follow a SageMaker job to its end")
    submit.add_argument("--platform", required=True, choices=tuple(PLATFORMS))
    submit.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="as for jobs render")
    submit.add_argument("--images", type=Path, metavar="FILE", help="as for jobs render")
    submit.add_argument("--no-wait", dest="wait", action="store_false", help="SageMaker: return once submitted")
    submit.add_argument("--poll-seconds", type=float, default=30.0)
    submit.add_argument("--sagemaker-endpoint-url", help="default: AWS_ENDPOINT_URL_SAGEMAKER or AWS")

    inspect = command("inspect", "read a records directory back through tf.data and summarise it")
    inspect.add_argument("--tfrecords-dir", required=True, type=_location)
    _storage(inspect)
    inspect.add_argument("--show", type=int, default=3, help="examples to print per split")
    return parser
