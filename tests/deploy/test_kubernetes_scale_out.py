"""deploy/kubernetes/scale-out/: N replicas on PostgreSQL. Every manifest validates against the Kubernetes schemas
(kubernetes-validate, strict, no network); the Deployment is wired to what the engine really has (the probes'
paths, ``CAXTON_STORE_URL`` from a Secret, the data directory an emptyDir, the ConfigMap's file); and the
ConfigMap's caxton.yaml with that environment starts two real engines on one PostgreSQL database that answer
the probes and serve the same state and memory. (No cluster here.)"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import httpx
import kubernetes_validate
import pytest
import yaml

from caxton.engine.config import ENVIRONMENT
from caxton.spec.project import ServerSettings
from tests.deploy.test_container import final_stage, image_env, one
from tests.support import cli_args
from tests.support.engine import running_engine
from tests.support.paths import REPO_ROOT

MANIFESTS = REPO_ROOT / "deploy" / "kubernetes" / "scale-out"


def resources() -> list[dict[str, Any]]:
    listed = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())["resources"]
    return [doc for name in listed for doc in yaml.safe_load_all((MANIFESTS / name).read_text()) if doc]


def of_kind(kind: str) -> dict[str, Any]:
    (found,) = [doc for doc in resources() if doc["kind"] == kind]
    return found


def container() -> dict[str, Any]:
    (found,) = of_kind("Deployment")["spec"]["template"]["spec"]["containers"]
    return dict(found)


def caxton_yaml() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(of_kind("ConfigMap")["data"]["caxton.yaml"])
    return loaded


@pytest.mark.parametrize("kind", ["Namespace", "ServiceAccount", "ConfigMap", "Service", "Deployment",
                                  "PodDisruptionBudget"])
def test_the_manifest_validates_against_the_kubernetes_schemas(kind: str) -> None:
    kubernetes_validate.validate(of_kind(kind), kubernetes_validate.latest_version(), strict=True)


def test_the_kustomization_lists_every_manifest_in_one_namespace() -> None:
    listed = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    assert sorted(listed["resources"]) == sorted(p.name for p in MANIFESTS.glob("*.yaml")
                                                 if p.name != "kustomization.yaml")
    assert all(doc["metadata"].get("namespace") == listed["namespace"] for doc in resources()
               if doc["kind"] != "Namespace")


def test_replicas_share_the_database_and_keep_only_a_cache_per_pod() -> None:
    deployment = of_kind("Deployment")["spec"]
    pod, engine = deployment["template"]["spec"], container()
    assert deployment["replicas"] >= 2 and of_kind("PodDisruptionBudget")["spec"]["minAvailable"] < deployment["replicas"]
    assert of_kind("PodDisruptionBudget")["spec"]["selector"] == deployment["selector"]
    assert of_kind("Service")["spec"]["selector"] == deployment["selector"]["matchLabels"]
    (env,) = engine["env"]
    assert env["name"] == "CAXTON_STORE_URL" and ENVIRONMENT[env["name"]] == ("store", "url")  # what the engine reads
    assert env["valueFrom"]["secretKeyRef"] == {"name": "caxton-store", "key": "url"}
    assert "caxton-store --from-literal=url=" in (MANIFESTS / "kustomization.yaml").read_text()
    assert caxton_yaml()["memory"]["backend"] == "postgres" and "store" not in caxton_yaml()  # no password in it
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in engine["volumeMounts"]}
    assert "emptyDir" in volumes["data"] and mounts["data"] == caxton_yaml()["server"]["data_dir"] == \
        image_env()["CAXTON_DATA_DIR"]
    assert {(name, probe["httpGet"]["path"]) for name, probe in engine.items() if name.endswith("Probe")} == {
        ("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")}
    (port,) = engine["ports"]
    assert port["containerPort"] == caxton_yaml()["server"]["port"]
    assert of_kind("Service")["spec"]["ports"][0]["targetPort"] == port["name"]
    assert pod["terminationGracePeriodSeconds"] > ServerSettings().drain_timeout
    assert engine["securityContext"]["readOnlyRootFilesystem"] is True
    assert f"{pod['securityContext']['runAsUser']}:{pod['securityContext']['runAsGroup']}" == one(final_stage(), "USER")
    assert "postgres" in (REPO_ROOT / "Dockerfile").read_text().split('pip wheel', 1)[1].splitlines()[0]
    assert cli_args.parse(engine["args"]) == ["server", "start"]
    config = PurePosixPath(engine["args"][engine["args"].index("--config") + 1])
    assert config.name in of_kind("ConfigMap")["data"]


def test_the_configmap_and_the_secret_start_replicas_on_one_database(tmp_path: Path, pg_url: str) -> None:
    settings = caxton_yaml()
    del settings["security"]["tokens_file"]  # loopback here: no token needed
    settings["server"]["host"] = "127.0.0.1"
    config = tmp_path / "caxton.yaml"
    config.write_text(yaml.safe_dump(settings))
    env = {container()["env"][0]["name"]: pg_url}  # what the Secret gives each pod
    with running_engine(tmp_path / "one", config=config, env=env) as one_pod, \
            running_engine(tmp_path / "two", config=config, env=env) as two_pod:
        for path in [p["httpGet"]["path"] for name, p in container().items() if name.endswith("Probe")]:
            assert httpx.get(one_pod.url + path, timeout=30).status_code == 200
            assert httpx.get(two_pod.url + path, timeout=30).status_code == 200
        made = httpx.post(f"{one_pod.url}/api/v1/memory/entities", timeout=30,
                          json={"name": "ada", "entity_type": "fact", "observations": ["Ada drinks tea"]})
        assert made.status_code == 201, made.text
        health = httpx.get(f"{two_pod.url}/api/v1/health/memory", timeout=30).json()
        assert health["backend"] == "postgres" and health["entities"] == 1
        assert {p.name for p in (tmp_path / "two" / "data").iterdir()} <= {"engine.lock", "module-cache"}
