"""deploy/kubernetes/: every manifest validates against the Kubernetes schemas (kubernetes-validate, strict, with
the schemas it bundles: no network), the embedded single-replica engine is wired consistently (one replica on one
volume, probes, non-root, read-only root, the Secret's tokens), and the ConfigMap's caxton.yaml starts a real
engine that answers the probes (pod IP as Host) and clients using the Service's names, with a token."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path, PurePosixPath
from typing import Any

import httpx
import kubernetes_validate
import pytest
import yaml

from caxton.spec.project import ServerSettings
from tests.support.paths import REPO_ROOT
from tests.deploy.test_container import final_stage, image_env, one
from tests.support import cli_args
from tests.support.engine import EngineProcess, running_engine

MANIFESTS = REPO_ROOT / "deploy" / "kubernetes"


def kustomization() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    return loaded


def resources() -> list[dict[str, Any]]:
    return [doc for name in kustomization()["resources"]
            for doc in yaml.safe_load_all((MANIFESTS / name).read_text()) if doc]


def of_kind(kind: str) -> dict[str, Any]:
    (found,) = [doc for doc in resources() if doc["kind"] == kind]
    return found


def container() -> dict[str, Any]:
    (found,) = of_kind("StatefulSet")["spec"]["template"]["spec"]["containers"]
    return dict(found)


def caxton_yaml() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(of_kind("ConfigMap")["data"]["caxton.yaml"])
    return loaded


@pytest.mark.parametrize("kind", ["Namespace", "ServiceAccount", "ConfigMap", "Service", "StatefulSet"])
def test_the_manifest_validates_against_the_kubernetes_schemas(kind: str) -> None:
    kubernetes_validate.validate(of_kind(kind), kubernetes_validate.latest_version(), strict=True)


def test_the_validation_has_teeth() -> None:
    broken = of_kind("StatefulSet")
    broken["spec"]["replicas"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError, match="'one' is not of type"):
        kubernetes_validate.validate(broken, kubernetes_validate.latest_version(), strict=True)
    unknown = of_kind("Service")
    unknown["spec"]["portz"] = []
    with pytest.raises(kubernetes_validate.ValidationError, match="portz"):
        kubernetes_validate.validate(unknown, kubernetes_validate.latest_version(), strict=True)


def test_the_kustomization_lists_every_manifest_in_one_namespace() -> None:
    listed = kustomization()["resources"]
    assert sorted(listed) == sorted(p.name for p in MANIFESTS.glob("*.yaml") if p.name != "kustomization.yaml")
    namespace = kustomization()["namespace"]
    assert of_kind("Namespace")["metadata"]["name"] == namespace
    assert all(doc["metadata"].get("namespace") == namespace for doc in resources() if doc["kind"] != "Namespace")


def test_one_engine_on_one_volume_with_probes_and_no_privileges() -> None:
    statefulset = of_kind("StatefulSet")["spec"]
    pod = statefulset["template"]["spec"]
    engine = container()
    assert statefulset["replicas"] == 1  # one engine per data directory
    (claim,) = statefulset["volumeClaimTemplates"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    mounts = {m["name"]: m["mountPath"] for m in engine["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == image_env()["CAXTON_DATA_DIR"] == caxton_yaml()["server"]["data_dir"]
    assert mounts["tmp"] == "/tmp"  # the root filesystem is read-only
    assert {(name, probe["httpGet"]["path"]) for name, probe in engine.items() if name.endswith("Probe")} == {
        ("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")}
    (port,) = engine["ports"]
    assert all(probe["httpGet"]["port"] == port["name"] for name, probe in engine.items() if name.endswith("Probe"))
    assert port["containerPort"] == caxton_yaml()["server"]["port"] == int(image_env()["CAXTON_PORT"])
    (service_port,) = of_kind("Service")["spec"]["ports"]
    assert service_port["targetPort"] == port["name"]
    assert of_kind("Service")["spec"]["selector"] == statefulset["selector"]["matchLabels"]
    assert engine["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                         "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}
    image_user = one(final_stage(), "USER")
    assert f"{pod['securityContext']['runAsUser']}:{pod['securityContext']['runAsGroup']}" == image_user
    assert engine["resources"]["requests"] and engine["resources"]["limits"]["memory"]
    assert pod["terminationGracePeriodSeconds"] > ServerSettings().drain_timeout
    assert pod["serviceAccountName"] == of_kind("ServiceAccount")["metadata"]["name"]
    assert pod["automountServiceAccountToken"] is False


def test_the_container_runs_server_start_with_the_configmap_and_the_tokens_secret() -> None:
    engine, pod = container(), of_kind("StatefulSet")["spec"]["template"]["spec"]
    assert cli_args.parse(engine["args"]) == ["server", "start"]
    config = PurePosixPath(engine["args"][engine["args"].index("--config") + 1])
    mounts = {m["name"]: m for m in engine["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts["config"]["mountPath"] == str(config.parent)
    assert volumes["config"]["configMap"]["name"] == of_kind("ConfigMap")["metadata"]["name"]
    assert config.name in of_kind("ConfigMap")["data"]
    tokens_file = PurePosixPath(caxton_yaml()["security"]["tokens_file"])
    assert mounts["tokens"]["mountPath"] == str(tokens_file.parent) and mounts["tokens"]["readOnly"] is True
    assert volumes["tokens"]["secret"]["secretName"] == "caxton-tokens"
    assert "--from-file=" + tokens_file.name in (MANIFESTS / "kustomization.yaml").read_text()


def test_the_configmap_starts_an_engine_that_answers_probes_and_the_service_names(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.yaml"
    made = subprocess.run([sys.executable, "-m", "caxton", "token", "create", "ci", "--role", "deploy", "--file",
                           str(tokens)], capture_output=True, text=True, timeout=60,
                          env=EngineProcess(tmp_path / "data").environment())
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    settings = caxton_yaml()
    settings["security"]["tokens_file"] = str(tokens)  # where the Secret is mounted, here
    config = tmp_path / "caxton.yaml"
    config.write_text(yaml.safe_dump(settings))
    port = settings["server"]["port"]  # in Host headers; the engine's port and data dir are the test's own
    with running_engine(tmp_path, config=config, args=["--host", settings["server"]["host"]]) as engine:
        url, bearer = engine.url, {"Authorization": f"Bearer {token}"}
        for path in ("/healthz", "/readyz"):  # the kubelet's probes: Host is the pod's IP, no token
            assert httpx.get(url + path, headers={"Host": f"10.244.1.7:{port}"}).status_code == 200
        for name in settings["security"]["allowed_hosts"]:  # clients through the Service
            answer = httpx.get(url + "/api/v1/state", headers={**bearer, "Host": f"{name}:{port}"})
            assert answer.status_code == 200, (name, answer.text)
        assert httpx.get(url + "/api/v1/state", headers={"Host": f"caxton:{port}"}).status_code == 401
        assert httpx.get(url + "/api/v1/state", headers={**bearer, "Host": "evil.example"}).status_code == 403
