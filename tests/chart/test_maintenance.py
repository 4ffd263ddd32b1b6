"""`heartbeat maintain` runs as a CronJob: partitions ahead, retention, rollups."""

from __future__ import annotations

from typing import Any

import pytest

from heartbeat.settings import Settings

from .helm import CHART, RELEASE, Helm, RenderError
from .manifests import container, env_of, named, of_kind, pod_spec

pytestmark = pytest.mark.chart

CRONJOB = f"{RELEASE}-maintenance"


def maintain_env(manifests: Any) -> dict[str, Any]:
    return env_of(container(named(manifests, "CronJob", CRONJOB), "maintain"))


def test_default_install_runs_maintain_every_minute_never_two_at_once(defaults: Any) -> None:
    cronjob = named(defaults, "CronJob", CRONJOB)
    assert cronjob["spec"]["schedule"] == "* * * * *"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    assert container(cronjob, "maintain")["args"] == ["maintain"]
    spec = pod_spec(cronjob)
    assert spec["restartPolicy"] == "Never"
    assert spec["automountServiceAccountToken"] is False
    labels = cronjob["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/component"] == "maintenance"


def test_the_chart_defaults_are_the_applications_defaults(defaults: Any) -> None:
    env = maintain_env(defaults)
    defaults_of = Settings.model_fields
    for name in (
        "partition_interval",
        "partition_ahead_days",
        "raw_retention_days",
        "rollup_retention_days",
        "hourly_rollup_retention_days",
        "maintenance_lock_timeout_seconds",
    ):
        assert str(env[name.upper()]) == str(defaults_of[name].default).removesuffix(".0"), name


def test_maintain_reads_the_releases_credentials_not_the_hooks(defaults: Any) -> None:
    env = maintain_env(defaults)
    assert env["PGPASSWORD"]["secretKeyRef"]["name"] == RELEASE
    assert env["PGHOST"] == "postgresql"


def test_retention_interval_and_schedule_come_from_the_values(helm: Helm) -> None:
    manifests = helm.render(
        CHART,
        sets={
            "maintenance.schedule": "*/5 * * * *",
            "maintenance.timeZone": "Etc/UTC",
            "maintenance.partitionInterval": "hour",
            "maintenance.rawRetentionDays": 30,
            "maintenance.rollupRetentionDays": 400,
            "maintenance.hourlyRollupRetentionDays": 1000,
            "maintenance.partitionAheadDays": 7,
            "maintenance.statementTimeoutSeconds": 600,
        },
    )
    cronjob = named(manifests, "CronJob", CRONJOB)
    assert (cronjob["spec"]["schedule"], cronjob["spec"]["timeZone"]) == (
        "*/5 * * * *",
        "Etc/UTC",
    )
    env = maintain_env(manifests)
    assert {
        name: env[name]
        for name in env
        if name
        in {
            "PARTITION_INTERVAL",
            "RAW_RETENTION_DAYS",
            "ROLLUP_RETENTION_DAYS",
            "HOURLY_ROLLUP_RETENTION_DAYS",
            "PARTITION_AHEAD_DAYS",
            "DATABASE_STATEMENT_TIMEOUT_SECONDS",
        }
    } == {
        "PARTITION_INTERVAL": "hour",
        "RAW_RETENTION_DAYS": "30",
        "ROLLUP_RETENTION_DAYS": "400",
        "HOURLY_ROLLUP_RETENTION_DAYS": "1000",
        "PARTITION_AHEAD_DAYS": "7",
        "DATABASE_STATEMENT_TIMEOUT_SECONDS": "600",
    }


def test_rollups_kept_for_less_time_than_the_readings_fail_to_render(helm: Helm) -> None:
    with pytest.raises(RenderError, match=r"rollupRetentionDays \(3\) is less than"):
        helm.render(
            CHART,
            sets={"maintenance.rawRetentionDays": 7, "maintenance.rollupRetentionDays": 3},
        )


def test_hourly_rollups_kept_for_less_time_than_the_minutes_fail_to_render(helm: Helm) -> None:
    with pytest.raises(RenderError, match=r"hourlyRollupRetentionDays \(60\) is less than"):
        helm.render(
            CHART,
            sets={
                "maintenance.rollupRetentionDays": 90,
                "maintenance.hourlyRollupRetentionDays": 60,
            },
        )


def test_an_unknown_partition_interval_is_refused_by_the_schema(helm: Helm) -> None:
    with pytest.raises(RenderError, match="partitionInterval"):
        helm.render(CHART, sets={"maintenance.partitionInterval": "month"})


def test_maintenance_can_be_left_to_another_scheduler(helm: Helm) -> None:
    manifests = helm.render(CHART, sets={"maintenance.enabled": False})
    assert not of_kind(manifests, "CronJob")
