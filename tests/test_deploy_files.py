"""The deployment files are valid and agree with each other and with shared/settings.py.

Without Docker, kustomize or a cluster: the Compose Specification schema comes from
check-jsonschema (which vendors it), the Kubernetes schemas from kubernetes-validate.
"""

import copy
import json
import re
from functools import cache
from importlib.resources import files
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from services.scouting.settings import ScoutingSettings
from shared.settings import DEFAULT_PORTS, SERVICES

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "deploy" / "base"
PRODUCTION = ROOT / "deploy" / "overlays" / "production"
KUBERNETES_VERSION = "1.31"
SETTINGS_VARIABLES = {name.upper() for name in ScoutingSettings.model_fields}  # a superset


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def is_settings_variable(name: str) -> bool:
    """A field of Settings, or a standard variable the OpenTelemetry SDK reads itself."""
    return name in SETTINGS_VARIABLES or name.startswith("OTEL_")


def port_of(address: str) -> int:
    """The port at the end of host:port, scheme://host:port or published:target/protocol."""
    return int(str(address).rsplit(":", 1)[-1].split("/")[0])


def is_pinned(image: str) -> bool:
    """The image names a digest, or a tag other than latest."""
    name, _, tag = image.rpartition(":")
    return "@sha256:" in image or (bool(name) and "/" not in tag and tag != "latest")


# docker-compose.yml


@pytest.fixture(scope="module")
def compose() -> dict:
    return load(ROOT / "docker-compose.yml")


def built_here(compose: dict) -> dict[str, dict]:
    """The compose services built from this repository: the bootstrap step and the services."""
    return {name: service for name, service in compose["services"].items() if "build" in service}


def environment(service: dict) -> dict[str, str]:
    return {name: str(value) for name, value in service.get("environment", {}).items()}


