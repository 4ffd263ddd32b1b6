"""Which services the integration fixtures use: HEARTBEAT_TEST_SERVICES and what auto decides."""

from __future__ import annotations

import pytest

from tests.services import choose_backend


def never() -> bool:
    raise AssertionError("an explicit setting must not ask the machine")


def test_auto_prefers_local_processes_even_when_a_docker_engine_answers():
    assert choose_backend(None, lambda: True, lambda: True) == "local"
    assert choose_backend("auto", lambda: True, lambda: True) == "local"


def test_auto_falls_back_to_containers_where_processes_cannot_run():
    assert choose_backend(None, lambda: True, lambda: False) == "containers"


def test_auto_without_either_is_local_which_then_names_what_to_install():
    assert choose_backend(None, lambda: False, lambda: False) == "local"


@pytest.mark.parametrize(
    ("setting", "backend"), [("local", "local"), (" Containers ", "containers")]
)
def test_an_explicit_setting_is_taken_without_asking_the_machine(setting, backend):
    assert choose_backend(setting, never, never) == backend


def test_a_wrong_setting_is_a_usage_error_naming_the_variable():
    with pytest.raises(pytest.UsageError, match="HEARTBEAT_TEST_SERVICES='docker'"):
        choose_backend("docker", never, never)
