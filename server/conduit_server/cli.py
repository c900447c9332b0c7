"""`conduit`: the one operator command ."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from conduit_server.runtime.logs import configure_logging
from conduit_server.runtime.settings import SERVICES, Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="conduit", description="Operate Conduit Mesh.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="start PostgreSQL, Redis, every service and Envoy; Ctrl-C stops all")
    commands.add_parser("observe", help="`run` with tracing and metrics on, beside Prometheus and Jaeger")
    serve = commands.add_parser("serve", help="run one service in the foreground")
    serve.add_argument("service", choices=SERVICES)
    commands.add_parser("gateway", help="run Envoy in the foreground, routing to each service's target")
    commands.add_parser("migrate", help="apply every service's schema migrations, then exit")
    # Each service adds its own operator commands (users: admins, keys, accounts; articles: import;
    # realtime: history).
    from conduit_server import backups
    from conduit_server.articles import cli as articles_cli
    from conduit_server.realtime import cli as realtime_cli
    from conduit_server.users import cli as users_cli

    users_cli.register(commands)
    articles_cli.register(commands)
    realtime_cli.register(commands)
    backups.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    settings = Settings()
    if args.command == "serve":
        from conduit_server import process

        process.main(args.service, settings)
    elif args.command == "run":
        from conduit_server import supervisor

        configure_logging("mesh", settings.log_level)
        supervisor.run(settings)
    elif args.command in ("gateway", "migrate"):
        from conduit_server import deploy

        configure_logging(args.command, settings.log_level)
        (deploy.run_gateway if args.command == "gateway" else deploy.run_migrate)(settings)
    elif args.command == "observe":
        from conduit_server import observe

        configure_logging("mesh", settings.log_level)
        observe.run(settings)
    else:
        configure_logging("cli", settings.log_level)
        args.handler(args, settings)
