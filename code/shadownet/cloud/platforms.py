"""Each training platform's container contract, read in one place and turned into paths and settings.

Only the CLI calls ``detect``, with the real environment and ``/``; everything below the CLI sees plain
paths and a typed config. Precedence, highest first: explicit command-line flags, then what the
platform provides (its paths, SageMaker's hyperparameters), then the ``--config`` file, then the
defaults.

* SageMaker: ``<image> train``; records in the ``train`` channel, a run to fine-tune from in ``init``;
  hyperparameters (all strings) in ``/opt/ml/input/config/hyperparameters.json``; the run (checkpoints) in
  ``/opt/ml/checkpoints``, which the platform syncs; the export in ``/opt/ml/model``; the failure reason in
  ``/opt/ml/output/failure``.
* Vertex AI: ``AIP_CHECKPOINT_DIR``, ``AIP_MODEL_DIR``, ``AIP_TENSORBOARD_LOG_DIR`` (``gs://`` URIs, read
  through the ``/gcs/<bucket>`` mount); the records come from the job's args.
* UCloud UAI Train: ``--data_dir`` holds the records; ``--output_dir`` is uploaded after the job and
  downloaded back before a restarted one, so the run and the export live under it.
* Kubernetes / Kubeflow: paths from the args; the failure reason to ``/dev/termination-log``.
* Hyperparameter tuning: Vertex AI's trials report to ``CLOUD_ML_HP_METRIC_FILE`` (``metric_file``; see
  ``hypertune``); SageMaker and Katib read the log.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

from ..errors import ShadownetError

# The first 1024 characters become SageMaker's FailureReason; Kubernetes reads 4 KB of termination-log.
FAILURE_LIMITS = {"sagemaker": 1024, "kubernetes": 4096}
UAI_FLAGS = ("work_dir", "data_dir", "output_dir", "log_dir", "num_gpus")


@dataclass(frozen=True)
class Platform:
    name: str  # sagemaker, vertex, uai, kubernetes or local
    tfrecords_dir: str | None = None
    model_dir: str | None = None  # the training run: config, checkpoints (resume reads them here)
    export_dir: str | None = None  # the SavedModel written after training
    log_dir: str | None = None  # TensorBoard; None: <model_dir>/logs
    report_dir: str | None = None  # the evaluation report written after training
    init_dir: str | None = None  # a run to fine-tune from (SageMaker's channel "init"), unless init_from is set
    settings: Mapping[str, str] = field(default_factory=dict)  # training settings the platform passes
    failure_file: Path | None = None  # where the platform reads why a job failed
    # Vertex AI's tuning service reads the objective here (cloudml-hypertune's file); None: not reported.
    metric_file: str | None = None
    trial_id: str = "0"
    # Between SIGTERM and SIGKILL: SageMaker's 120 s; Kubernetes' default terminationGracePeriodSeconds,
    # and the 30 s notice of a preempted Compute Engine VM, elsewhere.
    grace_seconds: float = 30.0


def detect(env: Mapping[str, str], root: Path = Path("/"), uai: Mapping[str, str] | None = None) -> Platform:
    """The platform this process runs under. ``uai``: the UAI Train flags found on the command line."""
    platform = _platform(env, Path(root), uai)
    if HP_METRIC_FILE in env and platform.metric_file is None:  # a tuner that reads cloudml-hypertune's file
        platform = replace(platform, metric_file=env[HP_METRIC_FILE], trial_id=env.get(HP_TRIAL_ID, "0"))
    return platform


def _platform(env: Mapping[str, str], root: Path, uai: Mapping[str, str] | None) -> Platform:
    if (root / "opt/ml/input/config/hyperparameters.json").is_file() or "SM_TRAINING_ENV" in env \
            or "TRAINING_JOB_NAME" in env:
        return _sagemaker(env, root)
    if any(key in env for key in ("AIP_MODEL_DIR", "AIP_CHECKPOINT_DIR", "AIP_TENSORBOARD_LOG_DIR")):
        return _vertex(env)
    if uai and any(uai.get(key) for key in UAI_FLAGS):
        return _uai(uai)
    if "KUBERNETES_SERVICE_HOST" in env:
        log = root / "dev/termination-log"
        return Platform("kubernetes", failure_file=log if log.exists() else None)
    return Platform("local")


def _sagemaker(env: Mapping[str, str], root: Path) -> Platform:
    ml = root / "opt/ml"
    checkpoints = ml / "checkpoints"
    checkpoint_config = ml / "input/config/checkpointconfig.json"
    if checkpoint_config.is_file():
        checkpoints = Path(read_json(checkpoint_config).get("LocalPath") or checkpoints)
    failure_file = ml / "output/failure"
    try:
        settings = _hyperparameters(ml / "input/config/hyperparameters.json")
    except ShadownetError as exc:  # still a SageMaker job: the reason goes to its failure file (cli.main)
        exc.platform = Platform("sagemaker", failure_file=failure_file)
        raise
    tuning = settings.pop(TUNING_HYPERPARAMETER, None)
    if tuning is not None and env.get("TRAINING_JOB_NAME"):
        # A tuning trial: every trial syncs its checkpoint folder to the one S3 URI of the tuning job's
        # definition, so each keeps its run under its own job's name (a spot restart has the same name).
        checkpoints = checkpoints / env["TRAINING_JOB_NAME"]
    return Platform(
        "sagemaker",
        tfrecords_dir=env.get("SM_CHANNEL_TRAIN") or str(ml / "input/data/train"),
        model_dir=str(checkpoints),
        export_dir=env.get("SM_MODEL_DIR") or str(ml / "model"),
        report_dir=env.get("SM_OUTPUT_DATA_DIR") or str(ml / "output/data"),
        init_dir=env.get("SM_CHANNEL_INIT") or _channel(ml / "input/data/init"),
        settings=settings,
        failure_file=failure_file,
        grace_seconds=120.0,
    )


TUNING_HYPERPARAMETER = "_tuning_objective_metric"  # what SageMaker adds to the hyperparameters of a tuning trial


def _channel(path: Path) -> str | None:
    """A channel's folder if the job has it. One that cannot be looked into is left to the stage that reads
    it, which names the file it could not read (an unreadable /opt/ml/input/data is not about this channel)."""
    try:
        return str(path) if path.is_dir() else None
    except OSError:
        return None


def _hyperparameters(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    values = read_json(path)
    # The SageMaker SDK adds its own bookkeeping entries (sagemaker_program, sagemaker_region, ...), and a
    # tuning job its objective (_tuning_objective_metric): kept apart from the training settings.
    settings = {key: value for key, value in values.items()
                if not key.startswith("sagemaker_") and not key.startswith("_")}
    if TUNING_HYPERPARAMETER in values:
        settings[TUNING_HYPERPARAMETER] = str(values[TUNING_HYPERPARAMETER])
    return settings


def read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ShadownetError(f"{path}: cannot read ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise ShadownetError(f"{path}:{exc.lineno}: malformed JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise ShadownetError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


# cloudml-hypertune's contract: the file its HyperTune class writes (and its default), and the trial's id.
HP_METRIC_FILE = "CLOUD_ML_HP_METRIC_FILE"
HP_METRIC_FILE_DEFAULT = "/tmp/hypertune/output.metrics"
HP_TRIAL_ID = "CLOUD_ML_TRIAL_ID"


def _vertex(env: Mapping[str, str]) -> Platform:
    """Vertex AI's custom job; in a tuning job's trial the AIP_* folders are the trial's own."""
    return Platform(
        "vertex",
        model_dir=gcs_path(env.get("AIP_CHECKPOINT_DIR")),
        export_dir=gcs_path(env.get("AIP_MODEL_DIR")),
        log_dir=gcs_path(env.get("AIP_TENSORBOARD_LOG_DIR")),
        metric_file=env.get(HP_METRIC_FILE, HP_METRIC_FILE_DEFAULT),
        trial_id=env.get(HP_TRIAL_ID, "0"),
    )


