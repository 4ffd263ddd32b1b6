"""Small readers of rendered manifests, so the tests say what they check."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

Manifest = dict[str, Any]

LONG_RUNNING_KINDS = {"Deployment", "StatefulSet", "DaemonSet"}
POD_TEMPLATE_KINDS = LONG_RUNNING_KINDS | {"Job", "CronJob"}


def of_kind(manifests: Iterable[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def named(manifests: Iterable[Manifest], kind: str, name: str) -> Manifest:
    for m in manifests:
        if m["kind"] == kind and m["metadata"]["name"] == name:
            return m
    raise LookupError(f"no {kind} {name} among {[ident(m) for m in manifests]}")


def ident(manifest: Manifest) -> str:
    return f"{manifest['kind']}/{manifest['metadata']['name']}"


def pod_spec(manifest: Manifest) -> dict[str, Any]:
    if manifest["kind"] == "Pod":
        return dict(manifest["spec"])
    if manifest["kind"] == "CronJob":
        return dict(manifest["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    return dict(manifest["spec"]["template"]["spec"])


def pods(manifests: Iterable[Manifest]) -> Iterator[tuple[Manifest, dict[str, Any]]]:
    """(manifest, pod spec) of everything that runs a pod: workloads, Jobs, test Pods."""
    for m in manifests:
        if m["kind"] in POD_TEMPLATE_KINDS or m["kind"] == "Pod":
            yield m, pod_spec(m)


def long_running(manifests: Iterable[Manifest]) -> list[Manifest]:
    return [m for m in manifests if m["kind"] in LONG_RUNNING_KINDS]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    """name -> value, or name -> the valueFrom mapping."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def container(manifest: Manifest, name: str) -> dict[str, Any]:
    for c in pod_spec(manifest)["containers"]:
        if c["name"] == name:
            return dict(c)
    raise LookupError(f"{ident(manifest)} has no container {name}")


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def mounted_file(spec: dict[str, Any], c: dict[str, Any], path: str) -> tuple[str, str, str, int]:
    """Where the file at `path` in container `c` comes from: (kind, name, key, mode).

    kind is "secret" or "configMap"; mode the file's mode as the volume sets it. Raises
    LookupError when no read-only mount of a Secret or ConfigMap holds that path.
    """
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for mount in c.get("volumeMounts", []):
        prefix = mount["mountPath"].rstrip("/") + "/"
        if not path.startswith(prefix) or not mount.get("readOnly"):
            continue
        name = path.removeprefix(prefix)
        volume = volumes[mount["name"]]
        if "projected" in volume:
            mode = volume["projected"].get("defaultMode", 0o644)
            sources = volume["projected"]["sources"]
        else:
            mode = next(
                (
                    volume[k].get("defaultMode", 0o644)
                    for k in ("secret", "configMap")
                    if k in volume
                ),
                0o644,
            )
            sources = [volume]
        for source in sources:
            for kind, ref in (("secret", "secretName"), ("configMap", "name")):
                if kind not in source:
                    continue
                body = source[kind]
                items = body.get("items")
                if items is None and "/" not in name:
                    return kind, body.get(ref) or body["name"], name, mode
                for item in items or []:
                    if item["path"] == name:
                        return kind, body.get(ref) or body["name"], item["key"], mode
    raise LookupError(f"no read-only Secret or ConfigMap mount holds {path} in {c['name']}")
