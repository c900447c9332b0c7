"""A genuine Elasticsearch 7.10.2 node in one JVM (CodeLibs' cluster runner from Maven Central).

`fetch()` resolves the runner and the modules it needs with Maven into a cache
(`~/.cache/conduit/search-node`, or $CONDUIT_SEARCH_NODE_CACHE) once;
`SearchNode` starts one node on a free loopback port of the runner's range
(9201-9299) and stops it. `python -m search_node` (`make search-node`) starts
one and prints its URL until Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

RUNNER_VERSION = "7.10.2.0"
POM = Path(__file__).with_name("pom.xml")
MAIN_CLASS = "org.codelibs.elasticsearch.runner.ElasticsearchClusterRunner"
_HTTP_PORT = re.compile(r"HTTP Port:\s+(\d+)")


class NodeUnavailable(RuntimeError):
    """Java or Maven is missing, or the node did not start: the reason says which."""


def cache_dir() -> Path:
    configured = os.environ.get("CONDUIT_SEARCH_NODE_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "conduit" / "search-node"


def fetch(cache: Path | None = None) -> Path:
    """The directory of the runner's jars, downloaded with Maven on first use."""
    cache = cache or cache_dir()
    lib = cache / f"lib-{RUNNER_VERSION}"
    if (lib / ".complete").exists():
        return lib
    maven = shutil.which("mvn")
    if maven is None:
        raise NodeUnavailable("Maven (mvn) is not installed: apt-get install maven")
    lib.mkdir(parents=True, exist_ok=True)
    subprocess.run([maven, "-q", "-B", f"-Dmaven.repo.local={cache / 'm2'}", "-f", str(POM),  # noqa: S603
                    "dependency:copy-dependencies", f"-DoutputDirectory={lib}"], check=True)
    (lib / ".complete").touch()
    return lib


class SearchNode:
    """One node; `start()` blocks until it answers HTTP, `stop()` ends the JVM."""

    def __init__(self, data_dir: Path | None = None, *, heap: str = "512m") -> None:
        self._own_dir = data_dir is None
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="conduit-search-node-"))
        self.heap = heap
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, timeout_seconds: float = 240.0) -> str:
        java = shutil.which("java")
        if java is None:
            raise NodeUnavailable("no JDK (java) on PATH")
        lib = fetch()
        base = self.data_dir / "cluster"
        shutil.rmtree(base, ignore_errors=True)
        log_path = self.data_dir / "node.log"
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(  # noqa: S603 - the JDK's java with our own arguments
                [java, f"-Xms{self.heap}", f"-Xmx{self.heap}", "-cp", f"{lib}/*", MAIN_CLASS,
                 "-basePath", str(base), "-numOfNode", "1", "-clusterName", f"conduit-{os.getpid()}"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise NodeUnavailable(f"the node exited with {self.process.returncode}; see {log_path}")
            found = _HTTP_PORT.search(log_path.read_text(errors="replace"))
            if found and _answers(f"http://127.0.0.1:{found.group(1)}"):
                self.url = f"http://127.0.0.1:{found.group(1)}"
                return self.url
            time.sleep(0.5)
        self.stop()
        raise NodeUnavailable(f"the node did not answer within {timeout_seconds:.0f}s; see {log_path}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def _answers(url: str) -> bool:
    with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 - loopback
        return bool(answer.status == 200)
    return False


def main() -> None:
    started = time.monotonic()
    node = SearchNode(Path(".state") / "search-node")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        url = node.start()
        print(f"Elasticsearch 7.10.2 at {url} (ready in {time.monotonic() - started:.0f}s)\n"
              f"  use it: CONDUIT_ELASTICSEARCH_URL={url} conduit run\nPress Ctrl-C to stop.", flush=True)
        while node.process is not None and node.process.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        node.stop()
