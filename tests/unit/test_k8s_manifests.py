"""The Kubernetes manifests (deploy/k8s) against Kubernetes' own schemas, offline, and against
this code: every setting they give exists, every command parses, every file they name is
mounted, every probe and selector points at something."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import kubernetes_validate
import pytest
import yaml

from hourglass import cli
from hourglass_core.config import Settings
from hourglass_core.leases.redis_connect import OPTIONS as REDIS_OPTIONS
from hourglass_core.store.factory import _CASSANDRA_OPTIONS

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
KUBERNETES = "1.30.0"  # the oldest release these manifests are meant for (preStop sleep is 1.30+)


def _documents() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return [doc for name in kustomization["resources"] for doc in yaml.safe_load_all((K8S / name).read_text()) if doc]


DOCS = _documents()
WORKLOADS = [d for d in DOCS if d["kind"] in ("Deployment", "Job")]
CONFIG = next(d for d in DOCS if d["kind"] == "ConfigMap")
SETTINGS = {f"HOURGLASS_{f.name.upper()}" for f in dataclasses.fields(Settings)}


def _containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    return list(workload["spec"]["template"]["spec"]["containers"])


def _env(container: dict[str, Any]) -> dict[str, str]:
    """What the container's environment holds: the ConfigMap's, then its own (values only)."""
    assert container["envFrom"] == [{"configMapRef": {"name": CONFIG["metadata"]["name"]}}]
    return {**CONFIG["data"], **{e["name"]: e.get("value", "") for e in container.get("env", [])}}


def test_the_kustomization_lists_every_manifest() -> None:
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_each_resource_is_valid_kubernetes_with_no_unknown_field(doc: dict[str, Any]) -> None:
    for version in (KUBERNETES, kubernetes_validate.latest_version() + ".0"):
        kubernetes_validate.validate(doc, version, strict=True)


def test_every_setting_given_exists_and_every_command_parses() -> None:
    parser = cli.build_parser()
    for workload in WORKLOADS:
        for container in _containers(workload):
            assert set(_env(container)) <= SETTINGS, f"{workload['metadata']['name']}: unknown settings"
            args = parser.parse_args(container["args"])
            assert args.handler in (cli.cmd_coordinator, cli.cmd_worker, cli.cmd_db_migrate)


def test_the_backend_urls_use_only_options_the_code_accepts() -> None:
    store, coordination = urlsplit(CONFIG["data"]["HOURGLASS_STORE"]), urlsplit(CONFIG["data"]["HOURGLASS_COORDINATION"])
    assert (store.scheme, coordination.scheme) == ("cassandra", "rediss")
    assert set(parse_qs(store.query)) <= _CASSANDRA_OPTIONS
    assert set(parse_qs(coordination.query)) <= REDIS_OPTIONS
    assert store.password is None and coordination.password is None  # passwords come from files


def test_every_file_a_container_is_told_of_is_on_a_volume_it_mounts() -> None:
    for workload in WORKLOADS:
        pod = workload["spec"]["template"]["spec"]
        volumes = {v["name"] for v in pod["volumes"]}
        for container in _containers(workload):
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert set(mounts.values()) <= volumes
            named = [value for value in _env(container).values() if value.startswith("/")]
            named += [v[0] for url in (_env(container)["HOURGLASS_STORE"], _env(container)["HOURGLASS_COORDINATION"])
                      for key, v in parse_qs(urlsplit(url).query).items() if key.endswith(("_file", "_certs"))]
            for path in named:
                assert any(path.startswith(mount + "/") for mount in mounts), f"{path} is not mounted"


def test_probes_name_declared_ports_and_every_selector_finds_its_pods() -> None:
    deployments = [d for d in DOCS if d["kind"] == "Deployment"]
    for deployment in deployments:
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        for container in _containers(deployment):
            ports = {p["name"] for p in container["ports"]}
            for probe in ("readinessProbe", "livenessProbe"):
                if probe in container:
                    action = container[probe].get("httpGet") or container[probe].get("tcpSocket")
                    assert action["port"] in ports
            assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    for doc in DOCS:
        if doc["kind"] in ("Service", "PodDisruptionBudget"):
            selector = doc["spec"]["selector"]
            selector = selector.get("matchLabels", selector)
            found = [d for d in deployments if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()]
            assert len(found) == 1, f"{doc['kind']}/{doc['metadata']['name']} selects {len(found)} deployments"
