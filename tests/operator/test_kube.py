"""How the API server's refusals become the operator's exceptions."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from heartbeat_operator.exceptions import KubeError, KubeRejectedError
from heartbeat_operator.kube import Kube

STATUS = {"kind": "Status", "apiVersion": "v1", "status": "Failure"}
WEBHOOK = 'admission webhook "policy.example" denied the request: image not signed'
INVALID = 'StatefulSet.apps "ward" is invalid: spec.template.spec.containers[0].resources'


class Refusing:
    def __init__(self, status: int, reason: str, body: Any) -> None:
        self.error = ApiException(status=status, reason=reason)
        self.error.body = body

    def create_namespaced_stateful_set(self, *_: Any, **__: Any) -> Any:
        raise self.error


MANIFEST = {"metadata": {"name": "ward", "namespace": "wards"}}


@pytest.mark.parametrize(
    ("status", "reason", "body", "refused", "detail"),
    [
        (422, "Unprocessable Entity", json.dumps({**STATUS, "message": INVALID}), True, INVALID),
        (403, "Forbidden", json.dumps({**STATUS, "message": WEBHOOK}).encode(), True, WEBHOOK),
        (400, "Bad Request", "not json at all", True, "not json at all"),
        (409, "Conflict", json.dumps({**STATUS, "message": "changed"}), False, "changed"),
        (429, "Too Many Requests", "", False, ""),
        (404, "Not Found", None, False, ""),
        (500, "Internal Server Error", json.dumps({**STATUS, "message": "etcd"}), False, "etcd"),
        (503, "Service Unavailable", None, False, ""),
    ],
)
def test_a_refusal_keeps_the_api_servers_message_and_only_4xx_ones_are_for_good(
    status: int, reason: str, body: Any, refused: bool, detail: str
) -> None:
    kube = Kube(client.ApiClient())
    kube._apps = Refusing(status, reason, body)  # type: ignore[assignment]
    with pytest.raises(KubeError) as caught:
        kube.create_statefulset(MANIFEST)
    assert isinstance(caught.value, KubeRejectedError) is refused
    assert (caught.value.status, caught.value.detail) == (status, detail)
    assert f"create statefulset wards/ward: {status} {reason}" in str(caught.value)
    assert detail in str(caught.value)
