"""The committed dashboards are what the builder makes, and point at the provisioned sources."""

from __future__ import annotations

import yaml

from heartbeat_dashboards.build import render
from tests.monitoring.queries import (
    DASHBOARDS,
    OPERATOR_DASHBOARDS,
    OPERATOR_RULE_GROUPS,
    PROVISIONING,
    all_panel_queries,
    dashboards,
    rule_groups,
)


def test_committed_dashboards_are_exactly_what_the_builder_generates_now():
    generated = render()
    committed = {path.name: path.read_text() for path in DASHBOARDS.glob("*.json")}
    assert sorted(committed) == sorted(generated), "a dashboard file is missing or left over"
    for name, text in generated.items():
        assert committed[name] == text, f"{name} is stale: run python grafana/build_dashboards.py"


def test_building_twice_gives_the_same_bytes():
    assert render() == render()


def test_every_panel_and_query_uses_a_data_source_the_provisioning_defines():
    provisioned = {
        source["uid"]: source["type"]
        for path in (PROVISIONING / "datasources").glob("*.yaml")
        for source in yaml.safe_load(path.read_text())["datasources"]
    }
    used = set()
    for board in dashboards().values():
        for panel in board["panels"]:
            for ref in [
                panel.get("datasource"),
                *(t.get("datasource") for t in panel.get("targets", [])),
            ]:
                if ref:
                    used.add((ref["uid"], ref["type"]))
        for variable in board.get("templating", {}).get("list", []):
            if variable.get("datasource"):
                used.add((variable["datasource"]["uid"], variable["datasource"]["type"]))
    assert used, "no panel names a data source"
    for uid, source_type in sorted(used):
        assert provisioned.get(uid) == source_type, f"{uid} ({source_type}) is not provisioned"


def test_dashboards_have_unique_uids_panel_ids_and_a_query_in_every_panel():
    uids = [board["uid"] for board in dashboards().values()]
    assert len(uids) == len(set(uids)) == 3
    for name, board in dashboards().items():
        ids = [panel["id"] for panel in board["panels"]]
        assert len(ids) == len(set(ids)), name
        for panel in board["panels"]:
            if panel["type"] != "row":
                assert panel.get("targets"), f"{name} / {panel['title']} has no query"
    assert all(query.text.strip() for query in all_panel_queries())


def test_the_dashboard_provider_loads_the_folder_of_the_generated_files():
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "heartbeat.yaml").read_text())
    (only,) = provider["providers"]
    assert only["type"] == "file"
    assert only["options"]["path"] == "$HEARTBEAT_DASHBOARDS_DIR"


def test_the_operator_world_proves_dashboards_and_rule_groups_that_exist():
    # Everything not named here is proven against the running pipeline instead.
    assert set(dashboards()) >= OPERATOR_DASHBOARDS
    assert set(rule_groups()) >= OPERATOR_RULE_GROUPS
    assert set(rule_groups()) - OPERATOR_RULE_GROUPS, "the pipeline's rules are left"
