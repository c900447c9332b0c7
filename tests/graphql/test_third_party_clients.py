"""GraphQL clients nobody here wrote: the graphql-ws npm client in Node subscribing over wss:// through Envoy,
and GraphiQL (served by the graphql service from local files) running a query in headless Chromium.

Both come from `make graphql-clients` (npm ci of clients/graphql) and `make browser-tools` (Debian's
chromium); `make test` installs them first. Outside CI a missing tool skips with the command to run;
in CI it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import uuid
from pathlib import Path
from queue import Empty, Queue
from typing import Any

import pytest

from .conftest import GraphqlClient, GraphqlMesh

pytestmark = pytest.mark.e2e
SCRIPTS = Path(__file__).resolve().parents[2] / "clients" / "graphql"
CLIENTS = Path(os.environ.get("CONDUIT_GRAPHQL_CLIENTS_DIR", Path.home() / ".cache" / "conduit" / "graphql-clients"))
CHROMIUM = os.environ.get("CONDUIT_CHROMIUM", "/usr/bin/chromium")
WAIT_SECONDS = 60


def _require(ready: bool, what: str) -> None:
    if not ready:
        if os.environ.get("CI"):
            pytest.fail(f"{what} is missing in CI")
        pytest.skip(f"{what} is not installed")


def _node() -> str:
    node = shutil.which("node")
    _require(node is not None, "node")
    _require((CLIENTS / "node_modules" / "graphql-ws").is_dir(), "the npm clients (make graphql-clients)")
    assert node is not None
    return node


def _environment(graphql_mesh: GraphqlMesh) -> dict[str, str]:
    return {**os.environ, "NODE_PATH": str(CLIENTS / "node_modules"),
            "NODE_EXTRA_CA_CERTS": str(graphql_mesh.mesh.ca)}


def _lines(process: subprocess.Popen[str]) -> Queue[str]:
    found: Queue[str] = Queue()

    def pump() -> None:
        for line in process.stdout or ():
            found.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return found


def _result(lines: Queue[str], process: subprocess.Popen[str]) -> dict[str, Any]:
    try:
        line = lines.get(timeout=WAIT_SECONDS)
    except Empty:
        process.kill()
        raise AssertionError(f"no result from node: {process.stderr.read() if process.stderr else ''}") from None
    result: dict[str, Any] = json.loads(line)
    return result


def test_graphql_ws_in_node_subscribes_over_wss_through_envoy(gql: GraphqlClient, graphql_mesh: GraphqlMesh) -> None:
    node = _node()
    _, token = gql.register("nodews")
    slug = gql.run("mutation { createArticle(article: {title: \"Node watched\", description: \"d\", body: \"b\"}) "
                   "{ slug } }", token=token)["createArticle"]["slug"]
    query = ("subscription($slug: String!) { articleActivity(slug: $slug) "
             "{ eventId type comment { body author { username } } } }")
    process = subprocess.Popen([node, str(SCRIPTS / "subscribe.cjs"), graphql_mesh.ws_url, query,
                                json.dumps({"slug": slug}), f"Token {token}"],
                               env={**_environment(graphql_mesh), "CONDUIT_RESULTS": "2"}, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        lines = _lines(process)
        joined = _result(lines, process)
        assert joined["data"]["articleActivity"]["type"] == "HEARTBEAT"
        body = f"from node {uuid.uuid4().hex[:6]}"
        gql.run("mutation($s: String!, $b: String!) { addComment(slug: $s, comment: {body: $b}) { id } }",
                {"s": slug, "b": body}, token=token)
        event = _result(lines, process)["data"]["articleActivity"]
        assert event["type"] == "COMMENT_ADDED"
        assert event["comment"]["body"] == body
        assert process.wait(WAIT_SECONDS) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_graphiql_loads_from_local_files_in_headless_chromium_and_runs_a_query(
        gql: GraphqlClient, graphql_mesh: GraphqlMesh) -> None:
    node = _node()
    _require(Path(CHROMIUM).exists(), "chromium (make browser-tools)")
    page = gql.http.get(graphql_mesh.url, headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "/graphql/assets/graphiql.min.js" in page.text
    _, token = gql.register("browser")
    tag = f"chromium{uuid.uuid4().hex[:6]}"
    gql.run("mutation($t: String!) { createArticle(article: {title: \"Seen in Chromium\", description: \"d\", "
            "body: \"b\", tagList: [$t]}) { slug } }", {"t": tag}, token=token)
    query = f'{{ articles(tag: "{tag}") {{ totalCount nodes {{ title }} }} }}'
    done = subprocess.run([node, str(SCRIPTS / "graphiql.cjs"), graphql_mesh.url, query],
                          env={**_environment(graphql_mesh), "CONDUIT_CHROMIUM": CHROMIUM}, text=True,
                          capture_output=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout.strip().splitlines()[-1])
    assert shown["result"]["data"]["articles"] == {"totalCount": 1, "nodes": [{"title": "Seen in Chromium"}]}
    assert shown["offLoopback"] == []