def compose_validator() -> jsonschema.protocols.Validator:
    schema = json.loads(
        (files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json").read_text()
    )
    return jsonschema.validators.validator_for(schema)(schema)


def test_compose_file_follows_the_compose_specification(compose):
    errors = compose_validator().iter_errors(compose)
    assert [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors] == []


def test_compose_schema_rejects_a_misspelled_key():
    assert not compose_validator().is_valid({"services": {"api": {"imag": "python:3.11-slim"}}})


def test_every_image_is_pinned_to_a_tag(compose):
    images = [service["image"] for service in compose["services"].values() if "image" in service]
    images += re.findall(r"^FROM\s+(\S+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    images += [container["image"] for doc in build(BASE) for container in containers(doc)]
    assert images
    assert [image for image in images if not is_pinned(image)] == []


def test_everything_built_here_uses_the_one_dockerfile_and_only_settings_variables(compose):
    built = built_here(compose)
    assert set(SERVICES) | {"migrate"} <= set(built)
    for name, service in built.items():
        spec = service["build"]
        spec = spec if isinstance(spec, dict) else {"context": spec}
        dockerfile = ROOT / spec["context"] / spec.get("dockerfile", "Dockerfile")
        assert dockerfile.resolve() == ROOT / "Dockerfile", name
        env = environment(service)
        assert [var for var in env if not is_settings_variable(var)] == [], name
        assert env["HOST"] == "0.0.0.0", name
    assert (ROOT / "Dockerfile").is_file() and (ROOT / ".dockerignore").is_file()
    assert len({service.get("image") for service in built.values()}) == 1


def test_the_image_installs_the_package_without_dev_extras_and_runs_as_non_root():
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    instructions = [line for line in lines if line and not line.startswith("#")]
    bases = [line.split()[1] for line in instructions if line.startswith("FROM ")]
    assert bases and set(bases) == {"python:3.11-slim"}
    assert any(re.search(r"pip install \.$", line) for line in instructions)
    assert not any("[dev]" in line for line in instructions)
    users = [line.split()[1].split(":")[0] for line in instructions if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")


@pytest.mark.parametrize("name", SERVICES)
def test_each_compose_service_serves_checks_and_publishes_its_own_port(compose, name):
    service, port = compose["services"][name], DEFAULT_PORTS[name]
    assert service["command"] == ["gvn", "serve", name]
    assert environment(service)["PORT"] == str(port)
    assert f":{port}/readyz" in " ".join(service["healthcheck"]["test"])
    published = [p["target"] if isinstance(p, dict) else port_of(p) for p in service["ports"]]
    assert port in published
    assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_config_files_mounted_into_containers_exist(compose):
    sources = []
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume["source"] if isinstance(volume, dict) else volume.split(":")[0]
            sources += [source] if source.startswith(".") else []
    assert sources
    assert [source for source in sources if not (ROOT / source).is_file()] == []


def test_traces_go_to_jaeger_and_prometheus_scrapes_the_services_and_the_collector(compose):
    collector = load(ROOT / "deploy" / "otel-collector.yaml")
    exporters, pipelines = collector["exporters"], collector["service"]["pipelines"]
    traces_to = [exporters[name]["endpoint"] for name in pipelines["traces"]["exporters"]]
    assert any(endpoint.startswith("jaeger:") for endpoint in traces_to)
    assert "prometheus" in pipelines["metrics"]["exporters"]
    jobs = load(ROOT / "deploy" / "prometheus.yml")["scrape_configs"]
    targets = {t for job in jobs for group in job["static_configs"] for t in group["targets"]}
    assert {f"{name}:{port}" for name, port in DEFAULT_PORTS.items()} <= targets
    assert f"otel-collector:{port_of(exporters['prometheus']['endpoint'])}" in targets
    http_port = port_of(collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"])
    for service in built_here(compose).values():
        assert (
            environment(service)["OTEL_EXPORTER_OTLP_ENDPOINT"]
            == f"http://otel-collector:{http_port}"
        )


# Kubernetes (kustomize)


def merge(target: dict, patch: dict) -> None:
    """A strategic merge as far as our patches need it: maps merge, anything else replaces."""
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = value


@cache
def build(directory: Path) -> list[dict]:
    """What `kustomize build` makes of the features we use: resources, patches, replicas, images."""
    kustomization = load(directory / "kustomization.yaml")
    docs = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        if path.is_dir():
            docs += copy.deepcopy(build(path))
        else:
            docs += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    by_key = {(doc["kind"], doc["metadata"]["name"]): doc for doc in docs}
    for patch in kustomization.get("patches", []):
        body = load(directory / patch["path"])
        key = (body["kind"], body["metadata"]["name"])
        assert key in by_key, f"{directory.name} patches {key}, which its resources lack"
        merge(by_key[key], body)
    for replicas in kustomization.get("replicas", []):
        assert ("Deployment", replicas["name"]) in by_key, f"no Deployment {replicas['name']}"
        by_key[("Deployment", replicas["name"])]["spec"]["replicas"] = replicas["count"]
    images = {image["name"]: image for image in kustomization.get("images", [])}
    for container in (c for doc in docs for c in containers(doc)):
        name, _, tag = container["image"].rpartition(":")
        if name in images:
            new = images[name]
            container["image"] = f"{new.get('newName', name)}:{new.get('newTag', tag)}"
    for doc in docs if "namespace" in kustomization else []:
        doc["metadata"]["namespace"] = kustomization["namespace"]
    return docs


def containers(doc: dict) -> list[dict]:
    if doc["kind"] not in ("Deployment", "Job"):
        return []
    pod = doc["spec"]["template"]["spec"]
    return pod.get("initContainers", []) + pod["containers"]


def of_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def config_data(docs: list[dict]) -> dict[str, str]:
    return of_kind(docs, "ConfigMap")["gvn-config"]["data"]


@pytest.mark.parametrize("directory", [BASE, PRODUCTION], ids=["base", "production"])
def test_every_manifest_validates_against_the_kubernetes_schemas(directory):
    errors = []
    for doc in build(directory):
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {error.message}")
    assert errors == []


def test_each_service_has_a_deployment_a_service_and_a_disruption_budget():
    for kind in ("Deployment", "Service", "PodDisruptionBudget"):
        assert set(of_kind(build(BASE), kind)) == set(SERVICES), kind


@pytest.mark.parametrize("name", SERVICES)
def test_each_deployment_probes_limits_and_listens_on_its_own_port(name):
    deployment, port = of_kind(build(BASE), "Deployment")[name], DEFAULT_PORTS[name]
    labels = deployment["spec"]["template"]["metadata"]["labels"].items()
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels
    (container,) = containers(deployment)
    assert container["command"] == ["gvn", "serve", name]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert list(ports.values()) == [port]
    assert {"name": "PORT", "value": str(port)} in container["env"]
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = container[probe]["httpGet"]
        assert get["path"] == path and ports.get(get["port"], get["port"]) == port, probe
    for bound in ("requests", "limits"):
        assert {"cpu", "memory"} <= container["resources"][bound].keys(), bound
    service = of_kind(build(BASE), "Service")[name]
    assert service["spec"]["selector"].items() <= labels
    assert [ports.get(p["targetPort"], p["targetPort"]) for p in service["spec"]["ports"]] == [port]


@pytest.mark.parametrize("directory", [BASE, PRODUCTION], ids=["base", "production"])
def test_cluster_containers_get_only_settings_variables_and_bind_all_interfaces(directory):
    docs = build(directory)
    configmaps = {name: doc["data"] for name, doc in of_kind(docs, "ConfigMap").items()}
    for doc in docs:
        for container in containers(doc):
            names = [var["name"] for var in container.get("env", [])]
            for source in container.get("envFrom", []):
                names += configmaps[source["configMapRef"]["name"]]
            assert [var for var in names if not is_settings_variable(var)] == [], container["name"]
    assert config_data(docs)["HOST"] == "0.0.0.0"


def test_credentials_come_from_secrets_and_only_the_migration_job_gets_the_admin_ones():
    docs = build(BASE)
    assert "Secret" not in {doc["kind"] for doc in docs}
    assert not {"DATABASE_URL", "DB_ROLE_PASSWORD"} & config_data(docs).keys()
    for doc in docs:
        for container in containers(doc):
            refs = {
                var["name"]: var["valueFrom"]["secretKeyRef"]["name"]
                for var in container["env"]
                if "secretKeyRef" in var.get("valueFrom", {})
            }
            expected = "gvn-db-admin" if doc["kind"] == "Job" else "gvn-db"
            if container["name"] == "scouting":  # the contact key and the internal token
                assert refs.pop("CONTACT_ENCRYPTION_KEY") == refs.pop("INTERNAL_API_TOKEN")
            assert refs == {"DATABASE_URL": expected, "DB_ROLE_PASSWORD": expected}, doc["kind"]
    (job,) = of_kind(docs, "Job").values()
    assert [c["command"] for c in containers(job)] == [["gvn", "migrate"]]


def test_the_production_overlay_points_at_its_own_kafka_and_a_pinned_release_image():
    production, bootstrap = build(PRODUCTION), "KAFKA_BOOTSTRAP_SERVERS"
    assert config_data(production)[bootstrap] != config_data(build(BASE))[bootstrap]
    images = {c["image"] for doc in production for c in containers(doc)}
    assert len(images) == 1 and is_pinned(images.pop())
    assert {doc["metadata"]["namespace"] for doc in production} == {"gvn"}


@pytest.mark.parametrize("directory", [BASE, PRODUCTION], ids=["base", "production"])
def test_no_service_runs_more_replicas_than_topic_partitions(directory):
    docs = build(directory)
    partitions = int(config_data(docs)["KAFKA_TOPIC_PARTITIONS"])
    for name, deployment in of_kind(docs, "Deployment").items():
        assert 1 <= deployment["spec"]["replicas"] <= partitions, name


def test_compose_runs_the_apache_kafka_release_the_suite_is_proven_on(compose):
    from shared import kafka_jars

    assert compose["services"]["kafka"]["image"] == f"apache/kafka:{kafka_jars.version()}"
    assert f"Apache Kafka {kafka_jars.version()}" in (ROOT / "deploy" / "README.md").read_text()


def test_production_topics_keep_three_replicas_and_need_two_in_sync():
    config = load(PRODUCTION / "config.yaml")["data"]
    assert (config["KAFKA_REPLICATION_FACTOR"], config["KAFKA_MIN_INSYNC_REPLICAS"]) == ("3", "2")
