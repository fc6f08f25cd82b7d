"""deploy/ checked offline: schemas, and agreement with the code it deploys.

- Every Kubernetes manifest under ``deploy/k8s`` validates against the Kubernetes JSON schemas
  that ``kubernetes-validate`` bundles (strict: unknown fields are errors), KEDA's kinds against
  the schemas in ``deploy/schemas``; ``deploy/compose.yaml`` against the Compose Specification
  schema that ``check-jsonschema`` bundles. No network, no cluster, no Docker.
- Every ``ATELIER_*`` name anywhere in ``deploy/`` is a settings field, every queue a worker
  consumes or KEDA watches is a work queue of ``producer.topology``, and each work queue has its
  own compose service, Deployment and ScaledObject; ports match Triton's and the worker's.

Each consistency check is a function returning the problems it found, so the tests can show it
finds them in a deliberately broken copy as well as none in the real files.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from producer.settings import AtelierSettings
from producer.topology import build_topology
from worker import metrics as worker_metrics
from worker.settings import WorkerSettings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S = DEPLOY / "k8s"
#: the oldest Kubernetes the manifests target (schemas bundled by kubernetes-validate)
KUBERNETES_VERSION = "1.30"
#: schema files for the custom resources Kubernetes' own schemas do not know
CUSTOM_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda-scaledobject-v1alpha1.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "keda-triggerauthentication-v1alpha1.json",
}
#: Triton's default ports, which the workers' ATELIER_TRITON_GRPC_URL and Prometheus rely on
TRITON_PORTS = {"http": 8000, "grpc": 8001, "metrics": 8002}
ENV_NAME = re.compile(r"\bATELIER_[A-Z0-9_]+\b")

Document = dict[str, Any]

# ---------------------------------------------------------------------------------- loading


def load_yaml(path: Path) -> list[Document]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def compose() -> Document:
    """A fresh copy of deploy/compose.yaml, so a test may break its own copy."""
    documents = load_yaml(DEPLOY / "compose.yaml")
    assert len(documents) == 1
    return documents[0]


@cache
def manifest_files() -> tuple[str, ...]:
    """What ``kubectl apply -k deploy/k8s`` applies, plus the Secret templates applied by hand."""
    kustomization = load_yaml(K8S / "kustomization.yaml")[0]
    return (*kustomization["resources"], "secrets.yaml")


def manifests() -> list[Document]:
    """A fresh copy of every Kubernetes document, so a test may break its own copy."""
    return [doc for name in manifest_files() for doc in load_yaml(K8S / name)]


def manifest_cases() -> list[Any]:
    return [
        pytest.param(doc, id=f"{name}:{doc['kind']}/{doc['metadata']['name']}")
        for name in manifest_files()
        for doc in load_yaml(K8S / name)
    ]


def of_kind(documents: list[Document], kind: str) -> list[Document]:
    return [doc for doc in documents if doc["kind"] == kind]


def named(documents: list[Document], kind: str, name: str) -> Document:
    (doc,) = (doc for doc in of_kind(documents, kind) if doc["metadata"]["name"] == name)
    return doc


def config_values(documents: list[Document]) -> dict[str, str]:
    return dict(named(documents, "ConfigMap", "atelier-config")["data"])


@cache
def work_queues() -> frozenset[str]:
    """The queues workers consume, as ``producer.topology`` declares them (default settings)."""
    topology = build_topology(AtelierSettings.model_construct())
    return frozenset(queue.name for queue in topology.task_queues)


@cache
def dead_letter_queue() -> str:
    return str(build_topology(AtelierSettings.model_construct()).dead_letter.name)


def settings_env_names() -> set[str]:
    return {f"ATELIER_{name.upper()}" for name in WorkerSettings.model_fields}


def queue_argument(command: list[str]) -> str | None:
    """The ``-Q`` of a ``celery ... worker`` command line; ``None`` for any other command."""
    if "worker" not in command or "-Q" not in command:
        return None
    return command[command.index("-Q") + 1]


def containers(deployment: Document) -> list[Document]:
    return list(deployment["spec"]["template"]["spec"]["containers"])


def worker_deployments(documents: list[Document]) -> dict[str, Document]:
    """Worker Deployments by the queue they consume."""
    pools: dict[str, Document] = {}
    for deployment in of_kind(documents, "Deployment"):
        for container in containers(deployment):
            queue = queue_argument(container.get("command", []) + container.get("args", []))
            if queue is not None:
                pools[queue] = deployment
    return pools


def worker_services(compose_file: Document) -> dict[str, str]:
    """Compose worker services by the queue they consume."""
    return {
        queue: name
        for name, service in compose_file["services"].items()
        if (queue := queue_argument(service.get("command", []))) is not None
    }


def seconds(duration: str | int) -> float:
    """A compose duration (``210s``, ``3m30s``) or a plain number of seconds."""
    if isinstance(duration, int):
        return duration
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"not a duration: {duration!r}"
    return sum(float(n) * units[u] for n, u in parts)


# ---------------------------------------------------------------------------------- schemas


@cache
def custom_schema(api_version: str, kind: str) -> Document:
    return json.loads((DEPLOY / "schemas" / CUSTOM_SCHEMAS[api_version, kind]).read_text())


@cache
def compose_schema() -> Document:
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    return json.loads(vendor.joinpath("compose-spec.json").read_text())


def validate_manifest(document: Document) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``document`` matches its kind's schema."""
    key = (document["apiVersion"], document["kind"])
    if key in CUSTOM_SCHEMAS:
        jsonschema.Draft202012Validator(custom_schema(*key)).validate(document)
    else:
        # strict: additionalProperties false everywhere, so a misspelt field is an error
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def validate_compose(document: Document) -> None:
    schema = compose_schema()
    jsonschema.validators.validator_for(schema)(schema).validate(document)


