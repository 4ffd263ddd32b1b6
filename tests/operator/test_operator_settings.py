"""The operator's own settings and the kopf settings made from them."""

from __future__ import annotations

import logging
from pathlib import Path

import kopf
import pytest

from heartbeat.settings import Settings
from heartbeat_operator.exceptions import OperatorSettingsError
from heartbeat_operator.main import check_combinations, kopf_settings
from heartbeat_operator.settings import (
    OperatorSettings,
    documented_fields,
    load_operator_settings,
)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]  # keep a developer's .env out
    for name in ("OPERATOR_NAMESPACES", "OPERATOR_RESYNC_INTERVAL_SECONDS"):
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
