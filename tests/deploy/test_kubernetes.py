"""The Kubernetes overlays render with kubectl's kustomize and every object validates: core kinds
against the Kubernetes 1.32 schemas (kubernetes-validate, strict: unknown fields fail), the
CloudNativePG and Prometheus Operator kinds against their published CRD schemas kept in
deploy/kubernetes/schemas (made strict the same way). Then what the overlays promise is checked
object by object."""

from __future__ import annotations

import copy
import ipaddress
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
SCHEMAS = KUBERNETES / "schemas"
KUBERNETES_VERSION = "1.32.0"
SERVICES = {"users": 50051, "articles": 50052, "search": 50053, "realtime": 50054, "webhooks": 50055}
# The graphql service (HTTP and WebSocket, not gRPC) and the services it calls.
GRAPHQL_PORT = 8090
GRAPHQL_CALLS = ("users", "articles", "search", "realtime")
Object = dict[str, Any]


@cache
def render(overlay: str) -> tuple[Object, ...]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl (with kustomize) is needed to render deploy/kubernetes; it comes with the project's "
                    "machines")
    output = subprocess.run([kubectl, "kustomize", str(KUBERNETES / "overlays" / overlay)],
                            capture_output=True, text=True, check=True).stdout
    return tuple(document for document in yaml.safe_load_all(output) if document)


