"""`pip install ./clients/python` into a fresh virtualenv gives a working, typed SDK without the server."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

DISTRIBUTION = Path(__file__).resolve().parents[2] / "clients" / "python"

# Run inside the fresh venv: a real round trip through an in-process server, sync and async.
SMOKE = textwrap.dedent("""
    import asyncio, importlib.util, pathlib
    import grpc
    from conduit.articles.v1 import articles_pb2, articles_pb2_grpc
    from conduit.client import AsyncConduit, Conduit, NotFound, RetryPolicy
    from conduit.client.testing import InProcessServer

    assert importlib.util.find_spec("conduit_server") is None, "the server must not be installed"
    package = pathlib.Path(__import__("conduit.client").client.__file__).parent
    assert (package / "py.typed").is_file() and (package.parent / "py.typed").is_file()

    class Tags(articles_pb2_grpc.TagsServiceServicer):
        def ListTags(self, request, context):
            if dict(context.invocation_metadata()).get("authorization") != "Bearer t":
                context.abort(grpc.StatusCode.NOT_FOUND, "no such tags")
            return articles_pb2.ListTagsResponse(tags=["grpc"])

    async def main(target):
        async with await AsyncConduit.connect(target, tls=False, token="t") as conduit:
            assert await conduit.tags.list() == ["grpc"]

    with InProcessServer().add(articles_pb2_grpc.add_TagsServiceServicer_to_server, Tags()) as server:
        with Conduit.connect(server.target, tls=False, token="t") as conduit:
            assert conduit.tags.list() == ["grpc"]
        with Conduit.connect(server.target, tls=False, retry=RetryPolicy(max_attempts=1)) as conduit:
            try:
                conduit.tags.list()
            except NotFound:
                pass
            else:
                raise AssertionError("expected NotFound")
        asyncio.run(main(server.target))
    print("sdk ok")
""")

USER_CODE = textwrap.dedent("""
    from conduit.client import Conduit

    with Conduit.connect("localhost:8443") as conduit:
        article = conduit.articles.get("slug")
        reveal_type(article)
        title: int = article.title
""")


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("sdk-venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    # With dependencies from the package index, as an SDK user would.
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    str(DISTRIBUTION)], check=True, timeout=600)
    return python


def test_the_sdk_installs_alone_and_imports_without_the_server(fresh_venv: Path) -> None:
    subprocess.run([str(fresh_venv), "-c", "from conduit.client import Conduit"], check=True)
    result = subprocess.run([str(fresh_venv), "-c", SMOKE], check=True, capture_output=True, text=True,
                            timeout=120)
    assert result.stdout.strip() == "sdk ok"


def test_the_installed_sdk_carries_its_types_to_user_code(fresh_venv: Path, tmp_path: Path) -> None:
    mypy = shutil.which("mypy", path=str(Path(sys.executable).parent))
    if mypy is None:
        pytest.skip("mypy is not installed next to the test interpreter")
    (tmp_path / "user.py").write_text(USER_CODE)
    # check=False: the user code has a deliberate type error, so mypy exits 1.
    result = subprocess.run([mypy, "--strict", "--no-incremental", "--python-executable", str(fresh_venv),
                             "user.py"], check=False, cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    assert 'Revealed type is "conduit.articles.v1.articles_pb2.Article"' in result.stdout, result.stdout
    assert 'Incompatible types in assignment (expression has type "str", variable has type "int")' \
        in result.stdout, result.stdout
