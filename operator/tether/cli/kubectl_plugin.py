"""`kubectl tether …`: the kubectl plugin entry point (the installed ``kubectl-tether`` script).

kubectl runs any ``kubectl-<name>`` executable on PATH for ``kubectl <name>`` and passes the
remaining arguments unchanged; it does not pass its own global flags, so the plugin reads
kubectl's conventions itself: ``--kubeconfig``, ``--context``, ``-n/--namespace`` (before or
after the subcommand) and ``$KUBECONFIG``. ``tether watch`` and ``tether plan`` are the same
commands (registered in ``tether.cli.COMMANDS``).
"""

from __future__ import annotations

import argparse
import importlib
import sys

PLUGIN_COMMANDS: tuple[str, ...] = ("watch", "plan")
TABLES_NAMESPACE = "tether-system"


def add_kube_flags(p: argparse.ArgumentParser, *, top: bool = False) -> None:
    """kubectl's connection flags; under a subcommand they only override when given."""
    default = None if top else argparse.SUPPRESS
    p.add_argument("--kubeconfig", default=default, help="kubeconfig file (else $KUBECONFIG)")
    p.add_argument("--context", default=default, help="kubeconfig context (else the current)")
    p.add_argument(
        "-n", "--namespace", default=default, help="the Service's namespace (else the context's)"
    )
    p.add_argument(
        "--tables-namespace",
        default=default,
        help=f"where the operator publishes its tables ({TABLES_NAMESPACE})",
    )


def split_target(text: str) -> tuple[str, str | None]:
    """``SERVICE[:PORT]`` → (service, port or None); PORT is a number or a port name."""
    name, _, port = text.partition(":")
    if not name:
        raise ValueError(f"no Service name in {text!r}")
    return name, port or None


def cluster_of(args: argparse.Namespace):
    """Connect as kubectl would for these flags (tether.k8s.kubeconfig.connect)."""
    from tether.k8s.kubeconfig import connect

    return connect(
        getattr(args, "kubeconfig", None),
        getattr(args, "context", None),
        getattr(args, "namespace", None),
    )


def tables_namespace(args: argparse.Namespace) -> str:
    """The namespace of the table ConfigMaps."""
    return getattr(args, "tables_namespace", None) or TABLES_NAMESPACE


class UsageError(ValueError):
    """Bad input on the command line, or no cluster configured: exit status 2."""


def prepare(args: argparse.Namespace):
    """(cluster, service, port) for a command's SERVICE[:PORT], --png and kube flags.

    Raises UsageError with the reason (bad target, no matplotlib, no kubeconfig).
    """
    from kubernetes.config import ConfigException

    try:
        name, port = split_target(args.service)
        if getattr(args, "png", None):
            from tether.cli.picture import require

            require()
        return cluster_of(args), name, port
    except (ValueError, ConfigException, ImportError) as exc:
        raise UsageError(str(exc)) from None


def current(cluster, args: argparse.Namespace, name: str, port: str | None):
    """The Service's table now, as the watch's first update (a snapshot), or None."""
    import time
    from datetime import UTC, datetime

    from tether.cli.watch_state import Tracker
    from tether.k8s.service_view import list_tables
    from tether.k8s.watch import Event

    items = list_tables(cluster, tables_namespace(args), cluster.namespace, name)
    ev = Event("tables", "SYNC", None, tuple(items), time.monotonic(), datetime.now(UTC))
    updates = Tracker(port, getattr(args, "subset", None)).feed(ev)
    return updates[0] if updates else None


def no_table(cluster, args: argparse.Namespace, name: str) -> str:
    """Why there is no table to show: the Service is missing, or nothing published it."""
    from tether.k8s.service_view import service_exists

    ns = cluster.namespace
    if not service_exists(cluster, ns, name):
        return f"Service {ns}/{name} not found"
    return (
        f"no table for Service {ns}/{name} in {tables_namespace(args)} "
        "(is the tether operator running?)"
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``kubectl tether`` parser: kube flags, then the plugin's subcommands."""
    parser = argparse.ArgumentParser(
        prog="kubectl tether",
        description="Watch and predict how tether's consistent-hash tables reassign keys.",
    )
    add_kube_flags(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in PLUGIN_COMMANDS:
        importlib.import_module(f"tether.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``kubectl-tether``; returns the subcommand's exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `kubectl tether watch -o json | head -1`
        sys.stderr.close()
        return 0
