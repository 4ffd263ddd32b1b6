"""The alerting rules are valid and pass their promtool unit tests."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.monitoring.queries import RULE_TESTS, RULES, alert_rules, without_thresholds


@pytest.fixture(scope="module")
def promtool() -> str:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is missing: run make system-deps (Debian's prometheus package)")
    return binary


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)


def test_promtool_accepts_the_rules_file(promtool):
    result = _run(promtool, "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_every_alert_passes_its_promtool_unit_tests(promtool):
    test_files = sorted(RULE_TESTS.glob("*.yaml"))
    assert test_files
    result = _run(promtool, "test", "rules", *map(str, test_files))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_unit_tested_firing_and_silent():
    import yaml

    fired, silent = set(), set()
    for path in RULE_TESTS.glob("*.yaml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check["exp_alerts"] else silent).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names - fired == set(), "alerts never shown to fire"
    assert names - silent == set(), "alerts never shown to stay silent"


def test_every_alert_has_a_severity_a_summary_a_description_and_a_threshold_to_remove():
    for rule in alert_rules():
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"]
        assert rule["annotations"]["description"]
        assert without_thresholds(rule["expr"]), rule["alert"]
