"""deploy/ checked offline: schemas, and agreement with the code it deploys.

- Every Kubernetes manifest under ``deploy/k8s`` validates against the Kubernetes JSON schemas
  that ``kubernetes-validate`` bundles (strict: unknown fields are errors), KEDA's kinds against
  the schemas in ``deploy/schemas``; ``deploy/compose.yaml`` against the Compose Specification
  schema that ``check-jsonschema`` bundles. No network, no cluster, no Docker.
- Every ``ATELIER_*`` name anywhere in ``deploy/`` is a settings field (the worker's, the API's or
  the key store's), every queue a worker consumes or KEDA watches is a work queue of
  ``core.topology``, and each work queue has its own compose service, Deployment and ScaledObject;
  ports match Triton's, the worker's and the API's.
- The HTTP API (compose ``api``, k8s ``api.yaml``): commands the ``atelier`` CLI accepts, probes on
  paths the app serves, on the port of ``ApiSettings``, its key store's Secret, HPA and PDB.
- ``deploy/prometheus/alerts.yml`` matches ``deploy/schemas/prometheus-rules.json``, queries only
  metrics that exist (the worker's, ``nv_*``, ``rabbitmq_*``, ``up``) and label values the code
  produces, and links every alert to its ``##`` section of docs/runbook.md; the Triton image
  rewrites the instance kinds to ``KIND_GPU`` with ``training/export.py``'s regex.

Each consistency check is a function returning the problems it found, so the tests can show it
finds them in a deliberately broken copy as well as none in the real files.
"""

from __future__ import annotations

import ast
import copy
import json
import re
import shutil
import subprocess
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

from api.keys.settings import DatabaseSettings
from api.settings import ApiSettings
from core.errors import ErrorCode
from core.settings import AtelierSettings
from core.topology import build_topology
from core.worker_settings import WorkerSettings
from worker import metrics as worker_metrics

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
    """The queues workers consume, as ``core.topology`` declares them (default settings)."""
    topology = build_topology(AtelierSettings.model_construct())
    return frozenset(queue.name for queue in topology.task_queues)


@cache
def dead_letter_queue() -> str:
    return str(build_topology(AtelierSettings.model_construct()).dead_letter.name)


#: every process's settings model: the workers' (and the sweeper's), the API's, its key store's
SETTINGS_MODELS = (WorkerSettings, ApiSettings, DatabaseSettings)


def settings_env_names() -> set[str]:
    return {f"ATELIER_{name.upper()}" for model in SETTINGS_MODELS for name in model.model_fields}


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
        f"{file}: {name} is not a settings field"
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
    assert env_name_problems(texts) == ["compose.yaml: ATELIER_TRITON_URL is not a settings field"]


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
    api = ApiSettings.model_validate(values)  # the API's pods read the same ConfigMap
    assert api.api_public_url == values["api_public_url"]


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
        problems.append(f"{queue} is not a work queue of core.topology")
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
    assert "atelier.try-on is not a work queue of core.topology" in problems
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
    # the models baked into the image (KIND_GPU), never the working tree's KIND_CPU configs
    assert not any(":/models" in volume for volume in compose_triton.get("volumes", []))
    (device,) = compose_triton["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"]
    for name in worker_services(compose_file).values():
        environment = compose_file["services"][name]["environment"]
        assert environment["ATELIER_TRITON_GRPC_URL"] == f"triton:{TRITON_PORTS['grpc']}"


def test_prometheus_scrapes_compose_services_on_their_metrics_ports() -> None:
    config = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")[0]
    targets = {
        job["job_name"]: {t for static in job.get("static_configs", []) for t in static["targets"]}
        | {f"{name}:{dns['port']}" for dns in job.get("dns_sd_configs", []) for name in dns["names"]}
        for job in config["scrape_configs"]
    }
    compose_file = compose()
    workers = set(worker_services(compose_file).values())
    assert targets["atelier-workers"] == {f"{name}:{metrics_port()}" for name in workers}
    assert targets["triton"] == {f"triton:{TRITON_PORTS['metrics']}"}
    assert targets["atelier-api"] == {f"api:{api_port()}"}
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
    assert one_shots == {"minio-init", "api-migrate", "register-versions"}
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


