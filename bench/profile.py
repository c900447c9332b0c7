"""`make profile`: a flame graph of one service under the bench load (py-spy), so hot spots are
found, not guessed. Writes bench/results/profile-<service>.svg."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import threading
from pathlib import Path

from bench.load import run_wrk
from bench.run import RESULTS
from bench.seed import SeedSize, seed
from conduit_server.runtime.settings import SERVICES, Settings
from conduit_server.supervisor import Mesh

LOADS = {  # what to drive while recording each service
    "articles": ["/api/articles?limit=20&offset=0", "/api/articles?limit=20&offset=40", "/api/tags"],
    "users": ["/api/profiles/bench1", "/api/profiles/bench2"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("service", nargs="?", default="articles", choices=SERVICES)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--write", action="store_true", help="drive POST /api/articles instead of reads")
    parser.add_argument("--raw", action="store_true", help="collapsed stacks (.txt, one line per stack with "
                        "its samples) instead of the SVG, to rank hot spots by script")
    parser.add_argument("--state-dir", type=Path, default=Path(".state-profile"))
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if py_spy is None:
        raise SystemExit("py-spy is required: pip install py-spy (`make profile` installs it)")
    shutil.rmtree(args.state_dir, ignore_errors=True)
    settings = Settings(state_dir=args.state_dir, log_level="WARNING", registrations_per_ip_per_hour=1_000_000,
                        writes_per_user_per_minute=100_000_000)  # one user writes: lift its limit (0029)
    mesh = Mesh(settings, log_dir=args.state_dir / "logs")
    mesh.start()
    try:
        ca_file = str(args.state_dir.resolve() / "tls" / "ca.pem")
        size = SeedSize(users=100, articles=2000, favorites=500, comments=500)
        seeded = asyncio.run(seed(f"localhost:{settings.gateway_tls_port}", ca_file, mesh.env, size))
        out = RESULTS / f"profile-{args.service}{'-write' if args.write else ''}.{'txt' if args.raw else 'svg'}"
        RESULTS.mkdir(exist_ok=True)
        base = f"https://localhost:{settings.gateway_tls_port}"
        shape: dict[str, object] = {"paths": LOADS.get(args.service, ["/api/ping"])}
        if args.write:
            shape = {"paths": ["/api/articles"], "method": "POST", "token": seeded.tokens[0],
                     "body": '{"article":{"title":"Profile {n}","description":"d","body":"b","tagList":["x"]}}'}
        load = threading.Thread(target=run_wrk, args=(base,), kwargs={**shape, "seconds": args.seconds + 2})
        load.start()
        subprocess.run([py_spy, "record", "--pid", str(mesh.processes[args.service].pid), "--duration",  # noqa: S603
                        str(int(args.seconds)), "--output", str(out), "--nonblocking",
                        "--format", "raw" if args.raw else "flamegraph"], check=True)
        load.join()
        print(f"{'collapsed stacks' if args.raw else 'flame graph'}: {out}")
    finally:
        mesh.stop()


if __name__ == "__main__":
    main()