def gcs_path(uri: str | None) -> str | None:
    """``gs://bucket/path`` -> ``/gcs/bucket/path``, where Vertex AI mounts its buckets (Cloud Storage FUSE)."""
    if not uri:
        return None
    return "/gcs/" + uri[len("gs://"):] if uri.startswith("gs://") else uri


def _uai(flags: Mapping[str, str]) -> Platform:
    output = flags.get("output_dir")
    return Platform(
        "uai",
        tfrecords_dir=flags.get("data_dir") or None,
        model_dir=f"{output.rstrip('/')}/run" if output else None,
        export_dir=f"{output.rstrip('/')}/export" if output else None,
        log_dir=flags.get("log_dir") or None,
        report_dir=output or None,
    )


def pick(flag: str | Path | None, provided: str | None, option: str, platform: Platform) -> str:
    """An explicit flag wins over the platform's path; one of them must be there."""
    if flag is not None:
        return str(flag)
    if provided:
        return provided
    where = "" if platform.name == "local" else f" ({platform.name} does not provide it)"
    raise ShadownetError(f"{option} is required{where}")


def write_failure(platform: Platform, message: str) -> None:
    """Leave the reason where the platform shows it; best effort, it must not hide the error itself."""
    if platform.failure_file is None:
        return
    limit = FAILURE_LIMITS["sagemaker" if platform.name == "sagemaker" else "kubernetes"]
    try:
        platform.failure_file.parent.mkdir(parents=True, exist_ok=True)
        platform.failure_file.write_text(message[:limit], encoding="utf-8")
    except OSError:
        pass


