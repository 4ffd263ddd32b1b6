"""The Kubernetes API, as the operator uses it: the only module importing ``kubernetes``.

Small typed calls that take and return plain dicts (the same shape as YAML manifests),
so everything else stays pure. "Not found" is ``None``; every other failure is a
``KubeError`` that the caller retries later, or a ``KubeRejectedError`` (with the API
server's message) when the same request can only be refused again. Calls are blocking
(the official client is); kopf runs the handlers that make them in its thread pool.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, cast

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from heartbeat_operator.exceptions import KubeError
from heartbeat_operator.spec import GROUP, PLURAL, VERSION

logger = logging.getLogger(__name__)

Body = dict[str, Any]
TIMEOUT_SECONDS = 15
DETAIL_CHARS = 1000  # of the API server's message, kept for a condition


@contextmanager
def _calling(what: str) -> Iterator[None]:
    try:
        yield
    except ApiException as exc:
        raise KubeError.of(what, exc.status, exc.reason or "", _detail(exc.body)) from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise KubeError(f"{what}: {exc}") from exc


def _detail(body: str | bytes | None) -> str:
    """The API server's own message from the Status it answered with, or the raw answer."""
    text = body.decode(errors="replace") if isinstance(body, bytes) else body or ""
    try:
        answer = json.loads(text)
    except ValueError:
        return text.strip()[:DETAIL_CHARS]
    message = answer.get("message") if isinstance(answer, dict) else None
    return str(message or text.strip())[:DETAIL_CHARS]


def _missing(exc: KubeError) -> bool:
    return exc.status == 404


def _as_model(body: Mapping[str, Any]) -> Any:
    """A manifest as a request body: the client sends plain dicts as they are, although
    its type hints only name its model classes."""
    return dict(body)


class Kube:
    """A client for one API server; ``connect()`` finds it like kubectl and kopf do."""

    def __init__(self, api: client.ApiClient) -> None:
        self._api = api
        self._apps = client.AppsV1Api(api)
        self._core = client.CoreV1Api(api)
        self._custom = client.CustomObjectsApi(api)

    @classmethod
    def connect(cls) -> Kube:
        """In a pod, its ServiceAccount; elsewhere the current context of KUBECONFIG."""
        configuration = client.Configuration()
        try:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except config.ConfigException:
            try:
                config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            except (config.ConfigException, OSError) as exc:
                raise KubeError(f"no in-cluster config and no usable kubeconfig: {exc}") from exc
        return cls(client.ApiClient(configuration))

    def close(self) -> None:
        self._api.close()  # type: ignore[no-untyped-call]

    def _plain(self, obj: object) -> Body:
        return dict(self._api.sanitize_for_serialization(obj))  # type: ignore[no-untyped-call]

    # --- HeartbeatSimulations ------------------------------------------------------

    def simulations_served(self) -> bool:
        """True once the API server serves the HeartbeatSimulation CRD."""
        with _calling(f"discover {GROUP}/{VERSION}"):
            try:
                found = self._custom.get_api_resources(
                    GROUP, VERSION, _request_timeout=TIMEOUT_SECONDS
                )
            except ApiException as exc:
                if exc.status == 404:
                    return False
                raise
        return any(resource.name == PLURAL for resource in found.resources)

    def get_simulation(self, namespace: str, name: str) -> Body | None:
        try:
            with _calling(f"get {PLURAL} {namespace}/{name}"):
                found = self._custom.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, name, _request_timeout=TIMEOUT_SECONDS
                )
            return dict(cast(Body, found))
        except KubeError as exc:
            if _missing(exc):
                return None
            raise

    def list_simulations(self, namespaces: tuple[str, ...]) -> list[Body]:
        """Every simulation in ``namespaces``, or in every namespace when it is empty."""
        items: list[Body] = []
        with _calling(f"list {PLURAL}"):
            if not namespaces:
                found = self._custom.list_cluster_custom_object(
                    GROUP, VERSION, PLURAL, _request_timeout=TIMEOUT_SECONDS
                )
                items.extend(cast(Body, found)["items"])
            for namespace in namespaces:
                found = self._custom.list_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, _request_timeout=TIMEOUT_SECONDS
                )
                items.extend(cast(Body, found)["items"])
        return items

    def patch_simulation_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """Merge-patch the status subresource (``conditions`` is replaced as a whole)."""
        try:
            with _calling(f"patch {PLURAL}/status {namespace}/{name}"):
                self._custom.patch_namespaced_custom_object_status(
                    GROUP,
                    VERSION,
                    namespace,
                    PLURAL,
                    name,
                    {"status": dict(status)},
                    _request_timeout=TIMEOUT_SECONDS,
                )
        except KubeError as exc:
            if not _missing(exc):  # deleted meanwhile: nothing to report on
                raise

    # --- StatefulSets and pods -----------------------------------------------------

    def get_statefulset(self, namespace: str, name: str) -> Body | None:
        try:
            with _calling(f"get statefulset {namespace}/{name}"):
                found = self._apps.read_namespaced_stateful_set(
                    name, namespace, _request_timeout=TIMEOUT_SECONDS
                )
        except KubeError as exc:
            if _missing(exc):
                return None
            raise
        return self._plain(found)

    def create_statefulset(self, manifest: Mapping[str, Any]) -> Body:
        meta = manifest["metadata"]
        with _calling(f"create statefulset {meta['namespace']}/{meta['name']}"):
            created = self._apps.create_namespaced_stateful_set(
                meta["namespace"], _as_model(manifest), _request_timeout=TIMEOUT_SECONDS
            )
        return self._plain(created)

    def replace_statefulset(self, manifest: Mapping[str, Any], resource_version: str) -> Body:
        """PUT the whole object: anyone else's edits are undone, not merged."""
        meta = {**manifest["metadata"], "resourceVersion": resource_version}
        with _calling(f"replace statefulset {meta['namespace']}/{meta['name']}"):
            replaced = self._apps.replace_namespaced_stateful_set(
                meta["name"],
                meta["namespace"],
                _as_model({**manifest, "metadata": meta}),
                _request_timeout=TIMEOUT_SECONDS,
            )
        return self._plain(replaced)

    def list_pods(self, namespace: str, selector: str) -> list[Body]:
        with _calling(f"list pods {namespace} -l {selector}"):
            found = self._core.list_namespaced_pod(
                namespace, label_selector=selector, _request_timeout=TIMEOUT_SECONDS
            )
        return [self._plain(pod) for pod in found.items]