# ---------------------------------------------------------------------------------- alerts

REPOSITORY = DEPLOY.parent
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
#: the page every alert's runbook_url points into, relative to the repository root
RUNBOOK_PAGE = "docs/runbook.md"
RUNBOOK = REPOSITORY / RUNBOOK_PAGE
#: what an alert may query besides the worker's metrics: Triton's, rabbitmq_prometheus's, and `up`
EXTERNAL_METRIC_PREFIXES = ("nv_", "rabbitmq_")
EXTERNAL_METRICS = frozenset({"up"})
SEVERITIES = frozenset({"critical", "warning", "info"})
REQUIRED_ANNOTATIONS = ("summary", "description", "runbook_url")
#: PromQL's keywords, aggregation operators and functions: every other word of an expression,
#: outside strings, label matchers, ranges and label lists, is a metric name
PROMQL_WORDS = frozenset(
    {
        *("and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right"),
        *("bool", "offset", "sum", "avg", "min", "max", "count", "stddev", "stdvar", "topk"),
        *("bottomk", "quantile", "count_values", "group", "rate", "irate", "increase", "delta"),
        *("idelta", "deriv", "predict_linear", "resets", "changes", "histogram_quantile", "absent"),
        *("absent_over_time", "avg_over_time", "min_over_time", "max_over_time", "sum_over_time"),
        *("count_over_time", "quantile_over_time", "last_over_time", "present_over_time"),
        *("label_replace", "label_join", "vector", "scalar", "time", "timestamp", "abs", "ceil"),
        *("floor", "round", "clamp", "clamp_min", "clamp_max", "sort", "sort_desc"),
    }
)
MATCHER = re.compile(r'\b([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')


def alert_rules(rule_file: Document) -> list[Document]:
    return [rule for group in rule_file["groups"] for rule in group["rules"] if "alert" in rule]


def rule_file() -> Document:
    """A fresh copy of deploy/prometheus/alerts.yml, so a test may break its own copy."""
    (document,) = load_yaml(ALERTS)
    return document


@cache
def rules_schema() -> Document:
    return dict(json.loads((DEPLOY / "schemas" / "prometheus-rules.json").read_text()))


def promql_metric_names(expr: str) -> set[str]:
    """The metric names ``expr`` selects (a small lexer, not a parser: enough for our rules)."""
    text = MATCHER.sub("", expr)
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", text)  # other strings (label_replace's arguments)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", text)  # emptied matchers, ranges
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\b\d+(?:\.\d+)?(?:e[+-]?\d+)?[a-z]*\b", "", text)  # numbers, durations
    return set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text)) - PROMQL_WORDS


def known_label_values() -> dict[str, set[str]]:
    """The values an alert may match for the labels the code defines (job: prometheus.yml's)."""
    from core.contracts.jobs import JobKind, JobState
    from worker.callbacks import DeliveryStatus
    from worker.sweeper import Outcome as SweepOutcome

    config = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")[0]
    queues = set(work_queues()) | {dead_letter_queue()}
    codes = {str(code) for code in ErrorCode}
    return {
        "job": {job["job_name"] for job in config["scrape_configs"]},
        "queue": queues,
        "queue_name": queues,
        "kind": {str(kind) for kind in JobKind},
        "stage": set(worker_metrics.STAGES),
        "code": codes,
        "outcome": {str(status) for status in DeliveryStatus} | {"error"} | {str(o) for o in SweepOutcome},
        "state": {str(state) for state in JobState},
    }