def job_index(env: Mapping[str, str]) -> int | None:
    """This machine's place among a job's identical machines, where the platform says it: a Kubernetes
    Indexed Job's ``JOB_COMPLETION_INDEX``, else this host's position in SageMaker's sorted ``SM_HOSTS``
    (the toolkit's numbering); None elsewhere."""
    if env.get("JOB_COMPLETION_INDEX", "").isdigit():
        return int(env["JOB_COMPLETION_INDEX"])
    if env.get("SM_HOSTS") and env.get("SM_CURRENT_HOST"):
        hosts = _json_value(env["SM_HOSTS"], "SM_HOSTS")
        return sagemaker_cluster(hosts, env["SM_CURRENT_HOST"], "SM_HOSTS").task_index
    return None


# -- several training machines -----------------------------------------------------------------------------
# Only the chief and the workers train under MultiWorkerMirroredStrategy; it has no parameter servers.
TRAINING_JOBS = ("chief", "worker")
SAGEMAKER_PORT = 8890  # the port the SageMaker TensorFlow toolkit gives every host for MultiWorkerMirrored
VERTEX_POOLS = {"workerpool0": "chief", "workerpool1": "worker"}  # pool 0 is the chief


@dataclass(frozen=True)
class Cluster:
    """The training machines of a job, as TF_CONFIG names them, and which of them this process is.

    ``jobs``: ``{"chief": ("host:port",), "worker": ("host:port", ...)}`` (chief optional).
    """

    jobs: Mapping[str, tuple[str, ...]]
    task_type: str
    task_index: int
    # Where it was read (TF_CONFIG, CLUSTER_SPEC, jobset, SM_HOSTS, resourceconfig): shown, not compared.
    source: str = field(default="TF_CONFIG", compare=False)

    @property
    def workers(self) -> int:
        """Every process that trains, the chief included."""
        return sum(len(self.jobs.get(job, ())) for job in TRAINING_JOBS)

    @property
    def input_index(self) -> int:
        """This process's input pipeline among all (TensorFlow's id in the cluster): the chief 0, then the workers."""
        chief = len(self.jobs.get("chief", ()))
        return self.task_index if self.task_type == "chief" else chief + self.task_index

    @property
    def is_chief(self) -> bool:
        """TensorFlow's rule: the ``chief`` task when there is one, else worker 0."""
        if self.jobs.get("chief"):
            return self.task_type == "chief"
        return self.task_type == "worker" and self.task_index == 0

    def tf_config(self) -> dict:
        return {"cluster": {job: list(hosts) for job, hosts in self.jobs.items()},
                "task": {"type": self.task_type, "index": self.task_index}}


