"""Hyperparameter tuning: each tuner reads its objective from a real training run; trials stay apart;
the tuning specs (SageMaker, Vertex AI, Katib) pass their platform's own checks; submit against moto."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import REPO, run_cli, word_records
from shadownet.cloud import hypertune, jobs, platforms, tuning_jobs

TRAIN = ("--model", "shadownet_small", "--batch-size", "4", "--log-every", "2", "--eval-every", "2",
         "--checkpoint-every", "2", "--warmup-steps", "1", "--shuffle-buffer", "8", "--mixed-precision", "off",
         "--input-mode", "fixed")


@pytest.fixture(scope="module")
def records_dir(tmp_path_factory):
    return word_records(tmp_path_factory.mktemp("tuning"), 30, 26, 5, "--validation-ratio", "0.25",
                        "--input-mode", "fixed")


@pytest.fixture(scope="module")
def tuned_run(records_dir, tmp_path_factory):
    """A short real run as a Vertex AI trial would make it: CLOUD_ML_HP_METRIC_FILE and a trial id set."""
    import os

    root = tmp_path_factory.mktemp("trial")
    metric_file = root / "hypertune" / "output.metrics"
    env = dict(os.environ, CLOUD_ML_HP_METRIC_FILE=str(metric_file), CLOUD_ML_TRIAL_ID="7")
    result = run_cli("train", "--tfrecords-dir", records_dir, "--model-dir", root / "run", "--train-steps", "6",
                     *TRAIN, "--hpo-metric", "word_accuracy", env=env, check=True)
    return result.stdout.splitlines(), metric_file, json.loads((root / "run" / "best.json").read_text())


def test_sagemaker_reads_the_objective_from_the_log_and_its_last_value_is_the_best(tuned_run):
    lines, _, best = tuned_run
    regex = next(d["Regex"] for d in jobs.METRIC_DEFINITIONS if d["Name"] == "validation:word_accuracy")
    values = [float(m.group(1)) for line in lines for m in re.finditer(regex, line)]
    assert len(values) >= 4  # evaluations at steps 2, 4, 6, the best once more, and the final summary
    assert values[-1] == pytest.approx(best["word_accuracy"], abs=1e-4)
    assert lines.count(next(line for line in lines if line.startswith("best_step="))) == 1
    loss = next(d["Regex"] for d in jobs.METRIC_DEFINITIONS if d["Name"] == "train:loss")
    losses = [float(m.group(1)) for line in lines for m in re.finditer(loss, line)]
    assert len(losses) == 3  # steps 2, 4, 6: validation_loss never matches the training loss's regex


def test_katib_reads_name_value_pairs_with_its_default_filter(tuned_run):
    lines, _, best = tuned_run
    experiment = _spec("katib")["spec"]["objective"]
    names = {experiment["objectiveMetricName"], *experiment["additionalMetricNames"]}
    found: dict[str, list[float]] = {}
    for line in lines:  # as Katib's StdOut collector applies its filter to each line, keeping the named metrics
        for match in re.finditer(hypertune.KATIB_FILTER, line):
            if match.group(1) in names:
                found.setdefault(match.group(1), []).append(float(match.group(2)))
    assert set(found) == names == {"word_accuracy", "char_error_rate", "validation_loss"}
    evaluations = sum(1 for line in lines if re.match(r"step=\d+ validation_loss=", line))
    assert len(found["validation_loss"]) == evaluations + 1  # and the best once more
    assert found["word_accuracy"][-1] == pytest.approx(best["word_accuracy"], abs=1e-4)
    assert found["char_error_rate"][-1] == pytest.approx(best["char_error_rate"], abs=1e-4)
    assert found["validation_loss"][-1] == pytest.approx(best["loss"], abs=1e-4)
    assert max(found["word_accuracy"][:-1]) == pytest.approx(found["word_accuracy"][-1], abs=1e-4)


def test_vertex_reads_the_hypertune_file(tuned_run):
    lines, metric_file, best = tuned_run
    text = metric_file.read_text()
    entries = [json.loads(line) for line in text.splitlines()]
    evaluated = [int(m.group(1)) for line in lines if (m := re.match(r"step=(\d+) validation_loss=", line))]
    assert len(entries) == len(evaluated) + 1  # every evaluation, then the best once more
    for entry, line in zip(entries, text.splitlines(), strict=True):
        assert set(entry) == {"timestamp", "trial", "word_accuracy", "global_step", "checkpoint_path"}
        assert line == json.dumps(entry, sort_keys=True)  # cloudml-hypertune's own serialisation
        assert entry["trial"] == "7" and all(isinstance(entry[k], str) for k in ("word_accuracy", "global_step"))
    assert [int(e["global_step"]) for e in entries[:-1]] == evaluated
    assert float(entries[-1]["word_accuracy"]) == pytest.approx(best["word_accuracy"])
    assert int(entries[-1]["global_step"]) == best["step"]
    assert not list(metric_file.parent.glob(".*partial"))


@pytest.fixture(scope="module")
def exported_trial(records_dir, tmp_path_factory):
    """A trial as SageMaker and Katib run it: the export dir set, so the job also evaluates the test split."""
    import os

    root = tmp_path_factory.mktemp("exported-trial")
    metric_file = root / "hypertune" / "output.metrics"
    env = dict(os.environ, CLOUD_ML_HP_METRIC_FILE=str(metric_file), CLOUD_ML_TRIAL_ID="8")
    result = run_cli("train", "--tfrecords-dir", records_dir, "--model-dir", root / "run", "--export-dir",
                     root / "export", "--train-steps", "4", *TRAIN, env=env, check=True)
    lines = result.stdout.splitlines()
    assert any(line.startswith("test") and "word_accuracy=" in line for line in lines)  # the test split's line
    return lines, metric_file, json.loads((root / "run" / "best.json").read_text())


def _validation_line(line: str) -> bool:
    """An evaluation's line, the best one's, or the summary that names the best validation value."""
    return re.match(r"(best_)?step=\d+ validation_loss=|trained to step \d+.*; best ", line) is not None


def test_with_an_export_sagemaker_reads_only_validation_lines(exported_trial):
    lines, _, best = exported_trial
    objectives = [d for d in jobs.METRIC_DEFINITIONS if d["Name"].startswith("validation:")]
    assert {d["Name"] for d in objectives} == {"validation:loss", "validation:word_accuracy",
                                                "validation:char_error_rate"}
    for definition in objectives:  # SageMaker searches each log line with the regex and takes group 1
        matched = [line for line in lines if re.search(definition["Regex"], line)]
        assert matched and all(_validation_line(line) for line in matched), (definition, matched)
    regex = next(d["Regex"] for d in objectives if d["Name"] == "validation:word_accuracy")
    values = [float(re.search(regex, line).group(1)) for line in lines if re.search(regex, line)]
    assert values[-1] == pytest.approx(best["word_accuracy"], abs=1e-4)
    assert any(re.fullmatch(r"test_word_accuracy=[0-9.]+ test_char_error_rate=[0-9.]+", line) for line in lines)


def test_with_an_export_katib_reads_only_validation_lines(exported_trial):
    lines, _, best = exported_trial
    experiment = _spec("katib")["spec"]["objective"]
    names = {experiment["objectiveMetricName"], *experiment["additionalMetricNames"]}
    found: dict[str, list[float]] = {}
    for line in lines:
        for match in re.finditer(hypertune.KATIB_FILTER, line):
            if match.group(1) in names:
                assert _validation_line(line), f"Katib reads {match.group(1)} from {line!r}"
                found.setdefault(match.group(1), []).append(float(match.group(2)))
    assert found["word_accuracy"][-1] == pytest.approx(best["word_accuracy"], abs=1e-4)


def test_with_an_export_the_hypertune_file_holds_validation_reports_only(exported_trial):
    lines, metric_file, best = exported_trial
    entries = [json.loads(line) for line in metric_file.read_text().splitlines()]
    evaluated = [int(m.group(1)) for line in lines if (m := re.match(r"step=(\d+) validation_loss=", line))]
    assert [int(e["global_step"]) for e in entries] == [*evaluated, best["step"]]
    assert float(entries[-1]["word_accuracy"]) == pytest.approx(best["word_accuracy"])


def test_metric_file_keeps_the_newest_hundred_reports(tmp_path):
    times = iter(range(1000))
    metric_file = hypertune.MetricFile(tmp_path / "deep" / "m.metrics", "3", "char_error_rate",
                                       clock=lambda: next(times))
    for step in range(1, 106):
        metric_file.report(step / 1000, step)
    entries = [json.loads(line) for line in (tmp_path / "deep" / "m.metrics").read_text().splitlines()]
    assert len(entries) == hypertune.KEPT_REPORTS
    assert entries[0] == {"checkpoint_path": "", "global_step": "6", "timestamp": 5, "trial": "3",
                          "char_error_rate": "0.006"}
    assert entries[-1]["global_step"] == "105"
    assert hypertune.metric_value("validation_loss", {"loss": 1.5}) == 1.5


def test_a_trial_never_resumes_another_trials_checkpoints(records_dir, tmp_path):
    model_dir = tmp_path / "run"
    run_cli("train", "--tfrecords-dir", records_dir, "--model-dir", model_dir, "--train-steps", "2", *TRAIN,
            "--learning-rate", "0.001", check=True)
    other = run_cli("train", "--tfrecords-dir", records_dir, "--model-dir", model_dir, "--train-steps", "4", *TRAIN,
                    "--learning-rate", "0.002")
    assert other.returncode == 2 and "Traceback" not in other.stderr  # TensorFlow's start-up lines may come first
    assert other.stderr.strip().splitlines()[-1] == (
        f"shadownet: error: {model_dir} holds the checkpoints of a run with learning_rate=0.001, not 0.002: a run "
        "resumes only with its own settings (each tuning trial needs its own --model-dir)")
    same = run_cli("train", "--tfrecords-dir", records_dir, "--model-dir", model_dir, "--train-steps", "4", *TRAIN,
                   "--learning-rate", "0.001", check=True)  # the same trial, restarted: it resumes
    assert "resumed from" in same.stdout and "trained to step 4" in same.stdout


# --- where each platform's trials keep their runs and report ------------------------------------------------------

def _sagemaker_root(tmp_path: Path, hyperparameters: dict) -> Path:
    config = tmp_path / "opt/ml/input/config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    return tmp_path


def test_a_sagemaker_trial_keeps_its_run_under_its_job_name(tmp_path):
    root = _sagemaker_root(tmp_path, {"learning_rate": "0.002", "sagemaker_region": '"us-east-1"',
                                      "_tuning_objective_metric": "validation:word_accuracy"})
    trial = platforms.detect({"TRAINING_JOB_NAME": "shadownet-tune-003-5e1a2b3c"}, root)
    assert trial.model_dir == str(root / "opt/ml/checkpoints/shadownet-tune-003-5e1a2b3c")
    assert dict(trial.settings) == {"learning_rate": "0.002"}  # the tuner's bookkeeping is no setting
    plain = platforms.detect({"TRAINING_JOB_NAME": "shadownet"}, _sagemaker_root(tmp_path / "b", {"model": "x"}))
    assert plain.model_dir == str(tmp_path / "b/opt/ml/checkpoints") and plain.metric_file is None


def test_vertex_trials_report_to_the_hypertune_file(tmp_path):
    vertex = platforms.detect({"AIP_CHECKPOINT_DIR": "gs://b/out/3/checkpoints"}, tmp_path)
    assert (vertex.metric_file, vertex.trial_id) == (platforms.HP_METRIC_FILE_DEFAULT, "0")
    assert vertex.model_dir == "/gcs/b/out/3/checkpoints"
    env = {"AIP_MODEL_DIR": "gs://b/m", "CLOUD_ML_HP_METRIC_FILE": "/x/m", "CLOUD_ML_TRIAL_ID": "4"}
    chosen = platforms.detect(env, tmp_path)
    assert (chosen.metric_file, chosen.trial_id) == ("/x/m", "4")
    elsewhere = platforms.detect({"CLOUD_ML_HP_METRIC_FILE": "/y/m"}, tmp_path)
    assert (elsewhere.name, elsewhere.metric_file) == ("local", "/y/m")
    pod = platforms.detect({"CLOUD_ML_HP_METRIC_FILE": "/z/m", "KUBERNETES_SERVICE_HOST": "127.0.0.1"}, tmp_path)
    assert (pod.name, pod.metric_file) == ("kubernetes", "/z/m")  # the platform stays what it is
    assert platforms.detect({}, tmp_path).metric_file is None


# --- the specs ----------------------------------------------------------------------------------------------------

def _spec(platform: str):
    return jobs.parsed((REPO / "jobs" / jobs.FILES[platform]).read_text(), platform)


def test_sagemaker_tuning_job_is_valid_for_botocore_and_tunes_the_search_space():
    request = _spec("sagemaker-tuning")
    assert jobs.botocore_problems(request, "CreateHyperParameterTuningJob") == []
    config = request["HyperParameterTuningJobConfig"]
    assert config["Strategy"] == "Bayesian" and config["TrainingJobEarlyStoppingType"] == "Auto"
    assert config["HyperParameterTuningJobObjective"] == {"Type": "Maximize", "MetricName": "validation:word_accuracy"}
    ranges = config["ParameterRanges"]
    assert ranges["ContinuousParameterRanges"] == [
        {"Name": "learning_rate", "MinValue": "0.0002", "MaxValue": "0.005", "ScalingType": "Logarithmic"}]
    assert ranges["IntegerParameterRanges"][0]["Name"] == "warmup_steps"
    assert ranges["CategoricalParameterRanges"] == [{"Name": "batch_size", "Values": ["32", "64", "128"]}]
    definition = request["TrainingJobDefinition"]
    assert not set(tuning_jobs.TUNED) & set(definition["StaticHyperParameters"])
    assert definition["EnableManagedSpotTraining"]
    assert definition["CheckpointConfig"]["LocalPath"] == "/opt/ml/checkpoints"
    assert definition["AlgorithmSpecification"]["MetricDefinitions"] == jobs.METRIC_DEFINITIONS
    assert all(len(d["Regex"]) <= 500 for d in jobs.METRIC_DEFINITIONS)
    broken = json.loads(json.dumps(request))
    broken["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxNumberOfTrainingJobs"] = "many"
    assert jobs.botocore_problems(broken, "CreateHyperParameterTuningJob")
    with pytest.raises(Exception, match="at most 32"):
        jobs.render("sagemaker-tuning", ["name=" + "a" * 33])


def test_vertex_tuning_job_parses_as_vertex_ais_own_message():
    from google.cloud.aiplatform_v1.types import HyperparameterTuningJob
    from google.protobuf import json_format

    spec = _spec("vertex-tuning")
    message = json_format.ParseDict(spec, HyperparameterTuningJob.pb(HyperparameterTuningJob()),
                                    ignore_unknown_fields=False)
    assert [m.metric_id for m in message.study_spec.metrics] == ["word_accuracy"]
    assert [p.parameter_id for p in message.study_spec.parameters] == list(tuning_jobs.SEARCH_SPACE)
    assert message.study_spec.parameters[0].scale_type == message.study_spec.parameters[0].ScaleType.UNIT_LOG_SCALE
    assert list(message.study_spec.parameters[2].categorical_value_spec.values) == ["32", "64", "128"]
    assert (message.max_trial_count, message.parallel_trial_count) == (12, 3)
    container = message.trial_job_spec.worker_pool_specs[0].container_spec
    assert container.image_uri == jobs.DEFAULTS["image"] and "--learning-rate" not in container.args
    spec["studySpec"]["metric"] = spec["studySpec"].pop("metrics")  # a misspelt field is refused, not dropped
    with pytest.raises(json_format.ParseError):
        json_format.ParseDict(spec, HyperparameterTuningJob.pb(HyperparameterTuningJob()), ignore_unknown_fields=False)


def _strict(node):
    """A structural CRD schema as the API server's strict field validation applies it: no unknown fields."""
    if isinstance(node, dict):
        if "properties" in node and "additionalProperties" not in node \
                and not node.get("x-kubernetes-preserve-unknown-fields"):
            node["additionalProperties"] = False
        for value in node.values():
            _strict(value)
    elif isinstance(node, list):
        for value in node:
            _strict(value)
    return node