@pytest.mark.parametrize("document", manifest_cases())
def test_kubernetes_manifest_matches_its_schema(document: Document) -> None:
    validate_manifest(document)


def test_kubernetes_schema_rejects_a_misspelt_or_mistyped_deployment() -> None:
    deployment = named(manifests(), "Deployment", "worker-listing")
    misspelt = copy.deepcopy(deployment)
    pod = misspelt["spec"]["template"]["spec"]
    pod["terminationGracePeriod"] = pod.pop("terminationGracePeriodSeconds")
    with pytest.raises(jsonschema.ValidationError, match="terminationGracePeriod"):
        validate_manifest(misspelt)

    mistyped = copy.deepcopy(deployment)
    containers(mistyped)[0]["ports"][0]["containerPort"] = "metrics"
    with pytest.raises(jsonschema.ValidationError):
        validate_manifest(mistyped)


def test_keda_schema_rejects_a_scaled_object_without_triggers_or_with_a_misspelt_field() -> None:
    scaled = named(manifests(), "ScaledObject", "worker-tryon")
    without_triggers = copy.deepcopy(scaled)
    del without_triggers["spec"]["triggers"]
    with pytest.raises(jsonschema.ValidationError, match="triggers"):
        validate_manifest(without_triggers)

    misspelt = copy.deepcopy(scaled)
    misspelt["spec"]["cooldownPeriods"] = misspelt["spec"].pop("cooldownPeriod")
    with pytest.raises(jsonschema.ValidationError, match="cooldownPeriods"):
        validate_manifest(misspelt)

    numeric_metadata = copy.deepcopy(scaled)
    numeric_metadata["spec"]["triggers"][0]["metadata"]["value"] = 2  # KEDA wants strings
    with pytest.raises(jsonschema.ValidationError):
        validate_manifest(numeric_metadata)


def test_compose_file_matches_the_compose_specification() -> None:
    validate_compose(compose())


def test_compose_schema_rejects_an_unknown_service_key() -> None:
    broken = compose()
    broken["services"]["worker-tryon"]["stop_grace"] = "210s"
    with pytest.raises(jsonschema.ValidationError, match="stop_grace"):
        validate_compose(broken)


# ---------------------------------------------------------------------------------- settings


def env_name_problems(texts: Mapping[str, str]) -> list[str]:
    """``ATELIER_*`` names in ``texts`` (file name -> text) that no settings field reads."""
    known = settings_env_names()
    return [
        f"{file}: {name} is not a WorkerSettings field"
        for file, text in texts.items()
        for name in sorted(set(ENV_NAME.findall(text)) - known)
    ]