def cluster(env: Mapping[str, str], root: Path = Path("/")) -> Cluster | None:
    """The cluster this process trains in, or None when it trains alone (one worker, or no cluster at all).

    ``TF_CONFIG`` (set by Kubeflow's TFJob and by Vertex AI, or by hand) comes first; then Vertex AI's
    ``CLUSTER_SPEC`` (pools ``workerpool0``, ``workerpool1``); then a Kubeflow Trainer v2 / JobSet pod
    (``jobset_cluster``); then SageMaker's hosts (``SM_HOSTS`` and ``SM_CURRENT_HOST``, else
    ``resourceconfig.json``): every host a worker on port 8890, this one at its position in the sorted host
    list, as the SageMaker TensorFlow toolkit sets TF_CONFIG.
    """
    if env.get("TF_CONFIG"):
        found = parse_tf_config(env["TF_CONFIG"], "TF_CONFIG")
    elif env.get("CLUSTER_SPEC"):
        found = parse_vertex_cluster_spec(env["CLUSTER_SPEC"])
    elif env.get(JOBSET_ENV["jobset"]):
        found = jobset_cluster(env)
    elif env.get("SM_HOSTS") and env.get("SM_CURRENT_HOST"):
        hosts = _json_value(env["SM_HOSTS"], "SM_HOSTS")
        found = sagemaker_cluster(hosts, env["SM_CURRENT_HOST"], "SM_HOSTS")
    elif (root / "opt/ml/input/config/resourceconfig.json").is_file():
        path = root / "opt/ml/input/config/resourceconfig.json"
        resources = read_json(path)
        found = sagemaker_cluster(resources.get("hosts"), resources.get("current_host"), str(path))
        found = Cluster(found.jobs, found.task_type, found.task_index, "resourceconfig")
    else:
        return None
    return found if found.workers > 1 else None


def sagemaker_cluster(hosts, current_host, source: str) -> Cluster:
    """SageMaker's host names -> every host a worker on port 8890; ``task_index``: this host's sorted position."""
    if not isinstance(hosts, list) or not hosts or not all(isinstance(h, str) for h in hosts):
        raise ShadownetError(f"{source}: expected a JSON list of host names, found {hosts!r}")
    ordered = sorted(hosts)
    if current_host not in ordered:
        raise ShadownetError(f"{source}: the current host {current_host!r} is not among the hosts {ordered}")
    return Cluster({"worker": tuple(f"{host}:{SAGEMAKER_PORT}" for host in ordered)}, "worker",
                   ordered.index(current_host), "SM_HOSTS")


# Kubeflow Trainer v2 runs a TrainJob as a JobSet and, having no TensorFlow plugin, sets no TF_CONFIG: the
# container builds its cluster from the pod's environment. Our TrainingRuntime (jobs/kubeflow-training-runtime.yaml)
# passes the JobSet's labels in through the downward API; the Indexed Job sets JOB_COMPLETION_INDEX.
JOBSET_ENV = {"jobset": "JOBSET_NAME", "replicated_job": "REPLICATED_JOB_NAME", "job_index": "JOB_INDEX",
              "pod_index": "JOB_COMPLETION_INDEX", "nodes": "SHADOWNET_NUM_NODES", "port": "SHADOWNET_PORT",
              "subdomain": "JOBSET_SUBDOMAIN"}