def matcher_problems(alert: str, expr: str, known: Mapping[str, set[str]]) -> list[str]:
    """Label matchers on code-defined labels that match a value the code never produces."""
    problems = []
    for label, op, raw in MATCHER.findall(expr):
        if label not in known:
            continue
        value = raw.replace("\\\\", "\\")
        if op in ("=", "!="):
            if value not in known[label]:
                problems.append(f'{alert}: {label}{op}"{raw}" is not a known {label}')
            continue
        # a regex: every alternative of its top-level group must select a known value
        alternatives = re.fullmatch(r"(.*)\(([^()]*)\)(.*)", value)
        parts = (
            [alternatives[1] + a + alternatives[3] for a in alternatives[2].split("|")]
            if alternatives
            else value.split("|")
        )
        for part in parts:
            if not any(re.fullmatch(part, candidate) for candidate in known[label]):
                problems.append(f'{alert}: {label}{op}"{raw}": {part} matches no known {label}')
    return problems


def github_anchor(heading: str) -> str:
    """The id GitHub gives a Markdown heading: lower case, punctuation dropped, spaces to ``-``."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def runbook_anchors(markdown: str) -> set[str]:
    return {github_anchor(m) for m in re.findall(r"^##\s+(.+?)\s*$", markdown, flags=re.MULTILINE)}


def alert_problems(document: Document, runbook: str) -> list[str]:
    """Everything wrong with a rule file: its structure (deploy/schemas/prometheus-rules.json),
    then per alert the metrics and label values it queries, ``for``, severity, annotations and
    its runbook section (``docs/runbook.md#<alert name in lower case>``, an ``##`` heading)."""
    validator = jsonschema.Draft202012Validator(rules_schema())
    problems = [f"schema: {error.json_path}: {error.message}" for error in validator.iter_errors(document)]
    if problems:
        return problems
    samples, known, anchors = worker_metric_samples(), known_label_values(), runbook_anchors(runbook)
    names = [rule["alert"] for rule in alert_rules(document)]
    problems += [f"{name}: defined twice" for name in sorted({n for n in names if names.count(n) > 1})]
    for rule in alert_rules(document):
        name = rule["alert"]
        for metric in sorted(promql_metric_names(rule["expr"])):
            if not (
                metric in samples or metric in EXTERNAL_METRICS or metric.startswith(EXTERNAL_METRIC_PREFIXES)
            ):
                problems.append(f"{name}: {metric} is neither a worker metric nor nv_*, rabbitmq_* or up")
        problems += matcher_problems(name, rule["expr"], known)
        if "for" not in rule:
            problems.append(f"{name}: no `for`")
        if rule.get("labels", {}).get("severity") not in SEVERITIES:
            problems.append(f"{name}: severity label not one of {sorted(SEVERITIES)}")
        annotations = rule.get("annotations", {})
        problems += [
            f"{name}: no {key} annotation" for key in REQUIRED_ANNOTATIONS if not annotations.get(key)
        ]
        page, _, anchor = annotations.get("runbook_url", "").partition("#")
        if page != RUNBOOK_PAGE or anchor != name.lower():
            problems.append(f"{name}: runbook_url is not {RUNBOOK_PAGE}#{name.lower()}")
        elif anchor not in anchors:
            problems.append(f"{name}: {RUNBOOK_PAGE} has no ## heading for #{anchor}")
    return problems


def test_alert_rules_are_valid_and_query_only_metrics_that_exist() -> None:
    assert alert_problems(rule_file(), RUNBOOK.read_text()) == []


def test_alerts_cover_queues_dead_letters_failures_callbacks_triton_gpu_and_workers() -> None:
    exprs = " ".join(rule["expr"] for rule in alert_rules(rule_file()))
    for needed in (
        "rabbitmq_queue_messages_ready",
        'stage="queue_wait"',
        f'queue="{dead_letter_queue()}"',
        "atelier_dead_letters_total",
        "atelier_job_failures_total",
        "atelier_callback_deliveries_total",
        'up{job="triton"}',
        "nv_inference_request_failure",
        'stage="inference"',
        "nv_gpu_utilization",
        'up{job="atelier-workers"}',
    ):
        assert needed in exprs


def test_a_broken_alert_rule_file_is_rejected() -> None:
    runbook = RUNBOOK.read_text()
    misspelt = rule_file()
    rule = misspelt["groups"][0]["rules"][0]
    rule["fore"] = rule.pop("for")
    assert any("fore" in problem for problem in alert_problems(misspelt, runbook))

    broken = rule_file()
    first, second, third = alert_rules(broken)[:3]
    first["expr"] = "sum(rate(atelier_jobs_failed_total[5m])) > 0"
    del second["labels"]["severity"]
    third["annotations"]["runbook_url"] = "OPERATIONS.md#" + third["alert"].lower()  # the page before
    trigger = alert_rules(broken)[3]
    trigger["expr"] = trigger["expr"].replace("tryon", "try-on")
    problems = alert_problems(broken, runbook)
    assert (
        f"{first['alert']}: atelier_jobs_failed_total is neither a worker metric nor nv_*, rabbitmq_* or up"
        in problems
    )
    assert f"{second['alert']}: severity label not one of {sorted(SEVERITIES)}" in problems
    assert f"{third['alert']}: runbook_url is not {RUNBOOK_PAGE}#{third['alert'].lower()}" in problems
    assert any(p.startswith(f"{trigger['alert']}: queue=~") and "try-on" in p for p in problems)

    missing_section = alert_problems(rule_file(), runbook.replace("## AtelierTritonDown", "## Triton"))
    assert missing_section == [f"AtelierTritonDown: {RUNBOOK_PAGE} has no ## heading for #ateliertritondown"]


def test_prometheus_loads_the_alerts_in_compose_and_kubernetes_gets_the_same_rules() -> None:
    config = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")[0]
    assert config["rule_files"] == [ALERTS.name]
    volumes = compose()["services"]["prometheus"]["volumes"]
    assert f"./prometheus/{ALERTS.name}:/etc/prometheus/{ALERTS.name}:ro" in volumes

    (config_map,) = load_yaml(K8S / "prometheus-rules.yaml")
    validate_manifest(config_map)
    assert config_map["data"] == {ALERTS.name: ALERTS.read_text()}, (
        "k8s/prometheus-rules.yaml differs from prometheus/alerts.yml: regenerate it (see its header)"
    )


# ---------------------------------------------------------------------------------- triton on the GPU

DOCKERFILE_SED = re.compile(
    r"sed\s+-i\s+-E\s+'s/(?P<pattern>[^/]+)/(?P<replacement>[^/]+)/'\s+(?P<files>\S+)"
)


def export_instance_rewrite() -> tuple[str, str]:
    """training/export.py's ``_INSTANCE_KIND`` pattern and the text ``gpu_repository`` puts in its
    place, read from the source (importing it would import torch)."""
    tree = ast.parse((REPOSITORY / "training" / "export.py").read_text())
    (pattern,) = (
        node.value.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and any(isinstance(target, ast.Name) and target.id == "_INSTANCE_KIND" for target in node.targets)
        and isinstance(node.value, ast.Call)
        and isinstance(node.value.args[0], ast.Constant)
    )
    (replacement,) = (
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "sub"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "_INSTANCE_KIND"
        and isinstance(node.args[0], ast.Constant)
    )
    return str(pattern), str(replacement)


def dockerfile_gpu_problems(dockerfile: str) -> list[str]:
    """Why the Triton image would not serve the copied models on the GPU the way
    ``training.export.gpu_repository`` rewrites them, if it would not."""
    copy_line = dockerfile.find("COPY triton_models/ /models/")
    match = DOCKERFILE_SED.search(dockerfile)
    if copy_line < 0:
        return ["the Dockerfile does not COPY triton_models/ to /models/"]
    if match is None:
        return ["the Dockerfile does not rewrite the instance kinds with sed -i -E 's/.../.../'"]
    problems = []
    pattern, replacement = export_instance_rewrite()
    if match["pattern"] != pattern:
        problems.append(f"sed pattern {match['pattern']!r} is not training/export.py's {pattern!r}")
    if match["replacement"] != replacement or "KIND_GPU" not in replacement:
        problems.append(f"sed writes {match['replacement']!r}, gpu_repository() {replacement!r}")
    if match["files"] != "/models/*/config.pbtxt":
        problems.append(f"sed rewrites {match['files']}, not every /models/*/config.pbtxt")
    if match.start() < copy_line:
        problems.append("the rewrite runs before the models are copied")
    return problems


def test_triton_image_rewrites_instance_kinds_to_gpu_as_export_does() -> None:
    assert dockerfile_gpu_problems((DEPLOY / "triton" / "Dockerfile").read_text()) == []


def test_a_triton_image_left_on_the_cpu_is_reported() -> None:
    dockerfile = (DEPLOY / "triton" / "Dockerfile").read_text()
    pattern, _ = export_instance_rewrite()
    assert dockerfile_gpu_problems(dockerfile.replace(pattern, r"kind: KIND_CPU")) == [
        f"sed pattern 'kind: KIND_CPU' is not training/export.py's {pattern!r}"
    ]
    without = "\n".join(line for line in dockerfile.splitlines() if "sed -i" not in line)
    assert dockerfile_gpu_problems(without) == [
        "the Dockerfile does not rewrite the instance kinds with sed -i -E 's/.../.../'"
    ]


@pytest.mark.skipif(shutil.which("sed") is None, reason="needs GNU sed")
def test_the_dockerfile_sed_turns_every_committed_config_to_gpu_like_export(tmp_path: Path) -> None:
    """The image's command itself on copies of the committed configs: every instance group ends on
    KIND_GPU, and each file reads exactly as ``gpu_repository`` (its regex in Python) makes it."""
    match = DOCKERFILE_SED.search((DEPLOY / "triton" / "Dockerfile").read_text())
    assert match is not None
    pattern, replacement = export_instance_rewrite()
    configs = sorted((REPOSITORY / "triton_models").glob("*/config.pbtxt"))
    assert configs
    copies = []
    for config in configs:
        copy_path = tmp_path / config.parent.name / config.name
        copy_path.parent.mkdir()
        copy_path.write_text(config.read_text())
        copies.append(copy_path)
    expression = f"s/{match['pattern']}/{match['replacement']}/"
    subprocess.run(["sed", "-i", "-E", expression, *map(str, copies)], check=True)
    for config, copy_path in zip(configs, copies, strict=True):
        rewritten = copy_path.read_text()
        assert "KIND_CPU" not in rewritten and "kind: KIND_GPU" in rewritten, config
        assert rewritten == re.sub(pattern, replacement, config.read_text())


# --- the sweeper ---

SWEEPER_MODULE = ["python", "-m", "worker.sweeper"]


def sweeper_command_problems(commands: Mapping[str, list[str]]) -> list[str]:
    """Each command must run ``python -m worker.sweeper`` with options its CLI accepts."""
    import typer
    import typer.main

    from worker.sweeper import cli

    command = typer.main.get_command(cli)
    problems = []
    for where, argv in commands.items():
        if argv[:3] != SWEEPER_MODULE:
            problems.append(f"{where}: {argv} does not start with {' '.join(SWEEPER_MODULE)}")
            continue
        try:
            command.make_context("python -m worker.sweeper", list(argv[3:]))
        except typer.TyperException as error:  # click's errors: an unknown option, a bad value
            problems.append(f"{where}: {error}")
    return problems


def sweeper_commands() -> dict[str, list[str]]:
    deployment = named(manifests(), "Deployment", "sweeper")
    return {
        "compose": compose()["services"]["sweeper"]["command"],
        "k8s": containers(deployment)[0]["command"] + containers(deployment)[0].get("args", []),
    }


def test_compose_and_kubernetes_start_the_sweeper_with_options_it_accepts() -> None:
    assert sweeper_command_problems(sweeper_commands()) == []


def test_a_sweeper_option_the_cli_lacks_is_reported() -> None:
    commands = sweeper_commands()
    commands["k8s"] = [*commands["k8s"], "--interval", "5"]
    commands["compose"] = ["python", "worker/sweeper.py"]
    problems = sweeper_command_problems(commands)
    assert problems[0].startswith("compose: ") and "does not start with" in problems[0]
    assert problems[1] == "k8s: No such option: --interval"


# --- the HTTP API ---


def api_port() -> int:
    """The port ``atelier api serve`` binds by default (``ATELIER_API_PORT``)."""
    return int(ApiSettings.model_fields["api_port"].default)


def app_answers(paths: set[str]) -> dict[str, int]:
    """The status of a GET of each path on the API app (the OpenAPI document's app: default settings,
    no service behind it, readiness with no checks), in process."""
    import asyncio

    import httpx

    from api.cli import document_app

    async def get_each() -> dict[str, int]:
        transport = httpx.ASGITransport(app=document_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            return {path: (await client.get(path)).status_code for path in sorted(paths)}

    return asyncio.run(get_each())


def atelier_command_problems(commands: Mapping[str, list[str]]) -> list[str]:
    """Each command must be an ``atelier`` subcommand, with options, that the CLI accepts."""
    import typer
    import typer.main

    from producer.cli import app as atelier

    problems = []
    for where, argv in commands.items():
        if argv[:1] != ["atelier"]:
            problems.append(f"{where}: {argv} is not an atelier command")
            continue
        command: Any = typer.main.get_command(atelier)
        args, path = list(argv[1:]), ["atelier"]
        # down the groups (they have subcommands) by name, then parse the rest with the command found
        while hasattr(command, "get_command") and args and not args[0].startswith("-"):
            context = command.make_context(" ".join(path), [], resilient_parsing=True)
            found = command.get_command(context, args[0])
            if found is None:
                problems.append(f"{where}: {' '.join(path)} has no command {args[0]!r}")
                break
            path.append(args.pop(0))
            command = found
        else:
            try:
                command.make_context(" ".join(path), args)
            except typer.TyperException as error:  # click's errors: an unknown option, a bad value
                problems.append(f"{where}: {error}")
    return problems


def api_commands() -> dict[str, list[str]]:
    deployment = named(manifests(), "Deployment", "api")
    init = {c["name"]: c for c in deployment["spec"]["template"]["spec"]["initContainers"]}
    services = compose()["services"]
    return {
        "compose api": services["api"]["command"],
        "compose api-migrate": services["api-migrate"]["command"],
        "compose register-versions": services["register-versions"]["command"],
        "k8s api": containers(deployment)[0]["command"],
        "k8s migrate": init["migrate"]["command"],
        "k8s register-versions": init["register-versions"]["command"],
    }


def test_compose_and_kubernetes_run_api_commands_the_cli_accepts() -> None:
    commands = api_commands()
    assert atelier_command_problems(commands) == []
    assert commands["compose api"] == commands["k8s api"] == ["atelier", "api", "serve"]
    assert commands["compose api-migrate"] == commands["k8s migrate"] == ["atelier", "keys", "migrate"]
    register = ["atelier", "ops", "register-versions", "--repository", "triton_models"]
    assert commands["compose register-versions"] == commands["k8s register-versions"] == register


def test_an_api_command_the_cli_lacks_is_reported() -> None:
    commands = {
        "typo": ["atelier", "api", "serv"],
        "option": ["atelier", "keys", "migrate", "--to", "head"],
        "other": ["uvicorn", "api.app:app"],
    }
    problems = atelier_command_problems(commands)
    assert problems[0] == "typo: atelier api has no command 'serv'"
    assert problems[1] == "option: No such option: --to"
    assert problems[2].startswith("other: ") and "is not an atelier command" in problems[2]


def test_api_probes_and_scrapes_paths_the_app_serves_on_the_settings_port() -> None:
    port = api_port()
    documents = manifests()
    deployment = named(documents, "Deployment", "api")
    (container,) = containers(deployment)
    assert {"name": "http", "containerPort": port} in container["ports"]
    probes = {"livenessProbe": "/healthz", "readinessProbe": "/readyz"}
    for probe, path in probes.items():
        assert container[probe]["httpGet"] == {"path": path, "port": "http"}
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port)
    served = app_answers({*probes.values(), annotations["prometheus.io/path"], "/no-such-path"})
    assert served == {"/healthz": 200, "/metrics": 200, "/readyz": 200, "/no-such-path": 404}
    env = {variable["name"]: variable["value"] for variable in container.get("env", [])}
    assert env.get("ATELIER_API_PORT", str(port)) == str(port)
    assert env["ATELIER_API_HOST"] == "0.0.0.0"  # reachable from the Service, not loopback only

    service = named(documents, "Service", "api")
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]

    api = compose()["services"]["api"]
    assert int(api["environment"]["ATELIER_API_PORT"]) == port
    assert api["environment"]["ATELIER_API_HOST"] == "0.0.0.0"
    assert f"{port}:{port}" in api["ports"]
    healthcheck = " ".join(api["healthcheck"]["test"])
    assert f"127.0.0.1:{port}/healthz" in healthcheck


