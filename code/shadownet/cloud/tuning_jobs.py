"""The hyperparameter tuning specs of ``shadownet jobs render``: SageMaker, Vertex AI and Katib.

Each tunes the same search space (``SEARCH_SPACE``) towards the same objective (the validation word
accuracy, ``OBJECTIVE``), with trials that are ordinary training jobs of our image, given the cloud
experiment's settings (configs/cloud.yaml) and each trial's values as hyperparameters or flags:

* SageMaker: a CreateHyperParameterTuningJob request (Bayesian, early stopping, spot trials with
  checkpoints); the objective is a MetricDefinition over the log. Each trial keeps its run under its own job
  name in the checkpoint folder (``platforms._sagemaker``).
* Vertex AI: a HyperparameterTuningJob (for ``gcloud ai hp-tuning-jobs create --config``); the trial is the
  custom job of ``training_jobs.vertex``, given ``--learning_rate=...`` flags; it reports to cloudml-hypertune's file.
  Vertex gives every trial its own AIP_* folders.
* Katib: a v1beta1 Experiment whose trials are our TFJob; the StdOut collector reads ``name=value`` from the
  log; every trial trains into ``runs/<trial name>``.
"""

from __future__ import annotations

import copy
import re

from . import specs, training_jobs

OBJECTIVE = "word_accuracy"  # validation word accuracy: maximised
# name -> (kind, bounds or values, scale). Trials are short training runs: the full experiment's settings
# otherwise (the tuning job's parameters `max_trials` and `parallel_trials` set how many).
SEARCH_SPACE = {
    "learning_rate": ("double", (2e-4, 5e-3), "log"),
    "warmup_steps": ("integer", (100, 2000), "linear"),
    "batch_size": ("discrete", (32, 64, 128), None),
}
TUNED = tuple(SEARCH_SPACE)


def _static(hp: dict[str, str]) -> dict[str, str]:
    """The trials' fixed hyperparameters: the experiment's, without those the tuner sets."""
    return {key: value for key, value in hp.items() if key not in TUNED}


def _number(value) -> str:
    return format(value, "g") if isinstance(value, float) else str(value)


def sagemaker_tuning(p: dict[str, str], hp: dict[str, str]) -> dict:
    """CreateHyperParameterTuningJob: Bayesian search maximising validation:word_accuracy."""
    trial = training_jobs.sagemaker(p, _static(hp))
    definition = {key: trial[key] for key in ("AlgorithmSpecification", "RoleArn", "InputDataConfig",
                                               "OutputDataConfig", "ResourceConfig", "StoppingCondition",
                                               "EnableManagedSpotTraining", "CheckpointConfig", "RetryStrategy")}
    definition["StaticHyperParameters"] = trial["HyperParameters"]
    ranges: dict[str, list] = {"ContinuousParameterRanges": [], "IntegerParameterRanges": [],
                               "CategoricalParameterRanges": []}
    for name, (kind, values, scale) in SEARCH_SPACE.items():
        if kind == "discrete":
            ranges["CategoricalParameterRanges"].append({"Name": name, "Values": [_number(v) for v in values]})
        else:
            ranges["ContinuousParameterRanges" if kind == "double" else "IntegerParameterRanges"].append(
                {"Name": name, "MinValue": _number(values[0]), "MaxValue": _number(values[1]),
                 "ScalingType": "Logarithmic" if scale == "log" else "Linear"})
    return {
        "HyperParameterTuningJobName": p["name"],
        "HyperParameterTuningJobConfig": {
            "Strategy": "Bayesian",
            "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": f"validation:{OBJECTIVE}"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": int(p["max_trials"]),
                               "MaxParallelTrainingJobs": int(p["parallel_trials"])},
            "ParameterRanges": ranges,
            "TrainingJobEarlyStoppingType": "Auto",
        },
        "TrainingJobDefinition": definition,
    }


