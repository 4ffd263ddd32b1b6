"""The operator's own settings and the kopf settings made from them."""

from __future__ import annotations

import logging
from pathlib import Path

import kopf
import pytest

from heartbeat.settings import Settings
from heartbeat_operator.__main__ import EXIT_USAGE, check_combinations, kopf_settings, run
from heartbeat_operator.exceptions import OperatorSettingsError
from heartbeat_operator.settings import (
    OperatorSettings,
    documented_fields,
    load_operator_settings,
)

QUANTITIES = (
    "OPERATOR_GENERATOR_CPU_REQUEST",
    "OPERATOR_GENERATOR_MEMORY_REQUEST",
    "OPERATOR_GENERATOR_MEMORY_LIMIT",
)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]  # keep a developer's .env out
    for name in ("OPERATOR_NAMESPACES", "OPERATOR_RESYNC_INTERVAL_SECONDS", *QUANTITIES):
        monkeypatch.delenv(name, raising=False)


def test_no_namespaces_means_every_namespace() -> None:
    assert load_operator_settings().namespace_list == ()


def test_namespaces_come_from_the_environment_or_the_command_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPERATOR_NAMESPACES", " wards, clinics ,,")
    assert load_operator_settings().namespace_list == ("wards", "clinics")
    assert load_operator_settings(namespaces="icu").namespace_list == ("icu",)


def test_a_bad_setting_is_named_by_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPERATOR_RESYNC_INTERVAL_SECONDS", "0")
    with pytest.raises(OperatorSettingsError, match="OPERATOR_RESYNC_INTERVAL_SECONDS"):
        load_operator_settings()


@pytest.mark.parametrize(
    ("variable", "value", "why"),
    [
        ("OPERATOR_GENERATOR_CPU_REQUEST", "lots", "not a Kubernetes quantity"),
        ("OPERATOR_GENERATOR_CPU_REQUEST", "0.0001", "finer than 1m"),
        ("OPERATOR_GENERATOR_MEMORY_REQUEST", "96MB", "not a Kubernetes quantity"),
        ("OPERATOR_GENERATOR_MEMORY_REQUEST", "0.5", "whole number of bytes"),
        ("OPERATOR_GENERATOR_MEMORY_LIMIT", "-1Gi", "negative"),
        ("OPERATOR_GENERATOR_MEMORY_LIMIT", "64Mi", "less than"),
    ],
)
def test_a_resource_quantity_the_api_server_would_refuse_is_a_settings_error(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, why: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(OperatorSettingsError, match=f"{variable}: .*{why}"):
        load_operator_settings()


def test_the_operator_exits_2_naming_a_bad_resource_quantity(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPERATOR_GENERATOR_MEMORY_LIMIT", "lots")
    assert run(Settings(_env_file=None)) == EXIT_USAGE  # type: ignore[call-arg]
    assert "OPERATOR_GENERATOR_MEMORY_LIMIT" in capsys.readouterr().err


def test_any_spelling_of_a_resource_quantity_is_accepted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPERATOR_GENERATOR_CPU_REQUEST", "0.1")
    monkeypatch.setenv("OPERATOR_GENERATOR_MEMORY_REQUEST", "1e8")
    monkeypatch.setenv("OPERATOR_GENERATOR_MEMORY_LIMIT", "1Gi")
    config = load_operator_settings()
    assert (config.generator_cpu_request, config.generator_memory_limit) == ("0.1", "1Gi")


def test_sasl_without_a_password_secret_is_refused_at_start() -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="PLAIN",
    )
    with pytest.raises(OperatorSettingsError, match="OPERATOR_KAFKA_SASL_SECRET"):
        check_combinations(settings, OperatorSettings())
    check_combinations(settings, OperatorSettings(kafka_sasl_secret="creds"))


def test_kopf_needs_no_crd_or_namespace_watching_and_keeps_out_of_the_status() -> None:
    settings = kopf_settings(OperatorSettings(posting_level="ERROR"))
    assert settings.scanning.disabled is True
    assert settings.posting.level == logging.ERROR
    assert isinstance(settings.persistence.progress_storage, kopf.AnnotationsProgressStorage)
    assert isinstance(settings.persistence.diffbase_storage, kopf.AnnotationsDiffBaseStorage)


def test_the_chart_readme_documents_every_operator_setting() -> None:
    readme = (Path(__file__).resolve().parents[2] / "charts/heartbeat/README.md").read_text()
    missing = [env for env, _, _ in documented_fields() if f"`{env}`" not in readme]
    assert not missing
