"""skaffold and kind from their Go modules (heartbeat_localstack.devtools), and the values and
PATH that skaffold.yaml's local-node profile gets (heartbeat_localstack.skaffold)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from heartbeat_localstack import devtools, skaffold
from heartbeat_localstack.cluster.local_images import ImageUser, LocalImages

TOOL = devtools.Tool("kind", "sigs.k8s.io/kind", "0.33.0")


def _built(root: Path, version: str) -> devtools.BuiltTool:
    target = devtools.located(TOOL, root)
    target.bin_dir.mkdir(parents=True)
    target.path.write_text("#!/bin/sh\n")
    target.path.chmod(0o755)
    target.marker.write_text(json.dumps({"version": version}))
    return target


def test_a_tool_is_cached_per_version(tmp_path: Path) -> None:
    target = _built(tmp_path, "0.33.0")
    assert target.path == tmp_path / "tools" / "kind-0.33.0" / "bin" / "kind"
    assert target.is_built()


def test_a_marker_of_another_version_or_a_missing_binary_means_not_built(tmp_path: Path) -> None:
    assert not _built(tmp_path / "a", "0.32.0").is_built()
    target = _built(tmp_path / "b", "0.33.0")
    target.path.unlink()
    assert not target.is_built()


def test_path_of_a_tool_not_built_exits_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HEARTBEAT_CACHE_DIR", str(tmp_path))
    assert devtools.main(["path", "kind"]) == 3
    assert "not built" in capsys.readouterr().err


def test_exports_are_shell_safe_and_complete(tmp_path: Path) -> None:
    images = LocalImages(
        "heartbeat:dev", "kafka:1", "postgres:1", ImageUser(1000, 1001), ImageUser(100, 102)
    )
    env = skaffold.profile_env("b:1", "bb:1", "w:1", images, tmp_path / "a dir", "/x y:/bin")
    script = skaffold.exports(env) + 'printf "%s|%s|%s" "$PATH" "$HEARTBEAT_STACK_DIR" '
    script += '"$HEARTBEAT_KAFKA_GID"'
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout
    assert out == f"/x y:/bin|{tmp_path / 'a dir'}|1001"
    assert set(env) == set(skaffold.NAMES)


def test_search_path_puts_the_build_cli_and_the_cluster_tools_first(tmp_path: Path) -> None:
    path = skaffold.search_path(tmp_path, "/usr/bin/docker", "/usr/local/bin:/usr/bin")
    tools, cluster_bin, *rest = path.split(":")
    assert Path(tools, "docker").readlink() == Path("/usr/bin/docker")
    assert cluster_bin == str(tmp_path / "bin")
    assert rest == ["/usr/local/bin", "/usr/bin"]
    # A second call replaces the link rather than failing on it.
    skaffold.search_path(tmp_path, "/opt/docker", "")
    assert Path(tools, "docker").readlink() == Path("/opt/docker")
