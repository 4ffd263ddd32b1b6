"""The import contracts cover every module by construction, so a new one cannot escape them.

`lint-imports` checks that the contracts are kept; these tests check that the contracts are
written so that keeping them means something: sources are whole packages (never a list of
modules that a new module is missing from), the layers contracts are exhaustive and name every
module there is, and the linted roots are every package of the repository, also for mypy.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())
LINTER = CONFIG["tool"]["importlinter"]
CONTRACTS = LINTER["contracts"]
# Where the packages live: every one of them is a root of the contracts and of mypy.
SOURCE_FOLDERS = ("app", "operator")


def _packages() -> dict[str, Path]:
    return {
        init.parent.name: init.parent
        for folder in SOURCE_FOLDERS
        for init in sorted((ROOT / folder).glob("*/__init__.py"))
    }


def _by_type(kind: str) -> list[dict]:
    return [contract for contract in CONTRACTS if contract["type"] == kind]


def _layer_names(layer: str) -> set[str]:
    """``"a | (b)"`` names ``a`` and the optional ``b``; ``:`` joins non-independent siblings."""
    return {
        name.strip().strip("()").strip()
        for part in layer.split("|")
        for name in part.split(":")
        if name.strip()
    }


def test_every_package_of_the_repository_is_linted_and_type_checked():
    packages = set(_packages())
    assert {
        "heartbeat",
        "heartbeat_operator",
        "heartbeat_localstack",
        "heartbeat_dashboards",
    } <= packages
    assert set(LINTER["root_packages"]) == packages
    assert set(CONFIG["tool"]["mypy"]["packages"]) == packages


@pytest.mark.parametrize("contract", _by_type("forbidden"), ids=lambda c: c["name"])
def test_forbidden_contracts_take_whole_packages_as_sources(contract):
    assert set(contract["source_modules"]) <= set(LINTER["root_packages"]), (
        "name the package and list the allowed edge in ignore_imports, so that a new module"
        " is covered without anyone adding it"
    )


@pytest.mark.parametrize("contract", _by_type("layers"), ids=lambda c: c["name"])
def test_layers_contracts_are_exhaustive_over_a_whole_package(contract):
    assert contract.get("exhaustive") is True
    assert set(contract["containers"]) <= set(LINTER["root_packages"])


@pytest.mark.parametrize("contract", _by_type("layers"), ids=lambda c: c["name"])
def test_every_module_of_a_layered_package_is_in_one_layer(contract):
    packages = _packages()
    for container in contract["containers"]:
        modules = {
            path.stem if path.is_file() else path.name
            for path in packages[container].iterdir()
            if (path.suffix == ".py" and path.stem != "__init__")
            or (path.is_dir() and (path / "__init__.py").exists())
        }
        named = [name for layer in contract["layers"] for name in _layer_names(layer)]
        assert len(named) == len(set(named)), f"a module is in two layers: {sorted(named)}"
        assert modules - set(named) == set(), f"{container}: modules in no layer"


def test_the_pipeline_and_the_operator_are_kept_apart_both_ways():
    def forbids(source: str, target: str) -> list[dict]:
        return [
            c
            for c in _by_type("forbidden")
            if source in c["source_modules"] and target in c["forbidden_modules"]
        ]

    (pipeline,) = forbids("heartbeat", "heartbeat_operator")
    # The one way in: the command line starts the operator.
    assert {rule.split("->")[0].strip() for rule in pipeline.get("ignore_imports", [])} == {
        "heartbeat.cli"
    }
    assert not pipeline.get("allow_indirect_imports", False)
    assert forbids("heartbeat_operator", "heartbeat")
    assert forbids("heartbeat", "heartbeat_localstack")
    assert forbids("heartbeat_operator", "heartbeat_localstack")


@pytest.mark.parametrize(
    ("client", "owner"),
    [
        ("confluent_kafka", "heartbeat.kafka"),
        ("psycopg", "heartbeat.store"),
        ("kubernetes", "heartbeat_operator.kube"),
    ],
)
def test_each_external_client_has_one_module_that_imports_it(client, owner):
    (contract,) = [
        c
        for c in _by_type("forbidden")
        if client in c["forbidden_modules"]
        and {"heartbeat", "heartbeat_operator"} <= set(c["source_modules"])
    ]
    importers = {rule.split("->")[0].strip() for rule in contract.get("ignore_imports", [])}
    assert owner in importers


@pytest.mark.parametrize("contract", _by_type("layers"), ids=lambda c: c["name"])
def test_architecture_md_names_every_module_of_the_layers(contract):
    text = (ROOT / "ARCHITECTURE.md").read_text()
    named = {name for layer in contract["layers"] for name in _layer_names(layer)}
    missing = sorted(name for name in named if f"`{name}`" not in text)
    assert missing == [], "ARCHITECTURE.md does not say where these modules are"
