"""docs/deploy.md must list every server setting as an environment variable."""

from __future__ import annotations

import re
from pathlib import Path

from memnet_server.config import ServerSettings

DEPLOY_DOC = Path(__file__).resolve().parents[1] / "docs" / "deploy.md"


def test_every_server_setting_is_documented_for_deployment() -> None:
    text = DEPLOY_DOC.read_text()
    missing = [
        f"MEMNET_{name.upper()}"
        for name in ServerSettings.model_fields
        if f"`MEMNET_{name.upper()}`" not in text
    ]
    assert not missing, f"docs/deploy.md does not list {missing}"


DOCKER = Path(__file__).resolve().parents[1] / "docker"
MILVUS_K8S = sorted((DOCKER / "k8s" / "milvus").glob("*.yaml"))


def test_every_milvus_deployment_file_is_walked_through() -> None:
    text = DEPLOY_DOC.read_text()
    assert len(MILVUS_K8S) == 4
    missing = [p.name for p in MILVUS_K8S if f"docker/k8s/milvus/{p.name}" not in text]
    assert not missing, f"docs/deploy.md does not walk through {missing}"
    assert "--profile milvus" in text


def test_the_kubernetes_files_hold_what_replicas_need() -> None:
    deployment = (DOCKER / "k8s" / "milvus" / "memnet-deployment.yaml").read_text()
    assert "kind: Deployment" in deployment and "replicas: 3" in deployment
    assert "{name: MEMNET_STORE, value: milvus}" in deployment
    assert "readinessProbe:\n            grpc: {port: 50051}" in deployment
    assert "livenessProbe:\n            tcpSocket: {port: 50051}" in deployment  # not Milvus's
    assert "volumeMounts" not in deployment  # stateless: nothing on local disk
    service = (DOCKER / "k8s" / "milvus" / "memnet-service.yaml").read_text()
    assert "clusterIP: None" in service  # headless, for client-side round robin
    hpa = (DOCKER / "k8s" / "milvus" / "memnet-hpa.yaml").read_text()
    assert "kind: HorizontalPodAutoscaler" in hpa and "name: cpu" in hpa
    assert "name: memnet" in hpa and "kind: Deployment" in hpa
    values = (DOCKER / "k8s" / "milvus" / "milvus-values.yaml").read_text()
    assert "authorizationEnabled: true" in values and "cluster:\n  enabled: true" in values


def _compose_services() -> dict[str, str]:
    """Each top-level service of docker/compose.yaml and its indented block."""
    text = (DOCKER / "compose.yaml").read_text()
    services = text.split("\nservices:\n", 1)[1].split("\nvolumes:\n", 1)[0]
    blocks = re.split(r"^  (?=[a-z])", services, flags=re.MULTILINE)
    return {b.split(":", 1)[0]: b for b in blocks if b.strip() and not b.startswith(" ")}


def test_the_compose_milvus_profile_runs_milvus_and_replicas() -> None:
    services = _compose_services()
    assert set(services) == {
        "memnet", "memnet-replica", "milvus-standalone", "milvus-etcd", "milvus-minio"
    }  # fmt: skip
    for name in ("memnet-replica", "milvus-standalone", "milvus-etcd", "milvus-minio"):
        assert "profiles: [milvus]" in services[name], name
    replica = services["memnet-replica"]
    assert "replicas: 2" in replica and "MEMNET_STORE: milvus" in replica
    assert "EXTRA_PACKAGES: pymilvus" in replica
    assert "image: milvusdb/milvus:" in services["milvus-standalone"]
    default = services["memnet"]
    assert "profiles" not in default and "MEMNET_STORE" not in default  # default unchanged
