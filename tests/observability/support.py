"""The Grafana dashboards and Prometheus rules of deploy/observability/, as data for the tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OBSERVABILITY = Path(__file__).resolve().parents[2] / "deploy" / "observability"
DASHBOARDS = sorted((OBSERVABILITY / "grafana" / "dashboards").glob("*.json"))
# What Grafana substitutes before it sends a query: the service variable's "All" and the rate window.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$service": ".*"}


def load_dashboard(path: Path) -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return dashboard


def panel_queries() -> list[tuple[str, str, str]]:
    """(dashboard uid, panel title, PromQL as Grafana would send it) for every panel target."""
    queries = []
    for path in DASHBOARDS:
        dashboard = load_dashboard(path)
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                expr = target["expr"]
                for variable, value in GRAFANA_VARIABLES.items():
                    expr = expr.replace(variable, value)
                queries.append((dashboard["uid"], panel["title"], expr))
    return queries
