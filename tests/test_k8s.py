"""deploy/k8s: the manifests are valid Kubernetes objects and fit the image.

kubernetes-validate checks every object that kustomization.yaml applies
against the Kubernetes OpenAPI schemas it bundles (offline), strictly, so a
misspelt field fails as well as a wrong type; a deliberately broken copy proves
the check rejects. The rest holds the manifests to what the image and the app
need: probes on /healthz, non-root as the image's own uid, a read-only root with
every path the server writes mounted, DATABASE_URL from a Secret, a Service and
a PodDisruptionBudget that select the pods, the metrics scrape annotations on
the app's port, and a grace period longer than gunicorn's.
"""
import os
import re
import runpy
from pathlib import Path

import kubernetes_validate.utils as kubernetes_validate
import pytest
import yaml

from tests.test_docker import parse_dockerfile, parse_env, split_stages

REPO = Path(__file__).resolve().parent.parent
K8S = REPO / "deploy" / "k8s"
KUSTOMIZATION = K8S / "kustomization.yaml"
# The oldest minor still widely run, and the newest schemas the package ships.
KUBERNETES_VERSIONS = ["1.29.0", kubernetes_validate.all_versions()[-1]]


def validation_problems(files, version):
    """What kubernetes-validate finds wrong with every object in `files`, strictly
    (unknown fields rejected). A kind or apiVersion it has no schema for counts as
    a problem: its command line only warns about those, so an apiVersion removed
    from Kubernetes would slip through."""
    problems = []
    for path in files:
        for document in yaml.safe_load_all(Path(path).read_text()):
            where = f"{Path(path).name}: {document.get('kind')}/{document.get('metadata', {}).get('name')}"
            try:
                kubernetes_validate.validate(document, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                location = ".".join(str(part) for part in error.path)
                problems.append(f"{where}: {location}: {error.message}")
            except kubernetes_validate.SchemaNotFoundError:
                problems.append(f"{where}: no Kubernetes {version} schema for {document.get('apiVersion')}")
    return problems


def manifest_files():
    kustomization = yaml.safe_load(KUSTOMIZATION.read_text())
    return [K8S / name for name in kustomization["resources"]]


@pytest.fixture(scope="module")
def objects():
    """{kind: object} of everything kustomization.yaml applies (one object per kind here)."""
    found = {}
    for path in manifest_files():
        for document in yaml.safe_load_all(path.read_text()):
            assert document["kind"] not in found, f"two {document['kind']} objects"
            found[document["kind"]] = document
    return found


@pytest.fixture(scope="module")
def pod(objects):
    return objects["Deployment"]["spec"]["template"]


@pytest.fixture(scope="module")
def container(pod):
    (only,) = pod["spec"]["containers"]
    return only


def gunicorn_settings():
    """gunicorn.conf.py's values; the environment it touches (BLAS threads) is put back."""
    saved = dict(os.environ)
    try:
        return runpy.run_path(str(REPO / "gunicorn.conf.py"))
    finally:
        os.environ.clear()
        os.environ.update(saved)


def env_of(container):
    return {item["name"]: item for item in container.get("env", [])}


def test_kustomization_applies_every_manifest_in_the_folder():
    listed = {path.name for path in manifest_files()}
    present = {path.name for path in K8S.glob("*.yaml")} - {KUSTOMIZATION.name}
    assert listed == present, f"not applied: {present - listed}; missing: {listed - present}"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_manifests_pass_the_kubernetes_schemas(version):
    assert manifest_files()
    problems = validation_problems(manifest_files(), version)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("change, complaint", [
    (("readinessProbe:", "readinesProbe:"), "'readinesProbe' was unexpected"),
    (("replicas: 3", "replicas: three"), "'three' is not of type 'integer'"),
    (("containerPort: 8000", "containerPort: http"), "'http' is not of type 'integer'"),
    (("apiVersion: apps/v1", "apiVersion: extensions/v1beta1"), "no Kubernetes"),
], ids=["misspelt-field", "wrong-type", "port-name-as-number", "unknown-api-version"])
def test_a_broken_manifest_fails_validation(tmp_path, change, complaint):
    original = (K8S / "deployment.yaml").read_text()
    old, new = change
    assert old in original
    broken = tmp_path / "deployment.yaml"
    broken.write_text(original.replace(old, new, 1))
    problems = validation_problems([broken], KUBERNETES_VERSIONS[-1])
    assert len(problems) == 1 and complaint in problems[0], problems


def test_several_replicas_rolled_without_losing_capacity(objects):
    spec = objects["Deployment"]["spec"]
    assert spec["replicas"] >= 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    budget = objects["PodDisruptionBudget"]["spec"]
    assert budget["maxUnavailable"] < spec["replicas"]


def test_service_disruption_budget_and_deployment_select_the_pods(objects, pod, container):
    labels = pod["metadata"]["labels"]
    for selector in (objects["Deployment"]["spec"]["selector"]["matchLabels"],
                     objects["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
                     objects["Service"]["spec"]["selector"]):
        assert selector and selector.items() <= labels.items(), selector
    port_names = {port["name"] for port in container["ports"]}
    for port in objects["Service"]["spec"]["ports"]:
        assert port["targetPort"] in port_names


def test_probes_ask_healthz_on_the_app_port(container):
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz", probe
        assert container[probe]["httpGet"]["port"] == "http", probe
    (http_port,) = [p for p in container["ports"] if p["name"] == "http"]
    assert str(http_port["containerPort"]) == env_of(container)["PORT"]["value"]


def test_runs_as_the_images_non_root_user(pod, container):
    final_stage = split_stages(parse_dockerfile((REPO / "Dockerfile").read_text()))[-1]
    image_uid = [ins.args for ins in final_stage if ins.keyword == "USER"][-1].split(":")[0]
    security = pod["spec"]["securityContext"]
    assert security["runAsNonRoot"] is True
    assert str(security["runAsUser"]) == image_uid != "0"
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    image_env = {}
    for ins in final_stage:
        if ins.keyword == "ENV":
            image_env.update(parse_env(ins.args))
    assert env_of(container)["PORT"]["value"] == image_env["PORT"]


def test_read_only_root_with_every_written_path_on_a_volume(pod, container):
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    volumes = {volume["name"]: volume for volume in pod["spec"]["volumes"]}
    mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
    for mount in mounts.values():
        assert mount["name"] in volumes and not mount.get("readOnly"), mount
    # gunicorn's heartbeat directory, as gunicorn.conf.py chooses it.
    settings = gunicorn_settings()
    heartbeat = settings.get("worker_tmp_dir") or "/tmp"
    written = {heartbeat, "/tmp", env_of(container)["DATA_DIR"]["value"]}
    assert written <= mounts.keys(), f"written but not mounted: {written - mounts.keys()}"
    for path in written:
        assert "emptyDir" in volumes[mounts[path]["name"]], path


def test_database_url_comes_from_a_secret(container):
    database = env_of(container)["DATABASE_URL"]
    assert "value" not in database, "a password in the manifest"
    reference = database["valueFrom"]["secretKeyRef"]
    assert reference["name"] and reference["key"] == "DATABASE_URL"
    assert not reference.get("optional"), "replicas without the shared store would each keep their own corrections"


def test_resources_bound_and_workers_match_the_cpu_limit(container):
    resources = container["resources"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= resources[kind].keys(), kind
    cpu_limit = float(re.fullmatch(r"(\d+)(m?)", resources["limits"]["cpu"]).group(1))
    if resources["limits"]["cpu"].endswith("m"):
        cpu_limit /= 1000
    assert int(env_of(container)["WEB_CONCURRENCY"]["value"]) == max(1, int(cpu_limit))


def test_metrics_are_annotated_for_scraping_on_the_app_port(pod, container):
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert annotations["prometheus.io/port"] in {str(p["containerPort"]) for p in container["ports"]}


def test_grace_period_outlasts_gunicorns_graceful_shutdown(pod, container):
    settings = gunicorn_settings()
    pause = 0
    command = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    if command[:1] == ["sleep"]:
        pause = int(command[1])
    assert pod["spec"]["terminationGracePeriodSeconds"] > settings["graceful_timeout"] + pause
