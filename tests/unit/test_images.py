"""The decisions behind the engine and the images, without an engine: versions, mirrors, tags."""

from __future__ import annotations

import pytest

from heartbeat_localstack.docker import client_major
from heartbeat_localstack.exceptions import LocalStackError
from heartbeat_localstack.images.base import debian_mirrors, decide, sources_list
from heartbeat_localstack.images.build import recipe_digest
from heartbeat_localstack.images.cache import tar_path
from heartbeat_localstack.images.wheels import Target, cache_key

DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
"""


@pytest.mark.parametrize(
    ("version", "major"), [("28.2.2", 28), ("20.10.24+dfsg1", 20), ("", 0), ("dev", 0)]
)
def test_the_cli_major_version_is_read_from_its_version_text(version, major):
    assert client_major(version) == major


@pytest.mark.parametrize(
    ("setting", "choice"), [(None, "auto"), (" Local ", "local"), ("public", "public")]
)
def test_the_base_images_setting_is_public_local_or_auto(setting, choice):
    assert decide(setting) == choice


def test_a_wrong_base_images_setting_names_the_setting():
    with pytest.raises(LocalStackError, match="HEARTBEAT_BASE_IMAGES='registry'"):
        decide("registry")


def test_the_host_s_mirrors_are_found_in_deb822_and_one_line_sources():
    assert debian_mirrors([DEB822]) == (
        "http://mirror.example/debian",
        "http://mirror.example/debian-security",
    )
    one_line = "deb [arch=amd64] http://other.example/debian bookworm main\n"
    assert debian_mirrors([one_line]) == ("http://other.example/debian", None)


def test_without_a_debian_source_the_default_mirror_is_used():
    unrelated = "deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main\n"
    assert debian_mirrors([unrelated]) == ("http://deb.debian.org/debian", None)


def test_the_image_s_sources_list_names_updates_and_security_when_known():
    text = sources_list("http://m/debian", "http://m/debian-security")
    assert text.splitlines() == [
        "deb http://m/debian bookworm main",
        "deb http://m/debian bookworm-updates main",
        "deb http://m/debian-security bookworm-security main",
    ]
    assert "security" not in sources_list("http://m/debian", None)


def test_wheels_are_fetched_for_every_manylinux_tag_the_image_s_glibc_runs():
    tags = Target(python="3.11", glibc="2.36", machine="x86_64").platforms()
    assert tags[0] == "manylinux_2_36_x86_64"
    assert "manylinux_2_28_x86_64" in tags
    assert tags[-2:] == ["manylinux_2_17_x86_64", "manylinux2014_x86_64"]
    assert Target("3.12", "2.36", "x86_64").abi == "cp312"


def test_a_new_dependency_or_python_is_a_new_wheel_cache():
    target = Target("3.11", "2.36", "x86_64")
    key = cache_key(["a>=1", "b"], target)
    assert cache_key(["b", "a>=1"], target) == key
    assert cache_key(["a>=2", "b"], target) != key
    assert cache_key(["a>=1", "b"], Target("3.12", "2.36", "x86_64")) != key


def test_a_changed_recipe_or_base_is_a_new_image_tag(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM base\n")
    first = recipe_digest(tmp_path, "heartbeat-base/debian:bookworm-1")
    assert recipe_digest(tmp_path, "debian:bookworm-slim") != first
    (tmp_path / "entrypoint.sh").write_text("#!/bin/sh\n")
    assert recipe_digest(tmp_path, "heartbeat-base/debian:bookworm-1") != first


def test_an_image_s_tar_is_named_after_its_name_and_tag(monkeypatch, tmp_path):
    monkeypatch.setenv("HEARTBEAT_CACHE_DIR", str(tmp_path))
    tar = tar_path("heartbeat-base/debian:bookworm-1")
    assert tar == tmp_path / "images" / "heartbeat-base_debian_bookworm-1.tar"


def test_the_kafka_container_advertises_its_host_port_and_its_network_alias():
    from heartbeat_localstack.containers import container_properties

    lines = container_properties(41000, "kafka").splitlines()
    properties = dict(line.split("=", 1) for line in lines)
    assert properties["listeners"] == (
        "HOST://0.0.0.0:41000,NETWORK://0.0.0.0:19092,CONTROLLER://127.0.0.1:9093"
    )
    assert properties["advertised.listeners"] == "HOST://127.0.0.1:41000,NETWORK://kafka:19092"
    assert properties["offsets.topic.replication.factor"] == "1"  # one node gets a coordinator
    assert properties["log.dirs"] == "/var/lib/kafka/data"