def _schema_problems(spec: dict, schema_file: str) -> list[str]:
    import jsonschema

    schema = json.loads((REPO / "tests" / "schemas" / schema_file).read_text())
    assert (schema["kind"], f"{schema['group']}/{schema['version']}") == (spec["kind"], spec["apiVersion"])
    validator = jsonschema.Draft202012Validator(_strict(schema["openAPIV3Schema"]))
    return [f"{'.'.join(map(str, e.path))}: {e.message[:200]}" for e in validator.iter_errors(spec)]


@pytest.mark.parametrize("name, schema", [
    ("kubeflow-trainjob.yaml", "trainer.kubeflow.org_v1alpha1_trainjob.json"),
    ("kubeflow-training-runtime.yaml", "trainer.kubeflow.org_v1alpha1_trainingruntime.json"),
    ("kubeflow-tfjob.yaml", "kubeflow.org_v1_tfjob.json"),
    ("kubeflow-tfjob-2-workers.yaml", "kubeflow.org_v1_tfjob.json"),
])
def test_kubeflow_specs_pass_their_crd_schemas(name, schema):
    import yaml

    spec = yaml.safe_load((REPO / "jobs" / name).read_text())
    assert _schema_problems(spec, schema) == []
    spec["spec"]["replicas"] = 2  # not a field of any of them
    assert any("replicas" in problem for problem in _schema_problems(spec, schema))