JOBSET_PORT = 2222  # node i listens on JOBSET_PORT + i: fixed per node, and nodes that share a host never collide


def jobset_cluster(env: Mapping[str, str]) -> Cluster:
    """A JobSet pod's environment -> every node a worker, node 0 (the chief) first, on its stable host name.

    JobSet gives each pod the DNS name ``<jobset>-<replicatedJob>-<jobIndex>-<podIndex>.<subdomain>`` (the
    subdomain is the JobSet's name unless its spec sets another); ``SHADOWNET_NUM_NODES`` is the TrainJob's
    ``numNodes``. Node ``i`` listens on ``SHADOWNET_PORT`` (default 2222) + ``i``.
    """
    name = {key: env.get(variable, "") for key, variable in JOBSET_ENV.items()}
    for key, default in (("replicated_job", "node"), ("job_index", "0"), ("port", str(JOBSET_PORT))):
        name[key] = name[key] or default
    for key in ("job_index", "pod_index", "nodes", "port"):
        if not name[key].isdigit():
            raise ShadownetError(f"{JOBSET_ENV[key]}: a whole number is needed to build the JobSet's cluster, "
                                 f"found {name[key]!r}")
    nodes, pod, port = int(name["nodes"]), int(name["pod_index"]), int(name["port"])
    if nodes < 1 or pod >= nodes:
        raise ShadownetError(f"{JOBSET_ENV['pod_index']}={pod} is not a node of {JOBSET_ENV['nodes']}={nodes}")
    if port + nodes > 65536:
        raise ShadownetError(f"{JOBSET_ENV['port']}={port}: ports {port}..{port + nodes - 1} do not all exist")
    subdomain = name["subdomain"] or name["jobset"]
    hosts = tuple(f"{name['jobset']}-{name['replicated_job']}-{name['job_index']}-{i}.{subdomain}:{port + i}"
                  for i in range(nodes))
    return Cluster({"worker": hosts}, "worker", pod, "jobset")


def parse_tf_config(text: str, source: str = "TF_CONFIG") -> Cluster:
    """TF_CONFIG's JSON -> Cluster; a task that does not train (ps, evaluator) is refused with a message."""
    data = _json_value(text, source)
    if not isinstance(data, dict) or not isinstance(data.get("cluster"), dict) \
            or not isinstance(data.get("task"), dict):
        raise ShadownetError(f'{source}: expected {{"cluster": {{"worker": ["host:port", ...]}}, '
                             f'"task": {{"type": "worker", "index": 0}}}}, found {text.strip()[:200]}')
    return _cluster_of(data["cluster"], data["task"], source)


def parse_vertex_cluster_spec(text: str) -> Cluster:
    """Vertex AI's CLUSTER_SPEC (pools ``workerpool0``…) -> Cluster: pool 0 the chief, pool 1 the workers."""
    data = _json_value(text, "CLUSTER_SPEC")
    if not isinstance(data, dict) or not isinstance(data.get("cluster"), dict) \
            or not isinstance(data.get("task"), dict):
        raise ShadownetError(f"CLUSTER_SPEC: expected cluster and task entries, found {text.strip()[:200]}")
    task = dict(data["task"])
    pool = task.get("type")
    task["type"] = VERTEX_POOLS.get(pool, pool)
    jobs = {VERTEX_POOLS[name]: hosts for name, hosts in data["cluster"].items() if name in VERTEX_POOLS}
    found = _cluster_of(jobs, task, f"CLUSTER_SPEC (pool {pool})")
    return Cluster(found.jobs, found.task_type, found.task_index, "CLUSTER_SPEC")