def strict(schema: Any) -> Any:
    """Refuse properties a schema does not name (as kubeconform's strict mode does for CRDs)."""
    if isinstance(schema, dict):
        schema = {key: strict(value) for key, value in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema \
                and not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [strict(value) for value in schema]
    return schema


@cache
def crd_schema(api_version: str, kind: str) -> Object | None:
    group, _, version = api_version.rpartition("/")
    path = SCHEMAS / f"{group}_{kind.lower()}_{version}.json"
    if not path.exists():
        return None
    schema: Object = strict(json.loads(path.read_text(encoding="utf-8")))
    # apiVersion/kind/metadata are validated by the API server, not the CRD schema.
    schema["properties"].setdefault("metadata", {"type": "object"})
    return schema


def by_kind(objects: tuple[Object, ...], kind: str) -> dict[str, Object]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def validation_errors(obj: Object) -> list[str]:
    schema = crd_schema(obj["apiVersion"], obj["kind"])
    if schema is not None:
        validator = jsonschema.Draft7Validator(schema)
        return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)]
    try:
        kubernetes_validate.validate(copy.deepcopy(obj), KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{'/'.join(map(str, error.path))}: {error.message}"]
    return []


OVERLAYS = ("dev", "prod")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_validates(overlay: str) -> None:
    objects = render(overlay)
    assert len(objects) > 30
    failures = {f"{o['kind']}/{o['metadata']['name']}": errors for o in objects
                if (errors := validation_errors(o))}
    assert failures == {}


def test_an_unknown_field_fails_validation() -> None:
    """The validation above can fail: a misspelt field in a core kind and in a CRD kind."""
    deployment = copy.deepcopy(by_kind(render("dev"), "Deployment")["users"])
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    assert validation_errors(deployment)
    cluster = copy.deepcopy(by_kind(render("prod"), "Cluster")["conduit-db"])
    cluster["spec"]["instance"] = 3
    assert validation_errors(cluster)


def containers(objects: tuple[Object, ...]) -> Iterator[tuple[str, Object, Object]]:
    for obj in objects:
        if obj["kind"] in ("Deployment", "Job"):
            pod = obj["spec"]["template"]["spec"]
            for container in pod["containers"]:
                yield obj["metadata"]["name"], pod, container


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_is_locked_down(overlay: str) -> None:
    for name, pod, container in containers(render(overlay)):
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["automountServiceAccountToken"] is False, name
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True, name
        assert security["allowPrivilegeEscalation"] is False, name
        assert security["capabilities"]["drop"] == ["ALL"], name
        assert {"cpu", "memory"} <= container["resources"]["requests"].keys(), name
        assert "memory" in container["resources"]["limits"], name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_are_probed_by_grpc_scaled_and_budgeted(overlay: str) -> None:
    objects = render(overlay)
    deployments, services = by_kind(objects, "Deployment"), by_kind(objects, "Service")
    autoscalers, budgets = by_kind(objects, "HorizontalPodAutoscaler"), by_kind(objects, "PodDisruptionBudget")
    for name, port in SERVICES.items():
        pod = deployments[name]["spec"]["template"]["spec"]
        container = pod["containers"][0]
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            assert container[probe]["grpc"] == {"port": port}, (name, probe)
        assert container["args"] == ["serve", name]
        assert deployments[name]["spec"]["replicas"] >= 2
        assert deployments[name]["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
        assert {c["topologyKey"] for c in pod["topologySpreadConstraints"]} == {
            "topology.kubernetes.io/zone", "kubernetes.io/hostname"}
        # Headless: Envoy and the gRPC clients see every pod.
        assert services[name]["spec"]["clusterIP"] == "None"
        assert services[name]["spec"]["ports"][0]["port"] == port
        assert autoscalers[name]["spec"]["minReplicas"] >= 2
        assert budgets[name]["spec"]["maxUnavailable"] == 1
    assert "gateway" in autoscalers
    assert "gateway" in budgets


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_deny_by_default(overlay: str) -> None:
    policies = by_kind(render(overlay), "NetworkPolicy")
    deny = policies["default-deny"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    services = policies["services"]["spec"]
    senders = [peer["podSelector"]["matchLabels"] for peer in services["ingress"][0]["from"]]
    assert senders == [{"conduit.dev/role": "gateway"}, {"conduit.dev/role": "service"}]
    assert "conduit-db" in policies
    # Every service's port is open from the gateway and between services.
    ports = set(SERVICES.values())
    assert {p["port"] for p in policies["gateway"]["spec"]["egress"][0]["ports"]} == ports
    assert {p["port"] for p in services["ingress"][0]["ports"]} == ports


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_graphql_is_deployed_with_the_services_hardening(overlay: str) -> None:
    """The graphql Deployment is probed over HTTP but otherwise hardened, sized, spread, scaled and
    budgeted exactly as a service; it is given Redis, never the database."""
    from conduit_server.runtime.settings import GraphqlSettings

    objects = render(overlay)
    deployments, services = by_kind(objects, "Deployment"), by_kind(objects, "Service")
    autoscalers, budgets = by_kind(objects, "HorizontalPodAutoscaler"), by_kind(objects, "PodDisruptionBudget")
    graphql, users = deployments["graphql"], deployments["users"]
    pod, service_pod = graphql["spec"]["template"]["spec"], users["spec"]["template"]["spec"]
    [container], service_container = pod["containers"], service_pod["containers"][0]
    assert container["args"] == ["graphql", "serve"]
    assert container["image"] == service_container["image"]
    # The same hardening, byte for byte, as the services' (service-defaults.yaml).
    for key in ("securityContext", "automountServiceAccountToken", "enableServiceLinks",
                "terminationGracePeriodSeconds"):
        assert pod[key] == service_pod[key], key
    assert container["securityContext"] == service_container["securityContext"]
    assert container["resources"] == service_container["resources"]
    assert container["volumeMounts"] == service_container["volumeMounts"]  # the emptyDir /tmp
    assert pod["volumes"] == service_pod["volumes"]
    for key in ("replicas", "strategy", "revisionHistoryLimit"):
        assert graphql["spec"][key] == users["spec"][key], key
    assert {c["topologyKey"] for c in pod["topologySpreadConstraints"]} == {
        "topology.kubernetes.io/zone", "kubernetes.io/hostname"}
    for constraint in pod["topologySpreadConstraints"]:
        assert constraint["labelSelector"] == {"matchLabels": {"app.kubernetes.io/name": "graphql"}}
    # HTTP probes on /healthz, with the services' timings.
    assert container["ports"] == [{"name": "http", "containerPort": GRAPHQL_PORT}]
    assert GraphqlSettings().port == GRAPHQL_PORT  # config.env does not move it
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}, probe
        timings = {key: value for key, value in container[probe].items() if key != "httpGet"}
        assert timings == {key: value for key, value in service_container[probe].items() if key != "grpc"}, probe
    # Configuration and secrets like a service; Redis (token revocations), no database.
    assert container["envFrom"] == service_container["envFrom"]
    variables = {entry["name"]: entry for entry in container["env"]}
    assert variables.keys() == {"CONDUIT_REDIS_URL"}
    assert variables["CONDUIT_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": "conduit-redis", "key": "url"}
    labels = graphql["spec"]["template"]["metadata"]["labels"]
    assert labels["conduit.dev/role"] == "graphql"
    assert "conduit.dev/database" not in labels
    # Headless, scaled and budgeted as a service.
    assert services["graphql"]["spec"]["clusterIP"] == "None"
    assert services["graphql"]["spec"]["ports"][0]["port"] == GRAPHQL_PORT
    assert services["graphql"]["spec"]["selector"] == {"app.kubernetes.io/name": "graphql"}
    assert autoscalers["graphql"]["spec"]["minReplicas"] == autoscalers["users"]["spec"]["minReplicas"]
    assert autoscalers["graphql"]["spec"]["maxReplicas"] == autoscalers["users"]["spec"]["maxReplicas"]
    assert budgets["graphql"]["spec"] == {"maxUnavailable": 1,
                                          "selector": {"matchLabels": {"app.kubernetes.io/name": "graphql"}}}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_open_graphql_to_the_gateway_and_to_what_it_calls(overlay: str) -> None:
    policies = by_kind(render(overlay), "NetworkPolicy")
    graphql_pods = {"matchLabels": {"conduit.dev/role": "graphql"}}
    gateway_rules = policies["gateway"]["spec"]["egress"]
    assert {"to": [{"podSelector": graphql_pods}], "ports": [{"protocol": "TCP", "port": GRAPHQL_PORT}]} \
        in gateway_rules
    spec = policies["graphql"]["spec"]
    assert spec["podSelector"] == graphql_pods
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["ingress"] == [{"from": [{"podSelector": {"matchLabels": {"conduit.dev/role": "gateway"}}}],
                                "ports": [{"protocol": "TCP", "port": GRAPHQL_PORT}]}]
    reached = {(rule["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"], rule["ports"][0]["port"])
               for rule in spec["egress"]}
    assert reached == {*((name, SERVICES[name]) for name in GRAPHQL_CALLS), ("redis", 6379)}
    # ... and those services accept graphql's calls (nothing else of theirs is opened to it).
    callee = policies["services-from-graphql"]["spec"]
    assert callee["podSelector"]["matchExpressions"] == [
        {"key": "app.kubernetes.io/name", "operator": "In", "values": list(GRAPHQL_CALLS)}]
    assert callee["ingress"] == [{"from": [{"podSelector": graphql_pods}], "ports": [
        {"protocol": "TCP", "port": SERVICES[name]} for name in GRAPHQL_CALLS]}]
    # No policy lets graphql reach PostgreSQL.
    for name, policy in policies.items():
        selector = policy["spec"]["podSelector"]
        if selector in (graphql_pods, {}):
            for rule in policy["spec"].get("egress", []):
                assert all(port["port"] != 5432 for port in rule.get("ports", [])), name
    if overlay == "prod":  # the managed Redis is an address block, opened to graphql beside the services
        managed = policies["managed-redis-graphql"]["spec"]
        assert managed["podSelector"] == graphql_pods
        assert managed["egress"] == policies["managed-redis"]["spec"]["egress"]


# Every call one pod of the mesh makes to another (who calls whom over gRPC or HTTP, from the code's
# channels: each service fetches users' JWKS and profiles; search reads articles; graphql reads four).
CALLS = {("gateway", name) for name in SERVICES} | {("gateway", "graphql")} \
    | {(name, "users") for name in SERVICES if name != "users"} | {("search", "articles")} \
    | {("graphql", name) for name in GRAPHQL_CALLS}


def selects(selector: Object, labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels, matchExpressions with In) selects a pod with `labels`."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In", expression
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def allows(policies: dict[str, Object], direction: str, pod: dict[str, str], peer: dict[str, str],
           port: int) -> bool:
    """Whether some policy selecting `pod` lets it talk to `peer` on `port` in `direction`."""
    side = "to" if direction == "egress" else "from"
    for policy in policies.values():
        spec = policy["spec"]
        if not selects(spec["podSelector"], pod):
            continue
        for rule in spec.get(direction, []):
            ports = [p["port"] for p in rule.get("ports", [])]
            peers = [p["podSelector"] for p in rule.get(side, []) if set(p) == {"podSelector"}]
            if (not ports or port in ports) and (side not in rule or any(selects(s, peer) for s in peers)):
                return True
    return False


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_call_the_mesh_makes_is_allowed_both_ways_and_no_other(overlay: str) -> None:
    """Pod to pod, the policies allow exactly the calls the code makes (egress of the caller and
    ingress of the callee), judged from the pods' real labels."""
    objects = render(overlay)
    labels = {name: deployment["spec"]["template"]["metadata"]["labels"]
              for name, deployment in by_kind(objects, "Deployment").items()}
    policies = by_kind(objects, "NetworkPolicy")
    ports = {**SERVICES, "graphql": GRAPHQL_PORT}
    callers = [name for name in labels if name in {*SERVICES, "graphql", "gateway"}]
    allowed = {(caller, callee) for caller in callers for callee, port in ports.items()
               if allows(policies, "egress", labels[caller], labels[callee], port)
               and allows(policies, "ingress", labels[callee], labels[caller], port)}
    assert CALLS - allowed == set(), "calls the code makes that the policies refuse"
    # The `services` policy opens users to every service pod, users' own among them: harmless, and
    # the only pair allowed beyond the calls made.
    assert allowed - CALLS == {("users", "users")}


def covered(peers: list[Object], address: str) -> bool:
    """Whether an address is in one of the policy's ipBlocks (and not in its exceptions)."""
    ip = ipaddress.ip_address(address)
    for peer in peers:
        block = peer["ipBlock"]
        network = ipaddress.ip_network(block["cidr"])
        if ip.version == network.version and ip in network \
                and not any(ip in ipaddress.ip_network(e) for e in block.get("except", [])):
            return True
    return False


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_webhooks_reach_public_https_and_nothing_private(overlay: str) -> None:
    """Webhook deliveries: the webhooks pods reach public addresses on 443 and nothing private (the
    addresses the service's SSRF guard refuses are refused here too)."""
    policies = by_kind(render(overlay), "NetworkPolicy")
    # No other policy opens a public address block (prod's managed Redis is a private one; the
    # CloudNativePG instances' object-storage rule is theirs alone, in the component).
    outward = [name for name, policy in policies.items() for rule in policy["spec"].get("egress", [])
               if covered([peer for peer in rule.get("to", []) if "ipBlock" in peer], "8.8.8.8")]
    assert outward == ["webhooks-deliveries"]
    spec = policies["webhooks-deliveries"]["spec"]
    assert spec["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "webhooks"}}
    [rule] = spec["egress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 443}]
    for public in ("93.184.216.34", "8.8.8.8", "2606:4700::1111"):
        assert covered(rule["to"], public), public
    for internal in ("10.0.0.1", "169.254.169.254", "127.0.0.1", "172.16.5.4", "192.168.1.20", "100.64.0.1",
                     "::1", "fe80::1", "fd00::1"):
        assert not covered(rule["to"], internal), internal


def test_gateway_config_map_routes_to_the_headless_services() -> None:
    objects = render("dev")
    config_map = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith(
        "conduit-gateway"))
    envoy = yaml.safe_load(config_map["data"]["envoy.yaml"])
    endpoints = {}
    for cluster in envoy["static_resources"]["clusters"]:
        for group in cluster["load_assignment"]["endpoints"]:
            for endpoint in group["lb_endpoints"]:
                address = endpoint["endpoint"]["address"]["socket_address"]
                endpoints[cluster["name"]] = (cluster["type"], address["address"], address["port_value"])
    for name, port in SERVICES.items():
        if name in endpoints:
            assert endpoints[name] == ("STRICT_DNS", name, port)
    assert {"users", "articles", "webhooks"} <= endpoints.keys()
    deployment = by_kind(objects, "Deployment")["gateway"]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["config"]["configMap"]["name"] == config_map["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gateway_config_map_routes_graphql_to_its_headless_service(overlay: str) -> None:
    """/graphql (and GraphiQL's files below it), WebSocket upgrades on, to the graphql Service's pods."""
    objects = render(overlay)
    config_map = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith(
        "conduit-gateway"))
    envoy = yaml.safe_load(config_map["data"]["envoy.yaml"])
    listener = next(item for item in envoy["static_resources"]["listeners"] if item["name"] == "conduit_tls")
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    routes = manager["route_config"]["virtual_hosts"][0]["routes"]
    graphql_routes = [route for route in routes if route["match"] in ({"path": "/graphql"}, {"prefix": "/graphql/"})]
    assert len(graphql_routes) == 2
    for route in graphql_routes:
        assert route["route"]["cluster"] == "graphql"
        assert route["route"]["upgrade_configs"] == [{"upgrade_type": "websocket", "enabled": True}]
    # Before the catch-all routes, so nothing else answers /graphql.
    assert routes.index(graphql_routes[0]) < routes.index(next(r for r in routes if r["match"] == {"prefix": "/"}))
    cluster = next(c for c in envoy["static_resources"]["clusters"] if c["name"] == "graphql")
    [endpoint] = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
    address = endpoint["endpoint"]["address"]["socket_address"]
    service = by_kind(objects, "Service")["graphql"]
    assert (cluster["type"], address["address"], address["port_value"]) == (
        "STRICT_DNS", service["metadata"]["name"], service["spec"]["ports"][0]["port"])
    assert cluster["health_checks"][0]["http_health_check"] == {"path": "/healthz"}
    config = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith(
        "conduit-config"))
    assert config["data"]["CONDUIT_GRAPHQL_TARGET"] == f"graphql:{GRAPHQL_PORT}"


def test_gateway_config_map_is_current() -> None:
    """gateway/envoy.yaml is what `make generate` renders from the descriptor set and config.env."""
    base = KUBERNETES / "base"
    subprocess.run([sys.executable, "-m", "conduit_server.deploy", str(base / "config.env"),
                    str(base / "gateway" / "envoy.yaml"), "--check"], check=True)


def test_postgres_is_cloudnative_pg() -> None:
    dev, prod = by_kind(render("dev"), "Cluster")["conduit-db"], by_kind(render("prod"), "Cluster")["conduit-db"]
    assert dev["spec"]["instances"] == 1
    assert prod["spec"]["instances"] == 3
    assert prod["spec"]["postgresql"]["synchronous"]["number"] >= 1
    assert prod["spec"]["backup"]["barmanObjectStore"]["destinationPath"].startswith("s3://")
    schedules = by_kind(render("prod"), "ScheduledBackup")
    assert [s["spec"]["cluster"]["name"] for s in schedules.values()] == ["conduit-db"]
    poolers = by_kind(render("prod"), "Pooler")
    assert poolers["conduit-db-pooler-rw"]["spec"]["pgbouncer"]["poolMode"] == "session"
    users = by_kind(render("prod"), "Deployment")["users"]["spec"]["template"]["spec"]["containers"][0]
    url = next(e["value"] for e in users["env"] if e["name"] == "CONDUIT_DATABASE_URL")
    assert "@conduit-db-pooler-rw:5432/" in url


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_secret_object_is_rendered(overlay: str) -> None:
    """Secrets are created in the cluster (or by operators), never kept in the repository."""
    assert [o["metadata"]["name"] for o in render(overlay) if o["kind"] == "Secret"] == []
