"""The `tether` command line.

Each subcommand lives in its own module under `tether.cli` and exposes
`register(subparsers)`, which adds its parser and sets `func` to a callable taking the parsed
namespace and returning an exit code. Modules import their heavy dependencies (kopf, the
Kubernetes client, uvloop) inside `func`, so `tether table` stays fast to start.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Order is the order shown in `tether --help`.
COMMANDS: tuple[str, ...] = ("table", "operator", "gateway", "lab", "kind", "demo", "watch", "plan")


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every subcommand in COMMANDS registered."""
    parser = argparse.ArgumentParser(
        prog="tether",
        description="Sticky sessions for Kubernetes services, Envoy-identical, without a mesh.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"tether.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse argv and run one subcommand; return its exit code (2 for usage errors)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
