"""After traffic, the real Prometheus of `conduit observe` answers per-method rate and p99 for every
service, every target is up, the rules are loaded, and every dashboard panel returns series."""

from __future__ import annotations

import math
import secrets
from typing import Any

import httpx
import pytest

from conduit_server.observe import ObservedMesh
from conduit_server.runtime.settings import SERVICES
from tests.observability.conftest import get_json, wait_for
from tests.observability.support import panel_queries

pytestmark = pytest.mark.observe

PER_METHOD_RATE = "sum by (service, method) (rate(conduit_rpc_duration_seconds_count[1m]))"
PER_METHOD_P99 = ("histogram_quantile(0.99, sum by (service, method, le) "
                  "(rate(conduit_rpc_duration_seconds_bucket[1m])))")


@pytest.fixture(scope="module")
def traffic(observed: ObservedMesh) -> ObservedMesh:
    """REST calls that reach every service (search answers its contract too), a watch stream, writes."""
    base = f"http://127.0.0.1:{observed.settings.gateway_http_port}"
    name = f"metered{secrets.token_hex(4)}"
    with httpx.Client(timeout=10) as client:
        token = client.post(f"{base}/api/users", json={"user": {
            "username": name, "email": f"{name}@example.com", "password": "metered-password"}}).json()["user"]["token"]
        headers = {"Authorization": f"Token {token}"}
        with client.stream("GET", f"{base}/api/watch/articles?batched=true",
                           headers={"Accept": "text/event-stream"}) as watch:
            for n in range(5):
                created = client.post(f"{base}/api/articles", headers=headers, json={"article": {
                    "title": f"Metered {name} {n}", "description": "d", "body": "b", "tagList": ["metrics"]}})
                assert created.status_code == 201, created.text
                slug = created.json()["article"]["slug"]
                assert client.get(f"{base}/api/articles/{slug}").status_code == 200
                assert client.post(f"{base}/api/articles/{slug}/favorite", headers=headers).status_code == 200
            first = next(watch.iter_lines())
            assert first
        for _ in range(10):
            assert client.get(f"{base}/api/articles?limit=5").status_code == 200
            assert client.get(f"{base}/api/tags").status_code == 200
            assert client.get(f"{base}/api/user", headers=headers).status_code == 200
            assert client.get(f"{base}/api/profiles/{name}").status_code == 200
            client.get(f"{base}/api/search/articles?q=metered")  # every service serves a call
        assert client.get(f"{base}/api/articles/no-such-article").status_code == 404
    return observed


def test_every_target_is_up(traffic: ObservedMesh) -> None:
    up = wait_for(lambda: [s for s in traffic.query("up") if s["value"][1] == "1"]
                  if len(traffic.query("up")) == len(SERVICES) + 1 else None, "scrape targets")
    jobs = {series["metric"]["job"] for series in up}
    assert jobs == {f"conduit-{name}" for name in SERVICES} | {"envoy"}
    assert all(series["value"][1] == "1" for series in traffic.query("up"))


def test_per_method_rate_and_p99_for_every_service(traffic: ObservedMesh) -> None:
    called = {("articles", "/conduit.articles.v1.ArticlesService/CreateArticle"),
              ("users", "/conduit.users.v1.UsersService/GetCurrentUser")}

    def every_service(promql: str) -> list[dict[str, Any]] | None:
        # A method's series has a rate once two scrapes have seen it: wait for the called ones, not only
        # for some rate from every service (health checks give one early).
        result = traffic.query(promql)
        found = {series["metric"]["service"] for series in result if series["value"][1] not in ("NaN", "0")}
        methods = {(series["metric"]["service"], series["metric"]["method"]) for series in result}
        return result if found >= set(SERVICES) and methods >= called else None

    rates = wait_for(lambda: every_service(PER_METHOD_RATE), "a request rate from every service")
    p99 = wait_for(lambda: every_service(PER_METHOD_P99), "a p99 from every service")
    methods = {(s["metric"]["service"], s["metric"]["method"]) for s in rates}
    assert methods >= called
    assert any(service == "realtime" for service, _ in methods)
    for series in p99:
        value = float(series["value"][1])
        assert math.isnan(value) or 0 < value <= 5.0, series  # NaN: no call of that method in the window


def test_rules_are_loaded_and_healthy(traffic: ObservedMesh) -> None:
    groups = get_json(f"{traffic.prometheus_url}/api/v1/rules")["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    alerts = {rule["name"] for rule in rules if rule["type"] == "alerting"}
    assert {"ConduitErrorBudgetBurnFast", "ConduitLatencyBudgetBurn", "ConduitOutboxLag",
            "ConduitOutboxRelayStopped", "ConduitWatchersDropped", "ConduitInstanceDown",
            "ConduitSearchIndexingLag"} <= alerts
    assert all(rule["health"] != "err" for rule in rules), [r for r in rules if r["health"] == "err"]


@pytest.mark.parametrize(("dashboard", "title", "expr"), panel_queries(),
                         ids=[f"{d}:{t}" for d, t, _ in panel_queries()])
def test_every_dashboard_panel_returns_series(traffic: ObservedMesh, dashboard: str, title: str,
                                              expr: str) -> None:
    wait_for(lambda: traffic.query(expr), f"series for {dashboard} / {title}: {expr}")