def test_the_api_reads_its_key_store_from_a_secret_and_migrates_it_first() -> None:
    documents = manifests()
    database = named(documents, "Secret", "atelier-database")["stringData"]
    assert set(database) == {"ATELIER_DATABASE_URL", "ATELIER_KEY_PEPPER"}
    assert database["ATELIER_DATABASE_URL"].startswith("postgresql+psycopg://")
    deployment = named(documents, "Deployment", "api")
    pod = deployment["spec"]["template"]["spec"]
    for container in [*pod["initContainers"], *pod["containers"]]:
        secrets = {source["secretRef"]["name"] for source in container["envFrom"] if "secretRef" in source}
        # the model registry step reads and writes Redis only
        assert ("atelier-database" in secrets) != (container["name"] == "register-versions"), container[
            "name"
        ]
    assert "atelier-callbacks" not in {
        source.get("secretRef", {}).get("name") for source in containers(deployment)[0]["envFrom"]
    }

    services = compose()["services"]
    for name in ("api", "api-migrate"):
        environment = services[name]["environment"]
        assert environment["ATELIER_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert "@postgres:5432/" in environment["ATELIER_DATABASE_URL"]
        assert "ATELIER_KEY_PEPPER" in environment
        assert services[name]["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert services["api"]["depends_on"]["api-migrate"] == {"condition": "service_completed_successfully"}
    assert "postgres-data:/var/lib/postgresql/data" in services["postgres"]["volumes"]


def test_the_api_scales_on_cpu_and_keeps_a_replica_through_disruptions() -> None:
    documents = manifests()
    deployment = named(documents, "Deployment", "api")
    assert "replicas" not in deployment["spec"]  # the HPA owns them
    hpa = named(documents, "HorizontalPodAutoscaler", "api")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"}
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    (container,) = containers(deployment)
    assert "cpu" in container["resources"]["requests"]  # utilisation is a share of the request
    pdb = named(documents, "PodDisruptionBudget", "api")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]  # a drain can always evict one


def dockerfile_copy_problems(dockerfile: str, dockerignore: str) -> list[str]:
    """Folders the image copies that its ``.dockerignore`` leaves out of the context, and the worker
    package in the API's image (the API never imports it)."""
    copied = re.findall(r"^COPY (\S+)/ ", dockerfile, flags=re.MULTILINE)
    allowed = set(re.findall(r"^!(\S+)/$", dockerignore, flags=re.MULTILINE))
    problems = [
        f"{folder}/ is copied but not in the build context" for folder in copied if folder not in allowed
    ]
    return problems + [f"{folder}/ is copied into the API image" for folder in copied if folder == "worker"]


def test_the_api_image_copies_what_the_atelier_command_imports_and_no_worker() -> None:
    dockerfile = (DEPLOY / "api" / "Dockerfile").read_text()
    dockerignore = (DEPLOY / "api" / "Dockerfile.dockerignore").read_text()
    assert dockerfile_copy_problems(dockerfile, dockerignore) == []
    copied = set(re.findall(r"^COPY (\S+)/ ", dockerfile, flags=re.MULTILINE))
    assert {"core", "producer", "ops", "api", "embedded", "serving_contract"} <= copied
    assert 'pip install ".[api]"' in dockerfile
    broken = dockerfile.replace("COPY api/ api/", "COPY api/ api/\nCOPY worker/ worker/")
    assert dockerfile_copy_problems(broken, dockerignore) == [
        "worker/ is copied but not in the build context",
        "worker/ is copied into the API image",
    ]
