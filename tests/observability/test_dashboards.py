"""The Grafana dashboards are well-formed and every panel's PromQL parses (promtool, Prometheus's parser)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.observability.support import DASHBOARDS, OBSERVABILITY, load_dashboard, panel_queries

PROVISIONING = OBSERVABILITY / "grafana" / "provisioning"


def test_there_are_dashboards_for_red_envoy_streams_and_pools() -> None:
    assert {path.stem for path in DASHBOARDS} == {"conduit-red", "conduit-envoy", "conduit-streams",
                                                  "conduit-resources"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.stem)
def test_dashboard_structure(path: Path) -> None:
    dashboard = load_dashboard(path)
    datasources = yaml.safe_load((PROVISIONING / "datasources" / "conduit.yml").read_text())["datasources"]
    prometheus_uid = next(d["uid"] for d in datasources if d["type"] == "prometheus")
    assert dashboard["uid"] == path.stem
    assert dashboard["title"]
    assert isinstance(dashboard["schemaVersion"], int)
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        assert grid["h"] > 0
        cells_here = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                      for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not cells & cells_here, f"{panel['title']} overlaps another panel"
        cells |= cells_here
        assert panel["datasource"]["uid"] == prometheus_uid
        assert panel["targets"], panel["title"]
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])
    for variable in dashboard["templating"]["list"]:
        assert variable["datasource"]["uid"] == prometheus_uid


def test_provisioning_points_at_the_dashboards() -> None:
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "conduit.yml").read_text())["providers"]
    assert providers
    assert all(p["type"] == "file" for p in providers)
    assert all(p["options"]["path"] for p in providers)


def test_every_panel_query_parses(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool missing: `make rules-test` installs Debian's prometheus package")
    queries = panel_queries()
    # Each query as a recording rule: `promtool check rules` runs Prometheus's own parser on it.
    rules = {"groups": [{"name": "dashboards", "rules": [
        {"record": f"dashboard:query_{n}", "expr": expr} for n, (_, _, expr) in enumerate(queries)]}]}
    path = tmp_path / "dashboards.rules.yml"
    path.write_text(yaml.safe_dump(rules))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(queries)} rules found" in result.stdout