def vertex_tuning(p: dict[str, str], hp: dict[str, str]) -> dict:
    """HyperparameterTuningJob: the study (metric, parameters, algorithm) and the trial's CustomJob spec."""
    parameters = []
    for name, (kind, values, scale) in SEARCH_SPACE.items():
        if kind == "discrete":  # categorical: the trial gets "--batch_size=64", where a discrete value is "64.0"
            parameters.append({"parameterId": name, "categoricalValueSpec": {"values": [_number(v) for v in values]}})
            continue
        spec = "doubleValueSpec" if kind == "double" else "integerValueSpec"
        bounds = (float(values[0]), float(values[1])) if kind == "double" else (str(values[0]), str(values[1]))
        parameters.append({"parameterId": name, spec: {"minValue": bounds[0], "maxValue": bounds[1]},
                           "scaleType": "UNIT_LOG_SCALE" if scale == "log" else "UNIT_LINEAR_SCALE"})
    trial = training_jobs.vertex(p, _static(hp))
    trial["scheduling"].pop("restartJobOnWorkerRestart", None)
    return {
        "displayName": p["name"],
        "studySpec": {
            "metrics": [{"metricId": OBJECTIVE, "goal": "MAXIMIZE"}],
            "parameters": parameters,
            "algorithm": "ALGORITHM_UNSPECIFIED",  # Vertex AI's default: Bayesian optimisation
            "measurementSelectionType": "BEST_MEASUREMENT",
        },
        "maxTrialCount": int(p["max_trials"]),
        "parallelTrialCount": int(p["parallel_trials"]),
        "maxFailedTrialCount": max(1, int(p["max_trials"]) // 4),
        "trialJobSpec": trial,
    }


KATIB_SUCCESS = 'status.conditions.#(type=="Succeeded")#|#(status=="True")#'
KATIB_FAILURE = 'status.conditions.#(type=="Failed")#|#(status=="True")#'


def katib(p: dict[str, str], hp: dict[str, str]) -> dict:
    """Experiment (kubeflow.org/v1beta1): Bayesian optimisation over TFJob trials, metrics from stdout."""
    parameters, trial_parameters, flags = [], [], []
    for name, (kind, values, scale) in SEARCH_SPACE.items():
        if kind == "discrete":
            space = {"list": [_number(v) for v in values]}
        else:
            space = {"min": _number(values[0]), "max": _number(values[1]),
                     "distribution": "logUniform" if scale == "log" else "uniform"}
        parameters.append({"name": name, "parameterType": {"double": "double", "integer": "int"}.get(kind, "discrete"),
                           "feasibleSpace": space})
        reference = re.sub(r"_(\w)", lambda m: m.group(1).upper(), name)  # trial parameter names: camelCase
        trial_parameters.append({"name": reference, "reference": name})
        flags += [f"--{name.replace('_', '-')}", f"${{trialParameters.{reference}}}"]
    tfjob = training_jobs.kubeflow({**p, "name": "${trialSpec.Name}"}, _static(hp))
    tfjob.pop("metadata")
    container = tfjob["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]
    args = container["args"]
    # Each trial trains into a run of its own, named after the trial: it never resumes another's.
    args[args.index("--model-dir") + 1] = specs.uris(p)["run"].rsplit("/", 1)[0] + "/${trialSpec.Name}"
    args[args.index("--export-dir") + 1] += "/${trialSpec.Name}"
    # The StdOut collector wraps the command it is given.
    fields = {"name": container.pop("name"), "image": container.pop("image"), "command": ["shadownet"],
              "args": args + flags}
    container.pop("args")
    tfjob["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0] = {**fields, **container}
    return {
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": p["name"]},
        "spec": {
            "objective": {"type": "maximize", "objectiveMetricName": OBJECTIVE,
                          "additionalMetricNames": ["char_error_rate", "validation_loss"]},
            "algorithm": {"algorithmName": "bayesianoptimization"},
            "parallelTrialCount": int(p["parallel_trials"]),
            "maxTrialCount": int(p["max_trials"]),
            "maxFailedTrialCount": max(1, int(p["max_trials"]) // 4),
            "metricsCollectorSpec": {"collector": {"kind": "StdOut"}},
            "parameters": parameters,
            "trialTemplate": {"primaryContainerName": "tensorflow", "successCondition": KATIB_SUCCESS,
                              "failureCondition": KATIB_FAILURE, "trialParameters": trial_parameters,
                              "trialSpec": {"apiVersion": "kubeflow.org/v1", "kind": "TFJob", **copy.deepcopy(tfjob)}},
        },
    }


def check_sagemaker_tuning(spec: dict) -> list[str]:
    problems = specs.botocore_problems(spec, "CreateHyperParameterTuningJob")
    if not re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}", spec["HyperParameterTuningJobName"]):
        problems.append(f"HyperParameterTuningJobName {spec['HyperParameterTuningJobName']!r}: letters, digits "
                        "and '-', at most 32")
    definition = spec["TrainingJobDefinition"]
    names = {d["Name"] for d in definition["AlgorithmSpecification"]["MetricDefinitions"]}
    objective = spec["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]["MetricName"]
    if objective not in names:
        problems.append(f"the objective {objective} is none of the MetricDefinitions ({', '.join(sorted(names))})")
    tuned = set(TUNED) & set(definition["StaticHyperParameters"])
    if tuned:
        problems.append(f"StaticHyperParameters must not hold the tuned {', '.join(sorted(tuned))}")
    return problems


def check_vertex_tuning(spec: dict) -> list[str]:
    problems = specs.vertex_problems(spec["trialJobSpec"])
    metrics = [m.get("metricId") for m in spec["studySpec"]["metrics"]]
    if metrics != [OBJECTIVE]:
        problems.append(f"studySpec.metrics: expected [{OBJECTIVE}], found {metrics}")
    if spec["parallelTrialCount"] > spec["maxTrialCount"]:
        problems.append("parallelTrialCount: at most maxTrialCount")
    return problems


def check_katib(spec: dict) -> list[str]:
    problems = specs.kubernetes_problems(spec["spec"]["trialTemplate"]["trialSpec"])
    template = spec["spec"]["trialTemplate"]
    known = {parameter["name"] for parameter in spec["spec"]["parameters"]}
    for trial_parameter in template["trialParameters"]:
        if trial_parameter["reference"] not in known:
            problems.append(f"trialParameters.{trial_parameter['name']}: no parameter {trial_parameter['reference']}")
    text = repr(template["trialSpec"])
    for name in re.findall(r"\$\{trialParameters\.(\w+)\}", text):
        if name not in {t["name"] for t in template["trialParameters"]}:
            problems.append(f"trialSpec uses ${{trialParameters.{name}}}, which trialParameters does not define")
    return problems