def deploy_texts() -> dict[str, str]:
    """Every file under deploy/ but a local .env (ignored by git: someone's secrets, not the repo's)."""
    return {
        str(path.relative_to(DEPLOY)): path.read_text()
        for path in sorted(DEPLOY.rglob("*"))
        if path.is_file() and path.name != ".env"
    }


def test_every_atelier_variable_in_deploy_is_a_settings_field() -> None:
    assert env_name_problems(deploy_texts()) == []


def test_an_unknown_atelier_variable_is_reported() -> None:
    texts = {"compose.yaml": "ATELIER_TRITON_URL: triton:8001\nATELIER_S3_BUCKET: images\n"}
    assert env_name_problems(texts) == ["compose.yaml: ATELIER_TRITON_URL is not a WorkerSettings field"]


def test_config_map_and_secret_keys_are_settings_variables() -> None:
    """envFrom turns every key into a variable: a key that is not ATELIER_<field> does nothing."""
    documents = manifests()
    keys = [
        key
        for doc in of_kind(documents, "ConfigMap") + of_kind(documents, "Secret")
        for key in {**doc.get("data", {}), **doc.get("stringData", {})}
    ]
    assert keys and set(keys) <= settings_env_names()


def test_config_map_values_are_accepted_by_the_settings() -> None:
    values = {
        name.removeprefix("ATELIER_").lower(): value for name, value in config_values(manifests()).items()
    }
    # model_validate, not the constructor: only these values, none from this process's environment
    settings = WorkerSettings.model_validate(values)
    assert settings.task_soft_time_limit_s < settings.task_time_limit_s


def test_pods_read_only_config_maps_and_secrets_that_exist() -> None:
    documents = manifests()
    defined = {(doc["kind"], doc["metadata"]["name"]) for doc in documents}
    for deployment in of_kind(documents, "Deployment"):
        for container in containers(deployment):
            for source in container.get("envFrom", []):
                kind, ref = (
                    ("ConfigMap", "configMapRef") if "configMapRef" in source else ("Secret", "secretRef")
                )
                needed = (kind, source[ref]["name"])
                assert needed in defined, f"{deployment['metadata']['name']} reads missing {needed}"


# ---------------------------------------------------------------------------------- queues


def queue_problems(compose_file: Document, documents: list[Document]) -> list[str]:
    """Work queues without exactly one consumer and scaler, and queue names the code never declares."""
    problems = []
    deployments = worker_deployments(documents)
    services = worker_services(compose_file)
    scaled_targets: dict[str, list[str]] = {}
    for scaled in of_kind(documents, "ScaledObject"):
        for trigger in scaled["spec"]["triggers"]:
            if trigger["type"] != "rabbitmq":
                continue
            queue = trigger["metadata"]["queueName"]
            target = scaled["spec"]["scaleTargetRef"]["name"]
            scaled_targets.setdefault(queue, []).append(target)
            consumer = deployments.get(queue)
            if consumer is None or consumer["metadata"]["name"] != target:
                problems.append(
                    f"ScaledObject {scaled['metadata']['name']} watches {queue} but scales {target}"
                )
    referenced = set(deployments) | set(services) | set(scaled_targets)
    for queue in sorted(referenced - work_queues()):
        problems.append(f"{queue} is not a work queue of producer.topology")
    for queue in sorted(work_queues()):
        if queue not in deployments:
            problems.append(f"no Deployment consumes {queue}")
        if queue not in services:
            problems.append(f"no compose service consumes {queue}")
        if len(scaled_targets.get(queue, [])) != 1:
            problems.append(f"{queue} has {len(scaled_targets.get(queue, []))} ScaledObjects, not 1")
    return problems


def test_each_work_queue_has_a_compose_service_a_deployment_and_a_scaled_object() -> None:
    assert queue_problems(compose(), manifests()) == []


def test_nothing_consumes_the_dead_letter_queue() -> None:
    """It is for people (``atelier dlq``): a worker on it would retry every poison message."""
    assert dead_letter_queue() not in worker_deployments(manifests())
    assert dead_letter_queue() not in worker_services(compose())


def test_a_misnamed_or_missing_pool_is_reported() -> None:
    documents = manifests()
    scaled = named(documents, "ScaledObject", "worker-tryon")
    scaled["spec"]["triggers"][0]["metadata"]["queueName"] = "atelier.try-on"
    broken_compose = compose()
    del broken_compose["services"]["worker-callbacks"]
    problems = queue_problems(broken_compose, documents)
    assert "atelier.try-on is not a work queue of producer.topology" in problems
    assert "atelier.tryon has 0 ScaledObjects, not 1" in problems
    assert "no compose service consumes atelier.callbacks" in problems


