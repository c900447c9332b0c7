"""The TypeScript client (clients/typescript) against a live mesh: its Node tests (node --test)
and its example page in headless Chromium, both through Envoy's gRPC-Web filter on the TLS port.

The mesh is started here (the e2e harness) with the page's origin allowed by CORS; the Node tests
get its URL and its local CA (NODE_EXTRA_CA_CERTS). Each run's JUnit report is parsed: every
expected test must have run and passed, none skipped. Node, npm, Chromium and certutil are
required on CI (`make ts-tools` installs them); elsewhere their absence skips with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.e2e.conftest import RunningMesh, conduit_run, mesh_ports

# The first test also pays for the build (tsc, esbuild) and the mesh start-up: more than the
# default 300 s can pass on a loaded machine before its Node run even begins.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
CLIENT = Path(__file__).resolve().parents[2] / "clients" / "typescript"
NODE_TESTS = {
    "lists articles, including one it has just created as a registered user",
    "the token provider is asked on every call; without a token the call is UNAUTHENTICATED",
    "an invalid article is INVALID_ARGUMENT with its field violations decoded",
    "a missing article is NOT_FOUND with the service's ErrorInfo reason",
    "a watch receives an article created after it is live",
    "a watch whose connection is cut resumes from its last event: no gap, no duplicate",
    "a watch that goes silent without closing reconnects within the heartbeat gap and misses nothing",
    "an HTTP/2 connection that goes silent is replaced by keepalive PINGs and its watch resumes",
    # watch.test.ts: the reconnect decisions on scripted streams.
    "reconnects after UNAVAILABLE, a clean end and a batch, from the last id seen (heartbeats too)",
    "OUT_OF_RANGE ends the watch with a ConduitError: the caller must refetch",
    "the server's RetryInfo delay is waited before the reconnect",
    "aborting the caller's signal ends the iteration without an error",
    # exports.test.ts
    "the public exports of ./node and ./web are pinned",
}
BROWSER_TESTS = {
    "the page lists articles through gRPC-Web over TLS, shows an error's code and reason, and watches new ones",
    "without the local CA in its trust store the browser refuses the gateway",
}


def require(binary: str, how: str) -> str:
    """The path of `binary`; a skip outside CI when it is missing, a failure on CI."""
    found = shutil.which(binary)
    if found is None:
        message = f"{binary} is not installed ({how})"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


@dataclass
class TsMesh:
    mesh: RunningMesh
    page_port: int


@pytest.fixture(scope="module")
def built() -> Path:
    """The client, its tests and the page compiled (tsc) and bundled (esbuild) from this checkout."""
    require("node", "Node.js 20+")
    npm = require("npm", "comes with Node.js")
    if not (CLIENT / "node_modules" / ".installed").exists():
        if os.environ.get("CI") == "true":
            pytest.fail("clients/typescript has no node_modules: `make test` runs `make ts-install` first")
        pytest.skip("clients/typescript has no node_modules: run `make ts-install`")
    subprocess.run([npm, "run", "--silent", "build"], cwd=CLIENT, check=True, timeout=600)
    return CLIENT / "dist" / "test"


@pytest.fixture(scope="module")
def ts_mesh(tmp_path_factory: pytest.TempPathFactory, built: Path) -> Iterator[TsMesh]:
    page_port = free_port()
    with pytest.MonkeyPatch.context() as patch:
        # The page's origin may call the API; every test registers its own users; 1 s heartbeats
        # let the silent-watch test use a short gap without reconnecting healthy streams.
        patch.setenv("CONDUIT_CORS_ORIGINS", f'["http://127.0.0.1:{page_port}"]')
        patch.setenv("CONDUIT_REGISTRATIONS_PER_IP_PER_HOUR", "1000")
        patch.setenv("CONDUIT_REALTIME__HEARTBEAT_SECONDS", "1")
        # A longer start-up bound than the shared mesh's: seen over 120 s on a loaded 2-core machine.
        with conduit_run(tmp_path_factory.mktemp("ts-mesh"), mesh_ports(), timeout_seconds=300) as mesh:
            yield TsMesh(mesh, page_port)


def run_node_tests(setup: TsMesh, files: list[Path], report: Path, **extra: str) -> dict[str, str]:
    """Runs `node --test` on `files`; asserts its exit code; returns each test's outcome from its
    JUnit report ("passed", "failed" or "skipped")."""
    env = {**os.environ, "CONDUIT_URL": setup.mesh.https, "NODE_EXTRA_CA_CERTS": str(setup.mesh.ca),
           "CONDUIT_CA": str(setup.mesh.ca), "CONDUIT_PAGE_PORT": str(setup.page_port), **extra}
    completed = subprocess.run(
        [require("node", "Node.js 20+"), "--test", "--test-concurrency=1",
         "--test-reporter=spec", "--test-reporter-destination=stdout",
         "--test-reporter=junit", f"--test-reporter-destination={report}", *map(str, files)],
        cwd=CLIENT, env=env, capture_output=True, text=True, timeout=280, check=False)
    assert completed.returncode == 0, f"node --test failed:\n{completed.stdout}\n{completed.stderr}"
    outcomes: dict[str, str] = {}
    for case in ET.parse(report).getroot().iter("testcase"):  # noqa: S314 - our own run's report
        kinds = {child.tag for child in case}
        outcome = "failed" if kinds & {"failure", "error"} else "skipped" if "skipped" in kinds else "passed"
        outcomes[case.attrib["name"]] = outcome
    return outcomes


def test_node_client_lists_creates_and_watches_through_grpc_web(ts_mesh: TsMesh, built: Path,
                                                                 tmp_path: Path) -> None:
    files = [built / "exports.test.js", built / "watch.test.js", built / "live.test.js"]
    outcomes = run_node_tests(ts_mesh, files, tmp_path / "node.xml")
    assert outcomes == dict.fromkeys(NODE_TESTS, "passed")


def test_browser_page_lists_articles_through_grpc_web_over_tls(ts_mesh: TsMesh, built: Path,
                                                                tmp_path: Path) -> None:
    chromium = require("chromium", "make browser-tools")
    require("certutil", "make nss-tools")
    outcomes = run_node_tests(ts_mesh, [built / "browser.test.js"], tmp_path / "browser.xml", CHROMIUM=chromium)
    assert outcomes == dict.fromkeys(BROWSER_TESTS, "passed")
