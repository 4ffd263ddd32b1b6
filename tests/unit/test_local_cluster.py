"""Pure parts of the local cluster: the API server's address and flags, image names, values."""

from __future__ import annotations

from pathlib import Path

from heartbeat_localstack.cluster import api_address, dev, local_images
from heartbeat_localstack.cluster.build import binaries
from heartbeat_localstack.cluster.components import HOST, Layout, Ports, argv
from heartbeat_localstack.cluster.node import _cri_name

IMAGES = local_images.LocalImages(
    app="heartbeat:dev",
    kafka="heartbeat-kafka:4.1.1-abc",
    postgres="heartbeat-postgres:15-def",
    kafka_user=local_images.ImageUser(1000, 1000),
    postgres_user=local_images.ImageUser(100, 102),
)


def _apiserver_flags(host: str) -> dict[str, str]:
    ports = Ports(1, 2, 3, 4, 5, 6, host)
    command = argv("kube-apiserver", binaries(), Layout(Path("/state")), ports)
    return dict(arg.removeprefix("--").split("=", 1) for arg in command[1:])


def test_with_kwok_nodes_the_api_server_stays_on_loopback_without_a_service_endpoint() -> None:
    flags = _apiserver_flags(HOST)
    assert flags["bind-address"] == flags["advertise-address"] == "127.0.0.1"
    assert flags["endpoint-reconciler-type"] == "none"
    assert Ports(1, 2, 3, 4, 5, 6).server == "https://127.0.0.1:3"


def test_with_a_real_node_the_api_server_advertises_the_address_pods_reach() -> None:
    flags = _apiserver_flags(api_address.ADDRESS)
    assert flags["bind-address"] == flags["advertise-address"] == "10.245.0.1"
    assert flags["endpoint-reconciler-type"] == "lease"
    assert Ports(1, 2, 3, 4, 5, 6, api_address.ADDRESS).server == "https://10.245.0.1:3"


def test_containerd_names_images_the_way_docker_save_writes_them() -> None:
    assert _cri_name("heartbeat:dev") == "docker.io/library/heartbeat:dev"
    assert _cri_name("heartbeat") == "docker.io/library/heartbeat:latest"
    assert _cri_name("apache/kafka:4.1.1") == "docker.io/apache/kafka:4.1.1"
    assert _cri_name("heartbeat.local/pause:3.10") == "heartbeat.local/pause:3.10"
    assert _cri_name("localhost:5000/x:1") == "localhost:5000/x:1"


def test_dev_deps_run_the_local_images_as_their_own_users_without_pulling() -> None:
    assert local_images.dev_deps_values(IMAGES) == {
        "kafka": {
            "image": "heartbeat-kafka:4.1.1-abc",
            "pullPolicy": "Never",
            "runAsUser": 1000,
            "runAsGroup": 1000,
        },
        "postgresql": {
            "image": "heartbeat-postgres:15-def",
            "pullPolicy": "Never",
            "runAsUser": 100,
            "runAsGroup": 102,
        },
    }


def test_the_chart_gets_the_local_image_and_the_dev_dependencies() -> None:
    values = dev.heartbeat_values(IMAGES)
    assert values["image"] == {"repository": "heartbeat", "tag": "dev", "pullPolicy": "Never"}
    assert values["kafka"]["bootstrapServers"] == "kafka:9092"
    assert values["postgresql"]["host"] == "postgresql"


def test_k8s_dev_prints_port_forwards_for_the_metrics_and_the_database() -> None:
    lines = dev.reach("heartbeat", Path("/s/kubeconfig"), Path("/s/bin/kubectl"))
    forwards = [line for line in lines if " port-forward " in line]
    assert [line.split(" port-forward ")[1].split()[0] for line in forwards] == [
        "service/heartbeat-producer",
        "service/heartbeat-consumer",
        "service/heartbeat-operator",
        "service/postgresql",
    ]
    assert all("--kubeconfig=/s/kubeconfig -n heartbeat" in line for line in forwards)
