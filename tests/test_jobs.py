"""Job specs: rendered, checked against the platforms' own models and schemas, and kept in jobs/."""

from __future__ import annotations

import copy
import re

import pytest

from conftest import REPO, Dataset, run_cli, words
from shadownet.cloud import jobs
from shadownet.errors import ShadownetError


@pytest.mark.parametrize("platform", jobs.PLATFORMS)
def test_jobs_folder_holds_each_spec_rendered_with_the_defaults(platform):
    assert (REPO / "jobs" / jobs.FILES[platform]).read_text() == jobs.render(platform), (
        f"jobs/{jobs.FILES[platform]} is stale: shadownet jobs render --platform {platform} --out it")


def test_sagemaker_request_is_valid_for_botocore_and_spot_ready():
    spec = jobs.parsed(jobs.render("sagemaker", ["image=1234.dkr.ecr.eu-west-1.amazonaws.com/shadownet/train-cpu:1",
                                                 "bucket=my-data", "hp.batch_size=32", "max_runtime_seconds=7200"]),
                       "sagemaker")
    jobs.check("sagemaker", spec)
    assert spec["AlgorithmSpecification"]["TrainingImage"].startswith("1234.dkr.ecr")
    assert spec["InputDataConfig"][0]["ChannelName"] == "train"
    assert spec["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == "s3://my-data/shadownet/records"
    assert spec["HyperParameters"]["batch_size"] == "32" and all(isinstance(v, str) for v in
                                                                  spec["HyperParameters"].values())
    assert spec["EnableManagedSpotTraining"] is True
    assert spec["StoppingCondition"] == {"MaxRuntimeInSeconds": 7200, "MaxWaitTimeInSeconds": 14400}
    assert spec["CheckpointConfig"]["LocalPath"] == "/opt/ml/checkpoints"
    broken = copy.deepcopy(spec)
    broken["ResourceConfig"]["InstanceCount"] = "one"
    with pytest.raises(ShadownetError, match="ResourceConfig.InstanceCount"):
        jobs.check("sagemaker", broken)
    broken = copy.deepcopy(spec)
    broken["StoppingCondition"]["MaxWaitTimeInSeconds"] = 60
    with pytest.raises(ShadownetError, match="MaxWaitTimeInSeconds >= MaxRuntimeInSeconds"):
        jobs.check("sagemaker", broken)


@pytest.mark.slow
def test_metric_definitions_read_the_lines_training_prints(tmp_path):
    ds = Dataset(tmp_path / "dataset")
    for i, word in enumerate(words(30, seed=2)):
        ds.sample("Train" if i < 24 else "Test", f"img/{i}.jpg", word)
    ds.write()
    run_cli("tfrecords", "--dataset-dir", ds.root, "--save-dir", tmp_path / "records", "--workers", "1", check=True)
    log = run_cli("train", "--tfrecords-dir", tmp_path / "records", "--model-dir", tmp_path / "run", "--model",
                  "shadownet_small", "--batch-size", "4", "--train-steps", "2", "--log-every", "1", "--eval-every",
                  "2", check=True).stdout
    found = {}
    for metric in jobs.METRIC_DEFINITIONS:
        values = [float(v) for v in re.findall(metric["Regex"], log)]
        assert values, f"{metric['Name']}: {metric['Regex']} matches nothing in\n{log}"
        found[metric["Name"]] = values
    # loss= is not validation_loss=; the one evaluation, then the best once more at the end (the tuners' last value)
    assert len(found["train:loss"]) == 2 and len(found["validation:loss"]) == 2
    assert found["validation:loss"][0] == found["validation:loss"][1]
    assert 0.0 <= found["validation:word_accuracy"][0] <= 1.0


@pytest.mark.parametrize("platform", ["kubeflow", "k8s-tfrecords"])
def test_kubernetes_objects_pass_the_kubernetes_schemas(platform):
    pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is a dev dependency")
    spec = jobs.parsed(jobs.render(platform, ["endpoint_url=https://minio.example:9000", "cpu=4"]), platform)
    jobs.check(platform, spec)
    template = spec["spec"]["tfReplicaSpecs"]["Worker"]["template"] if platform == "kubeflow" else spec["spec"][
        "template"]
    container = template["spec"]["containers"][0]
    assert {"name": "AWS_ENDPOINT_URL", "value": "https://minio.example:9000"} in container["env"]
    assert not [e for e in container["env"] if "value" in e and e["name"].startswith("AWS_SECRET")]  # secret refs only
    container["replicas"] = 1  # a field containers do not have: strict validation refuses it
    with pytest.raises(ShadownetError, match="not valid"):
        jobs.check(platform, spec)


def test_kubeflow_retries_preemption_and_names_its_container():
    spec = jobs.parsed(jobs.render("kubeflow"), "kubeflow")
    worker = spec["spec"]["tfReplicaSpecs"]["Worker"]
    assert worker["restartPolicy"] == "ExitCode"  # 143 (SIGTERM, checkpointed) is retried; 1 and 2 are not
    assert worker["template"]["spec"]["containers"][0]["name"] == "tensorflow"
    worker["template"]["spec"]["containers"][0]["name"] = "trainer"
    with pytest.raises(ShadownetError, match="must be named 'tensorflow'"):
        jobs.check("kubeflow", spec)


def test_vertex_and_uai():
    vertex = jobs.parsed(jobs.render("vertex", ["bucket=b", "max_runtime_seconds=3600"]), "vertex")
    pool = vertex["workerPoolSpecs"][0]
    assert pool["containerSpec"]["args"][:3] == ["train", "--tfrecords-dir", "/gcs/b/shadownet/records"]
    assert vertex["scheduling"] == {"timeout": "3600s", "restartJobOnWorkerRestart": True, "strategy": "SPOT"}
    assert vertex["baseOutputDirectory"]["outputUriPrefix"].startswith("gs://b/")
    uai = jobs.parsed(jobs.render("uai", ["hp.train_steps=500"]), "uai")
    assert uai["command"].startswith("shadownet train ") and "--train-steps 500" in uai["command"]


def test_bad_settings_are_refused(tmp_path):
    with pytest.raises(ShadownetError, match="unknown parameter"):
        jobs.render("sagemaker", ["colour=blue"])
    with pytest.raises(ShadownetError, match="expected key=value"):
        jobs.render("sagemaker", ["image"])
    result = run_cli("jobs", "render", "--platform", "sagemaker", "--set", "hp.optimiser=adam")
    assert result.returncode == 2 and "unknown setting 'optimiser'" in result.stderr
    out = tmp_path / "job.json"
    assert run_cli("jobs", "render", "--platform", "sagemaker", "--out", out, check=True).stdout == ""
    assert out.read_text() == jobs.render("sagemaker")


def test_submit_to_a_local_sagemaker_api_and_follow_the_job(s3):
    """create_training_job and describe_training_job against moto's server on 127.0.0.1."""
    result = run_cli("submit", "--platform", "sagemaker", "--set", "name=shadownet-test-1", "--set",
                     "role=arn:aws:iam::123456789012:role/test", "--poll-seconds", "0.2",
                     "--sagemaker-endpoint-url", s3.direct_endpoint, check=True)
    lines = result.stdout.splitlines()
    assert lines[0].startswith("submitted arn:aws:sagemaker:us-east-1:") and lines[0].endswith(
        "training-job/shadownet-test-1")
    assert any(line.startswith("status=") for line in lines) and lines[-1].startswith("completed")
    import boto3

    client = boto3.client("sagemaker", endpoint_url=s3.direct_endpoint, region_name="us-east-1")
    job = client.describe_training_job(TrainingJobName="shadownet-test-1")
    assert job["AlgorithmSpecification"]["TrainingImage"] == jobs.DEFAULTS["image"]
    assert job["HyperParameters"]["mixed_precision"] == "bfloat16"
    quick = run_cli("submit", "--platform", "sagemaker", "--set", "name=shadownet-test-2", "--set",
                    "role=arn:aws:iam::123456789012:role/test", "--no-wait", "--sagemaker-endpoint-url",
                    s3.direct_endpoint, check=True)
    assert quick.stdout.splitlines() == [
        "submitted arn:aws:sagemaker:us-east-1:123456789012:training-job/shadownet-test-2"]


def test_submit_without_kubectl_prints_the_command_and_the_spec(tmp_path):
    import os

    env = dict(os.environ, PATH=str(tmp_path))  # no kubectl, no gcloud; run_cli starts Python by its full path
    result = run_cli("submit", "--platform", "kubeflow", "--set", "bucket=b", env=env, check=True)
    assert result.stdout.startswith("kubectl is not installed here; run this yourself:\n  kubectl apply -f -")
    assert "kind: TFJob" in result.stdout and "s3://b/shadownet/records" in result.stdout
    result = run_cli("submit", "--platform", "vertex", env=env, check=True)
    assert "gcloud ai custom-jobs create --region=us-central1 --display-name=shadownet" in result.stdout
    assert "workerPoolSpecs:" in result.stdout


@pytest.mark.parametrize("platform", sorted(jobs.EXAMPLES))
def test_jobs_folder_holds_the_multi_machine_examples(platform):
    text = jobs.render(platform, jobs.EXAMPLE_SETTINGS)
    assert (REPO / "jobs" / jobs.EXAMPLES[platform]).read_text() == text, f"jobs/{jobs.EXAMPLES[platform]} is stale"
    spec = jobs.parsed(text, platform)
    if platform == "sagemaker":
        assert spec["ResourceConfig"]["InstanceCount"] == 2
    elif platform == "vertex":
        assert [pool["replicaCount"] for pool in spec["workerPoolSpecs"]] == [1, 1]  # chief pool, worker pool
        assert spec["workerPoolSpecs"][0]["containerSpec"] == spec["workerPoolSpecs"][1]["containerSpec"]
    else:
        assert spec["spec"]["tfReplicaSpecs"]["Worker"]["replicas"] == 2


def test_tfrecords_job_is_an_indexed_job_of_shards():
    pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is a dev dependency")
    spec = jobs.parsed(jobs.render("k8s-tfrecords", ["shards=3"]), "k8s-tfrecords")
    jobs.check("k8s-tfrecords", spec)
    assert (spec["spec"]["completionMode"], spec["spec"]["completions"], spec["spec"]["parallelism"]) == (
        "Indexed", 3, 3)
    args = spec["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[-2:] == ["--num-shards", "3"] and "--shard-index" not in args  # JOB_COMPLETION_INDEX gives it
    with pytest.raises(ShadownetError, match="--set shards: a whole number >= 1"):
        jobs.render("k8s-tfrecords", ["shards=0"])


# --- the restricted Pod Security Standard --------------------------------------------------------------------

# Kubernetes objects that hold pod templates (a TrainJob has none: its pods are its TrainingRuntime's).
KUBERNETES_SPECS = sorted(path.name for path in (REPO / "jobs").glob("*.yaml") if "apiVersion" in path.read_text()
                          and "kind: TrainJob" not in path.read_text())


def _effective(pod: dict, container: dict, key: str):
    """A security setting as Kubernetes applies it: the container's own, else the pod's."""
    own = container.get("securityContext") or {}
    return own[key] if key in own else (pod.get("securityContext") or {}).get(key)


def test_the_kubernetes_specs_are_the_ones_in_jobs():
    assert KUBERNETES_SPECS == ["k8s-tfrecords-job.yaml", "katib-experiment.yaml", "kserve-inferenceservice.yaml",
                                "kubeflow-tfjob-2-workers.yaml", "kubeflow-tfjob.yaml",
                                "kubeflow-training-runtime.yaml"]


@pytest.mark.parametrize("name", KUBERNETES_SPECS)
def test_every_pod_in_jobs_runs_as_the_image_user_within_the_restricted_standard(name):
    import yaml

    spec = yaml.safe_load((REPO / "jobs" / name).read_text())
    pods = jobs.pod_specs(spec)
    assert pods, f"{name}: no pod spec found"
    for where, pod in pods:
        context = pod["securityContext"]
        assert (context["runAsUser"], context["runAsGroup"], context["fsGroup"]) == (10001, 10001, 10001), where
        assert not {"hostNetwork", "hostPID", "hostIPC", "volumes"} & set(pod), where
        for container in pod["containers"]:
            assert _effective(pod, container, "runAsNonRoot") is True
            assert _effective(pod, container, "runAsUser") == 10001
            assert _effective(pod, container, "seccompProfile") == {"type": "RuntimeDefault"}
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
            assert not _effective(pod, container, "privileged")


def _first_pod(spec: dict) -> dict:
    return jobs.pod_specs(spec)[0][1]


@pytest.mark.parametrize("platform", ["kubeflow", "k8s-tfrecords"])
@pytest.mark.parametrize("where, key, value, problem", [
    ("pod", "runAsNonRoot", None, "runAsNonRoot must be true"),
    ("pod", "runAsUser", 0, "securityContext.runAsUser: a numeric non-root id"),
    ("pod", "runAsGroup", "shadownet", "securityContext.runAsGroup: a numeric non-root id"),
    ("pod", "fsGroup", None, "securityContext.fsGroup: a numeric non-root id"),
    ("pod", "seccompProfile", {"type": "Unconfined"}, "seccompProfile.type must be RuntimeDefault"),
    ("container", "allowPrivilegeEscalation", True, "allowPrivilegeEscalation must be false"),
    ("container", "capabilities", {"drop": ["NET_RAW"]}, "capabilities.drop must include ALL"),
    ("container", "capabilities", {"drop": ["ALL"], "add": ["SYS_ADMIN"]}, "only NET_BIND_SERVICE"),
    ("container", "runAsUser", 0, "runAsUser must not be 0"),
    ("container", "privileged", True, "privileged is not allowed"),
])
def test_a_spec_outside_the_restricted_standard_is_refused(platform, where, key, value, problem):
    spec = jobs.parsed(jobs.render(platform), platform)
    pod = _first_pod(spec)
    context = pod["securityContext"] if where == "pod" else pod["containers"][0]["securityContext"]
    if value is None:
        del context[key]
    else:
        context[key] = value
    with pytest.raises(ShadownetError, match=re.escape(problem)):
        jobs.check(platform, spec)


def test_host_namespaces_and_host_paths_are_refused():
    spec = jobs.parsed(jobs.render("k8s-tfrecords"), "k8s-tfrecords")
    pod = _first_pod(spec)
    pod["hostNetwork"] = True
    pod["volumes"] = [{"name": "data", "hostPath": {"path": "/data"}}, {"name": "tmp", "emptyDir": {}}]
    with pytest.raises(ShadownetError) as refused:
        jobs.check("k8s-tfrecords", spec)
    assert "hostNetwork: not allowed" in str(refused.value)
    assert "volumes.data: hostPath not allowed" in str(refused.value)
    assert "volumes.tmp" not in str(refused.value)


# --- the registry: one declaration per platform ------------------------------------------------------------------

def test_jobs_holds_exactly_the_registrys_files_each_fresh():
    from shadownet.cloud import registry

    expected = jobs.files()
    assert {p.file for p in registry.PLATFORMS.values()} <= set(expected)
    assert sorted(path.name for path in (REPO / "jobs").iterdir()) == sorted(expected)
    for file, (platform, settings) in expected.items():
        assert (REPO / "jobs" / file).read_text() == jobs.render(platform, list(settings)), f"jobs/{file} is stale"


def test_the_cli_offers_the_registrys_platforms_in_its_order():
    from shadownet.cloud import registry
    from shadownet.flags import build_parser

    parser = build_parser()
    for argv in (["jobs", "render"], ["submit"]):
        command = parser
        for word in argv:
            command = next(a for a in command._actions if a.dest in ("command", "jobs_command")).choices[word]
        platform = next(a for a in command._actions if a.dest == "platform")
        assert tuple(platform.choices) == tuple(registry.PLATFORMS) == jobs.PLATFORMS


@pytest.fixture
def toy_platform(monkeypatch):
    """A platform declared at run time, as a new one is declared in registry.py: nothing else is edited."""
    import signal

    from shadownet.cloud import registry

    submitted = []

    def build(p, hp):
        return {"kind": "ToyJob", "name": p["name"], "zone": p["region"], "steps": hp["train_steps"]}

    def check(spec):
        return [] if spec["name"].islower() else [f"name {spec['name']!r}: lower case"]

    def submit(job, config, out):
        submitted.append(job)
        out(f"toy: {job.spec['name']} in {job.parameters['region']}")
        return 0

    monkeypatch.setitem(registry.PLATFORMS, "toy", registry.Platform(
        "toy", build, "toy-job.yaml", submit, check, defaults={"region": "toy-east-1"}))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")  # cli.main sets it where unset
    monkeypatch.setattr(signal, "signal", lambda signum, handler: None)  # and would take SIGTERM from pytest
    return submitted


def test_a_platform_declared_once_is_rendered_checked_written_and_submitted(toy_platform, capsys, tmp_path):
    from shadownet import cli

    assert cli.main(["jobs", "render", "--platform", "toy", "--set", "name=t1", "--set", "hp.train_steps=7"]) == 0
    assert capsys.readouterr().out == "kind: ToyJob\nname: t1\nzone: toy-east-1\nsteps: '7'\n"
    assert jobs.parsed(jobs.render("toy", ["name=t2"]), "toy")["name"] == "t2"
    assert jobs.files()["toy-job.yaml"] == ("toy", ())

    assert cli.main(["jobs", "render", "--platform", "toy", "--set", "name=Toy"]) == 2
    assert "the rendered toy spec is not valid:\n  name 'Toy': lower case" in capsys.readouterr().err

    assert cli.main(["submit", "--platform", "toy", "--set", "name=t3", "--set", "region=toy-west-2"]) == 0
    assert capsys.readouterr().out == "toy: t3 in toy-west-2\n"
    assert [(job.spec["zone"], job.text.splitlines()[1]) for job in toy_platform] == [("toy-west-2", "name: t3")]


def test_an_undeclared_platform_is_refused():
    with pytest.raises(ShadownetError, match="platform must be one of sagemaker, vertex, .*kserve, not 'toy'"):
        jobs.render("toy")
