"""The consumer's bounded waits, its probes' budget and static group membership, as rendered.

The first tests read values.yaml and values.schema.json only; the rest render the chart.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from heartbeat.settings import Settings

from .helm import CHART, RELEASE, Helm, RenderError
from .manifests import container, env_of, named, pod_spec

VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
SCHEMA = json.loads((CHART / "values.schema.json").read_text())
CONSUMER = f"{RELEASE}-consumer"

# Chart value (a path in values.yaml) -> the setting the consumer reads it as.
CONSUMER_SETTINGS = {
    "kafka.sessionTimeoutSeconds": "KAFKA_SESSION_TIMEOUT_SECONDS",
    "postgresql.statementTimeoutSeconds": "DATABASE_STATEMENT_TIMEOUT_SECONDS",
    "postgresql.lockTimeoutSeconds": "DATABASE_LOCK_TIMEOUT_SECONDS",
    "consumer.stallSeconds": "CONSUMER_STALL_SECONDS",
    "consumer.shutdownTimeoutSeconds": "SHUTDOWN_TIMEOUT_SECONDS",
}


def _value(path: str, values: dict[str, Any] = VALUES) -> Any:
    node: Any = values
    for key in path.split("."):
        node = node[key]
    return node


def _consumer_env(manifests: Any) -> dict[str, Any]:
    return env_of(container(named(manifests, "Deployment", CONSUMER), "consumer"))


def _seconds(env: dict[str, Any], name: str) -> float:
    return float(env[name])


# --- values and schema, without helm ---------------------------------------------------------


@pytest.mark.parametrize(("path", "setting"), sorted(CONSUMER_SETTINGS.items()))
def test_the_charts_default_is_the_applications_default(path: str, setting: str) -> None:
    default = Settings.model_fields[setting.lower()].default
    assert float(_value(path)) == float(default), f"{path} differs from {setting}'s default"


def test_static_membership_is_off_by_default() -> None:
    assert _value("consumer.staticMembership.enabled") is False


def test_default_grace_period_leaves_the_shutdown_timeout_room() -> None:
    consumer = VALUES["consumer"]
    assert consumer["terminationGracePeriodSeconds"] > consumer["shutdownTimeoutSeconds"]


def _key_lines(lines: list[str]) -> dict[str, int]:
    """Dotted path of every key in values.yaml -> its line number (block mappings only)."""
    found: dict[str, int] = {}
    stack: list[tuple[int, str]] = []
    for number, line in enumerate(lines):
        stripped = line.lstrip()
        if not stripped or stripped.startswith(("#", "-")) or ":" not in stripped:
            continue
        indent = len(line) - len(stripped)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, stripped.split(":", 1)[0]))
        found[".".join(key for _, key in stack)] = number
    return found


def test_every_new_consumer_value_is_commented_in_values_yaml() -> None:
    lines = (CHART / "values.yaml").read_text().splitlines()
    where = _key_lines(lines)
    for path in [*CONSUMER_SETTINGS, "consumer.staticMembership.enabled"]:
        above = where[path] - 1
        while lines[above].strip().startswith("#") and not lines[above].strip().startswith("# --"):
            above -= 1
        assert lines[above].strip().startswith("# --"), f"{path} has no `# --` comment"


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        ("kafka.sessionTimeoutSeconds", 3),  # below the brokers' 6 s minimum
        ("postgresql.statementTimeoutSeconds", 0),
        ("postgresql.lockTimeoutSeconds", -1),
        ("consumer.stallSeconds", 0.5),
        ("consumer.shutdownTimeoutSeconds", 0),
        ("consumer.staticMembership.enabled", "yes"),
    ],
)
def test_values_schema_refuses_what_the_application_would_refuse(path: str, bad: Any) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    values = json.loads(json.dumps(VALUES))
    jsonschema.Draft7Validator(SCHEMA).validate(values)  # the defaults pass
    parent, key = path.rsplit(".", 1)
    _value(parent, values)[key] = bad
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(SCHEMA).validate(values)


# --- rendered --------------------------------------------------------------------------------


@pytest.mark.chart
def test_consumer_reads_each_timeout_from_its_value(helm: Helm) -> None:
    chosen = {
        "kafka.sessionTimeoutSeconds": 90,
        "postgresql.statementTimeoutSeconds": 12.5,
        "postgresql.lockTimeoutSeconds": 4,
        "consumer.stallSeconds": 240,
        "consumer.shutdownTimeoutSeconds": 20,
    }
    env = _consumer_env(helm.render(CHART, sets=chosen))
    rendered = {setting: env.get(setting) for setting in CONSUMER_SETTINGS.values()}
    assert rendered == {
        "KAFKA_SESSION_TIMEOUT_SECONDS": "90",
        "DATABASE_STATEMENT_TIMEOUT_SECONDS": "12.5",
        "DATABASE_LOCK_TIMEOUT_SECONDS": "4",
        "CONSUMER_STALL_SECONDS": "240",
        "SHUTDOWN_TIMEOUT_SECONDS": "20",
    }


@pytest.mark.chart
def test_default_install_gives_the_consumer_the_applications_defaults(defaults: Any) -> None:
    env = _consumer_env(defaults)
    for setting in CONSUMER_SETTINGS.values():
        default = Settings.model_fields[setting.lower()].default
        assert float(env[setting]) == float(default), setting


@pytest.mark.chart
def test_default_install_uses_dynamic_group_membership(defaults: Any) -> None:
    assert "KAFKA_GROUP_INSTANCE_ID" not in _consumer_env(defaults)


@pytest.mark.chart
def test_static_membership_names_each_consumer_after_its_pod(helm: Helm) -> None:
    manifests = helm.render(
        CHART,
        sets={"consumer.staticMembership.enabled": True, "kafka.sessionTimeoutSeconds": 120},
    )
    env = _consumer_env(manifests)
    assert env["KAFKA_GROUP_INSTANCE_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["KAFKA_SESSION_TIMEOUT_SECONDS"] == "120"


@pytest.mark.chart
def test_only_the_consumer_joins_the_group_as_a_static_member(helm: Helm) -> None:
    # The operator copies its KAFKA_* settings into the generators it runs: an instance id
    # there would be shared by every generator pod.
    manifests = helm.render(CHART, sets={"consumer.staticMembership.enabled": True})
    carriers = [
        f"{m['metadata']['name']}/{c['name']}"
        for m in manifests
        if m["kind"] in ("Deployment", "StatefulSet", "Job", "Pod")
        for c in pod_spec(m)["containers"]
        if "KAFKA_GROUP_INSTANCE_ID" in env_of(c)
    ]
    assert carriers == [f"{CONSUMER}/consumer"]


@pytest.mark.chart
def test_a_grace_period_not_above_the_shutdown_timeout_fails_to_render(helm: Helm) -> None:
    with pytest.raises(RenderError, match=r"terminationGracePeriodSeconds \(15\) must be more"):
        helm.render(
            CHART,
            sets={
                "consumer.terminationGracePeriodSeconds": 15,
                "consumer.shutdownTimeoutSeconds": 15,
            },
        )
    manifests = helm.render(
        CHART,
        sets={"consumer.terminationGracePeriodSeconds": 16, "consumer.shutdownTimeoutSeconds": 15},
    )
    assert pod_spec(named(manifests, "Deployment", CONSUMER))["terminationGracePeriodSeconds"] == 16


@pytest.mark.chart
def test_every_scenario_lets_the_consumer_stop_before_kubernetes_kills_it(
    rendered: Any, scenario: Path
) -> None:
    consumer = named(rendered(scenario), "Deployment", CONSUMER)
    env = _consumer_env([consumer])
    grace = pod_spec(consumer)["terminationGracePeriodSeconds"]
    assert grace > _seconds(env, "SHUTDOWN_TIMEOUT_SECONDS")


def _longest_wait_for_postgresql(env: dict[str, Any]) -> float:
    """One retry wait with its jitter, then one attempt: a connection and a statement."""
    names = (
        "RETRY_MAX_SECONDS",
        "RETRY_INITIAL_SECONDS",
        "DATABASE_CONNECT_TIMEOUT_SECONDS",
        "DATABASE_STATEMENT_TIMEOUT_SECONDS",
    )
    return sum(_seconds(env, name) for name in names)


@pytest.mark.chart
def test_every_scenario_keeps_liveness_above_the_longest_wait_for_postgresql(
    rendered: Any, scenario: Path
) -> None:
    consumer = named(rendered(scenario), "Deployment", CONSUMER)
    env = _consumer_env([consumer])
    assert _seconds(env, "LIVENESS_TIMEOUT_SECONDS") > _longest_wait_for_postgresql(env)
    probe = container(consumer, "consumer")["livenessProbe"]
    assert probe["httpGet"]["path"] == "/healthz"
    # Kubernetes restarts only after this many seconds of failed probes on top of that.
    assert probe["periodSeconds"] * probe["failureThreshold"] >= 30


@pytest.mark.chart
def test_a_liveness_timeout_a_postgresql_wait_can_outlast_fails_to_render(helm: Helm) -> None:
    # 90 + 0.5 + 5 + 30 = 125.5 seconds without a turn of the loop is possible.
    with pytest.raises(RenderError, match=r"config.livenessTimeoutSeconds \(120\) must be more"):
        helm.render(CHART, sets={"config.retryMaxSeconds": 90})
    manifests = helm.render(
        CHART, sets={"config.retryMaxSeconds": 90, "config.livenessTimeoutSeconds": 150}
    )
    assert _consumer_env(manifests)["LIVENESS_TIMEOUT_SECONDS"] == "150"


@pytest.mark.chart
def test_static_membership_scenario_renders_the_instance_id(rendered: Any) -> None:
    env = _consumer_env(rendered(CHART / "ci" / "static-membership-values.yaml"))
    assert env["KAFKA_GROUP_INSTANCE_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}