def test_katib_experiment_tunes_tfjob_trials_that_pass_the_tfjob_schema():
    experiment = _spec("katib")
    spec = experiment["spec"]
    assert (experiment["apiVersion"], experiment["kind"]) == ("kubeflow.org/v1beta1", "Experiment")
    assert spec["objective"]["objectiveMetricName"] == "word_accuracy" and spec["objective"]["type"] == "maximize"
    assert spec["metricsCollectorSpec"] == {"collector": {"kind": "StdOut"}}
    assert [p["name"] for p in spec["parameters"]] == list(tuning_jobs.SEARCH_SPACE)
    trial = spec["trialTemplate"]["trialSpec"]
    assert _schema_problems(trial, "kubeflow.org_v1_tfjob.json") == []
    container = trial["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]
    assert spec["trialTemplate"]["primaryContainerName"] == container["name"] == "tensorflow"
    args = container["args"]
    assert args[args.index("--model-dir") + 1].endswith("/runs/${trialSpec.Name}")  # one run per trial
    references = {t["name"]: t["reference"] for t in spec["trialTemplate"]["trialParameters"]}
    for flag, name in (("--learning-rate", "learning_rate"), ("--warmup-steps", "warmup_steps"),
                       ("--batch-size", "batch_size")):
        placeholder = args[args.index(flag) + 1]
        assert references[re.fullmatch(r"\$\{trialParameters\.(\w+)\}", placeholder).group(1)] == name
    assert spec["objective"]["objectiveMetricName"] in "step=4 validation_loss=1 word_accuracy=0.5 char_error_rate=0.1"


def test_submit_a_tuning_job_to_a_local_sagemaker_api_and_follow_it(s3):
    result = run_cli("submit", "--platform", "sagemaker-tuning", "--set", "name=shadownet-tune-1", "--set",
                     "role=arn:aws:iam::123456789012:role/test", "--poll-seconds", "0.2",
                     "--sagemaker-endpoint-url", s3.direct_endpoint)
    lines = result.stdout.splitlines()
    assert lines[0] == "submitted arn:aws:sagemaker:us-east-1:123456789012:hyper-parameter-tuning-job/shadownet-tune-1"
    assert any(line.startswith("status=") and "completed_trials=" in line for line in lines), result.stdout
    import boto3

    client = boto3.client("sagemaker", endpoint_url=s3.direct_endpoint, region_name="us-east-1")
    job = client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="shadownet-tune-1")
    assert job["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]["MetricName"] == \
        "validation:word_accuracy"
    assert job["TrainingJobDefinition"]["AlgorithmSpecification"]["TrainingImage"] == jobs.DEFAULTS["image"]
    assert result.returncode == (0 if job["HyperParameterTuningJobStatus"] == "Completed" else 1)
    again = run_cli("submit", "--platform", "sagemaker-tuning", "--set", "name=shadownet-tune-1", "--set",
                    "role=arn:aws:iam::123456789012:role/test", "--no-wait", "--sagemaker-endpoint-url",
                    s3.direct_endpoint)
    assert again.returncode == 2 and again.stderr.startswith("shadownet: error: SageMaker refused job shadownet-tune-1")
