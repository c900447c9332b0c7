"""Operator commands of the users service (first admin, signing keys, service accounts)."""

from __future__ import annotations

import argparse
from typing import Any


def register(commands: Any) -> None:
    """Add this service's subcommands; each sets `handler(args, settings)` with set_defaults."""
    del commands  # the users issue adds its commands here


__all__ = ["argparse", "register"]