def _cluster_of(jobs: Mapping, task: Mapping, source: str) -> Cluster:
    task_type, task_index = task.get("type"), task.get("index", 0)
    if task_type not in TRAINING_JOBS:
        raise ShadownetError(f"{source}: task type {task_type!r} does not train; MultiWorkerMirroredStrategy "
                             f"runs only {' and '.join(TRAINING_JOBS)} tasks (no parameter servers or evaluators)")
    training = {}
    for job in TRAINING_JOBS:
        hosts = jobs.get(job) or []
        if not isinstance(hosts, list) or not all(isinstance(h, str) and ":" in h for h in hosts):
            raise ShadownetError(f"{source}: cluster.{job} must be a list of \"host:port\", found {hosts!r}")
        if hosts:
            training[job] = tuple(hosts)
    if len(training.get("chief", ())) > 1:
        raise ShadownetError(f"{source}: at most one chief, found {len(training['chief'])}")
    if not isinstance(task_index, int) or not 0 <= task_index < len(training.get(task_type, ())):
        raise ShadownetError(f"{source}: task {task_type} {task_index!r} is not in the cluster "
                             f"({len(training.get(task_type, ()))} {task_type} tasks)")
    return Cluster(training, task_type, task_index)


def _json_value(text: str, source: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ShadownetError(f"{source}: malformed JSON: {exc.msg} (column {exc.colno})") from None


# -- hosting (``serve``) ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hosting:
    """What a model-hosting platform tells ``shadownet serve``; ``None``: not said (the flags' defaults apply)."""

    name: str  # sagemaker, vertex, kserve or local
    model: str | None = None  # the export: a folder, or gs:// (Vertex AI)
    port: int | None = None
    workers: int | None = None
    health_routes: tuple[str, ...] = ()
    predict_routes: tuple[str, ...] = ()


# The port `shadownet serve` listens on where neither --port nor the platform (AIP_HTTP_PORT,
# SAGEMAKER_BIND_TO_PORT) names one; the deployment specs (serving_jobs) expose and probe it.
SERVING_PORT = 8080
SAGEMAKER_MODEL = "opt/ml/model"  # where SageMaker hosting unpacks the model archive
KSERVE_MODEL = "mnt/models"  # where KServe's storage initializer puts storageUri


def hosting(env: Mapping[str, str], root: Path = Path("/")) -> Hosting:
    """SageMaker: ``SAGEMAKER_BIND_TO_PORT``, ``SAGEMAKER_MODEL_SERVER_WORKERS``, ``/opt/ml/model``. Vertex AI:
    ``AIP_HTTP_PORT``, ``AIP_HEALTH_ROUTE``, ``AIP_PREDICT_ROUTE``, ``AIP_STORAGE_URI``. KServe: ``/mnt/models``."""
    root = Path(root)
    if "AIP_HTTP_PORT" in env or "AIP_STORAGE_URI" in env:
        return Hosting("vertex", model=env.get("AIP_STORAGE_URI") or None, port=_number(env, "AIP_HTTP_PORT"),
                       health_routes=tuple(r for r in [env.get("AIP_HEALTH_ROUTE")] if r),
                       predict_routes=tuple(r for r in [env.get("AIP_PREDICT_ROUTE")] if r))
    # Hosting's own variables or its model folder (not any SAGEMAKER_*: the SDK's settings are no endpoint)
    sagemaker = bool({"SAGEMAKER_BIND_TO_PORT", "SAGEMAKER_MODEL_SERVER_WORKERS"} & set(env)) \
        or (root / SAGEMAKER_MODEL).is_dir()
    if sagemaker:
        return Hosting("sagemaker", model=str(root / SAGEMAKER_MODEL), port=_number(env, "SAGEMAKER_BIND_TO_PORT"),
                       workers=_number(env, "SAGEMAKER_MODEL_SERVER_WORKERS"))
    if (root / KSERVE_MODEL).is_dir():
        return Hosting("kserve", model=str(root / KSERVE_MODEL))
    return Hosting("local")


def _number(env: Mapping[str, str], key: str) -> int | None:
    value = env.get(key, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ShadownetError(f"{key}={value!r}: expected a whole number >= 1")
    return int(value)