def test_scaled_objects_authenticate_with_the_broker_secret_and_bound_their_replicas() -> None:
    documents = manifests()
    secrets = {doc["metadata"]["name"]: doc["stringData"] for doc in of_kind(documents, "Secret")}
    for scaled in of_kind(documents, "ScaledObject"):
        spec = scaled["spec"]
        assert 0 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
        assert spec["pollingInterval"] > 0 and spec["cooldownPeriod"] > 0
        for trigger in spec["triggers"]:
            assert "activationValue" in trigger["metadata"]
            auth = named(documents, "TriggerAuthentication", trigger["authenticationRef"]["name"])
            (ref,) = (ref for ref in auth["spec"]["secretTargetRef"] if ref["parameter"] == "host")
            assert ref["key"] in secrets[ref["name"]]


# ---------------------------------------------------------------------------------- shutdown


def grace_problems(compose_file: Document, documents: list[Document]) -> list[str]:
    """Worker pools that would be killed before a job at the hard time limit could finish."""
    problems = []
    default = WorkerSettings.model_fields["task_time_limit_s"].default
    k8s_limit = float(config_values(documents).get("ATELIER_TASK_TIME_LIMIT_S", default))
    for queue, deployment in worker_deployments(documents).items():
        grace = deployment["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30)
        if grace <= k8s_limit:
            problems.append(f"{queue}: terminationGracePeriodSeconds {grace} <= hard limit {k8s_limit}")
    for queue, name in worker_services(compose_file).items():
        service = compose_file["services"][name]
        limit = float(service["environment"].get("ATELIER_TASK_TIME_LIMIT_S", default))
        grace = seconds(service.get("stop_grace_period", "10s"))
        if grace <= limit:
            problems.append(f"{queue}: stop_grace_period {grace} <= hard limit {limit}")
    return problems


def test_worker_pools_get_longer_to_stop_than_the_hard_time_limit() -> None:
    assert grace_problems(compose(), manifests()) == []


def test_a_grace_period_shorter_than_the_hard_limit_is_reported() -> None:
    documents = manifests()
    worker_deployments(documents)["atelier.tryon"]["spec"]["template"]["spec"][
        "terminationGracePeriodSeconds"
    ] = 60
    broken_compose = compose()
    del broken_compose["services"]["worker-listing"]["stop_grace_period"]
    assert grace_problems(broken_compose, documents) == [
        "atelier.tryon: terminationGracePeriodSeconds 60 <= hard limit 180.0",
        "atelier.listing: stop_grace_period 10.0 <= hard limit 180.0",
    ]


# ---------------------------------------------------------------------------------- ports


def metrics_port() -> int:
    field = WorkerSettings.model_fields.get("metrics_port")
    assert field is not None, "WorkerSettings has no metrics_port (ATELIER_METRICS_PORT)"
    return int(field.default)


def test_worker_metrics_port_is_the_settings_default_everywhere() -> None:
    port = metrics_port()
    documents = manifests()
    assert int(config_values(documents)["ATELIER_METRICS_PORT"]) == port
    for deployment in worker_deployments(documents).values():
        pod = deployment["spec"]["template"]
        assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(port)
        (container,) = containers(deployment)
        assert {"name": "metrics", "containerPort": port} in container["ports"]
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    compose_file = compose()
    services = compose_file["services"]
    for name in worker_services(compose_file).values():
        assert int(services[name]["environment"]["ATELIER_METRICS_PORT"]) == port
        assert f":{port}/healthz" in " ".join(services[name]["healthcheck"]["test"])


def tritonserver_ports(command: list[str]) -> dict[str, int]:
    flags = {"--http-port": "http", "--grpc-port": "grpc", "--metrics-port": "metrics"}
    return {
        flags[flag]: int(value) for flag, _, value in (arg.partition("=") for arg in command) if flag in flags
    }


def test_triton_serves_and_is_probed_on_its_standard_ports() -> None:
    documents = manifests()
    triton = named(documents, "Deployment", "triton")
    (container,) = containers(triton)
    assert tritonserver_ports(container["command"]) == TRITON_PORTS
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == TRITON_PORTS
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    assert container["resources"]["limits"]["nvidia.com/gpu"] >= 1
    annotations = triton["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(TRITON_PORTS["metrics"])

    service = named(documents, "Service", "triton")
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == TRITON_PORTS
    grpc_url = f"{service['metadata']['name']}:{TRITON_PORTS['grpc']}"
    assert config_values(documents)["ATELIER_TRITON_GRPC_URL"] == grpc_url

    compose_file = compose()
    compose_triton = compose_file["services"]["triton"]
    assert tritonserver_ports(compose_triton["command"]) == TRITON_PORTS
    assert compose_triton["volumes"] == ["../triton_models:/models:ro"]
    (device,) = compose_triton["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"]
    for name in worker_services(compose_file).values():
        environment = compose_file["services"][name]["environment"]
        assert environment["ATELIER_TRITON_GRPC_URL"] == f"triton:{TRITON_PORTS['grpc']}"


def test_prometheus_scrapes_compose_services_on_their_metrics_ports() -> None:
    config = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")[0]
    targets = {
        job["job_name"]: {t for static in job["static_configs"] for t in static["targets"]}
        for job in config["scrape_configs"]
    }
    compose_file = compose()
    workers = set(worker_services(compose_file).values())
    assert targets["atelier-workers"] == {f"{name}:{metrics_port()}" for name in workers}
    assert targets["triton"] == {f"triton:{TRITON_PORTS['metrics']}"}
    hosts = {target.partition(":")[0] for job in targets.values() for target in job}
    assert hosts <= set(compose_file["services"])


# ---------------------------------------------------------------------------------- compose


def test_every_long_running_compose_service_has_a_healthcheck() -> None:
    """One-shots (what others wait on to complete) are the exception: their exit is the check."""
    services = compose()["services"]
    one_shots = {
        dependency
        for service in services.values()
        for dependency, condition in service.get("depends_on", {}).items()
        if condition["condition"] == "service_completed_successfully"
    }
    assert one_shots == {"minio-init"}
    missing = [name for name in services if name not in one_shots and "healthcheck" not in services[name]]
    assert missing == []


def worker_metric_samples() -> set[str]:
    """The sample names ``worker.metrics`` exposes (a counter ``x`` is scraped as ``x_total``)."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    return {
        family.name + suffix
        for metric in vars(worker_metrics).values()
        if isinstance(metric, MetricWrapperBase)
        for family in metric.describe()
        for suffix in suffixes[family.type]
    }


def dashboard_metric_problems(dashboard: Document) -> list[str]:
    """Worker metrics the dashboard queries that ``worker.metrics`` does not define."""
    exprs = " ".join(t["expr"] for panel in dashboard["panels"] for t in panel["targets"])
    used = set(re.findall(r"\b(?:atelier|celery)_[a-z0-9_]+", exprs))
    return [f"{name} is not a worker metric" for name in sorted(used - worker_metric_samples())]


def dashboard() -> Document:
    return dict(json.loads((DEPLOY / "grafana" / "dashboards" / "atelier.json").read_text()))


def test_grafana_dashboard_shows_queues_jobs_stages_gpu_and_dead_letters() -> None:
    board = dashboard()
    datasource = load_yaml(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml")[0]
    (uid,) = {source["uid"] for source in datasource["datasources"]}
    assert {panel["datasource"]["uid"] for panel in board["panels"]} == {uid}
    exprs = " ".join(t["expr"] for panel in board["panels"] for t in panel["targets"])
    for needed in (
        "rabbitmq_queue_messages_ready",
        f'queue="{dead_letter_queue()}"',
        "atelier_jobs_finished_total",
        "atelier_job_stage_seconds_bucket",
        "nv_gpu_utilization",
        "nv_inference_request_success",
        "nv_inference_queue_duration_us",
    ):
        assert needed in exprs
    assert dashboard_metric_problems(board) == []


def test_a_dashboard_query_on_a_metric_the_worker_lacks_is_reported() -> None:
    board = dashboard()
    board["panels"][0]["targets"][0]["expr"] = "sum(rate(atelier_jobs_total[5m]))"
    assert dashboard_metric_problems(board) == ["atelier_jobs_total is not a worker metric"]
