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
