"""The sysctls a real node sets for its kubelet, and the host's own values it puts back.

The host's values are recorded once per machine: a node abandoned without a down (its test
process killed) leaves the kubelet's values set, and the next node must put back the host's,
not those.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from heartbeat_localstack.cluster import node
from heartbeat_localstack.cluster.node_config import (
    KUBELET_SYSCTLS,
    NodeLayout,
    host_sysctls,
    parse_recorded,
    sysctl_changes,
)

HOST = {
    "vm.overcommit_memory": "0",
    "vm.panic_on_oom": "0",
    "kernel.panic": "1",
    "kernel.panic_on_oops": "0",
}


def test_with_no_record_the_current_values_are_the_hosts() -> None:
    assert host_sysctls(HOST, None) == HOST


def test_a_record_of_this_machine_wins_over_the_values_an_earlier_node_left() -> None:
    assert host_sysctls(KUBELET_SYSCTLS, HOST) == HOST


def test_a_sysctl_the_record_lacks_is_taken_as_it_is_now() -> None:
    partial = {"kernel.panic": "1"}
    assert host_sysctls(KUBELET_SYSCTLS, partial) == {**KUBELET_SYSCTLS, "kernel.panic": "1"}


def test_only_the_sysctls_that_differ_are_written() -> None:
    assert sysctl_changes(HOST, KUBELET_SYSCTLS) == {
        "vm.overcommit_memory": "1",
        "kernel.panic": "10",
        "kernel.panic_on_oops": "1",
    }
    assert sysctl_changes(KUBELET_SYSCTLS, KUBELET_SYSCTLS) == {}


@pytest.mark.parametrize("text", [None, "", "{", "[1]", '{"kernel.panic": 1}', "null"])
def test_an_unusable_record_is_none(text: str | None) -> None:
    assert parse_recorded(text) is None


def test_a_record_is_read_back() -> None:
    assert parse_recorded('{"kernel.panic": "1"}') == {"kernel.panic": "1"}


@pytest.fixture
def proc_sys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """/proc/sys of a host with HOST's values, in a folder."""
    root = tmp_path / "proc-sys"
    monkeypatch.setattr(node, "sysctl_path", lambda name: root / name)
    root.mkdir()
    for name, value in HOST.items():
        (root / name).write_text(f"{value}\n")
    return root


def _values(root: Path) -> dict[str, str]:
    return {name: (root / name).read_text().strip() for name in HOST}


def test_a_node_abandoned_without_down_does_not_make_the_next_put_back_the_kubelets_values(
    proc_sys: Path, tmp_path: Path
) -> None:
    record = tmp_path / "run" / "heartbeat-real-node-sysctls.json"
    record.parent.mkdir()
    abandoned = NodeLayout(tmp_path / "first" / "node", tmp_path / "containerd")
    following = NodeLayout(tmp_path / "second" / "node", tmp_path / "containerd")
    for layout in (abandoned, following):
        layout.state.mkdir(parents=True)

    node._set_sysctls(abandoned, lambda _: None, record)
    assert _values(proc_sys) == KUBELET_SYSCTLS
    # ...its test process is killed: no down. The next node starts in a folder of its own.
    said: list[str] = []
    node._set_sysctls(following, said.append, record)
    assert _values(proc_sys) == KUBELET_SYSCTLS
    assert any("recorded by an earlier node" in line for line in said), said

    node._restore_sysctls(following, lambda _: None, record)
    assert _values(proc_sys) == HOST
    assert not record.exists(), "once put back, the next node records the host's values anew"


def test_a_node_started_by_an_older_checkout_is_put_back_from_its_own_folder(
    proc_sys: Path, tmp_path: Path
) -> None:
    record = tmp_path / "heartbeat-real-node-sysctls.json"
    layout = NodeLayout(tmp_path / "node", tmp_path / "containerd")
    layout.state.mkdir()
    layout.sysctls_file.write_text('{"kernel.panic": "1", "vm.overcommit_memory": "0"}\n')
    for name, value in KUBELET_SYSCTLS.items():
        (proc_sys / name).write_text(f"{value}\n")

    node._restore_sysctls(layout, lambda _: None, record)
    assert _values(proc_sys) == {
        **KUBELET_SYSCTLS,
        "kernel.panic": "1",
        "vm.overcommit_memory": "0",
    }
    assert not layout.sysctls_file.exists()
