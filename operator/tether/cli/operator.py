"""`tether operator`: run the operator (kopf) that publishes the routing tables."""

from __future__ import annotations

import argparse
import os
import sys

from tether.cli.flags import add_env_flag


def _add(p, flag: str, default, help: str, type=str) -> None:
    add_env_flag(p, "TETHER_", flag, default, help + " (default %(default)s)", type)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `operator` subcommand; every flag also reads a TETHER_* environment variable."""
    env = os.environ.get
    p = sub.add_parser(
        "operator",
        help="run the operator: DestinationRules + EndpointSlices -> table ConfigMaps",
        description="Watch DestinationRules, Services, EndpointSlices and Pods and publish one "
        "Envoy-identical table per service/port/subset into ConfigMaps.",
    )
    scope = p.add_mutually_exclusive_group()
    scope.add_argument(
        "-A",
        "--all-namespaces",
        action="store_true",
        default=True,
        help="watch every namespace (default)",
    )
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="watch only this namespace (repeatable; globs allowed)",
    )
    _add(p, "tables-namespace", "tether-system", "namespace of the table ConfigMaps")
    _add(p, "cluster-domain", "cluster.local", "DNS suffix of Service hosts")
    _add(p, "root-namespace", "istio-system", "mesh root namespace whose rules apply everywhere")
    p.add_argument(
        "--quiet-namespace",
        action="append",
        default=[n for n in env("TETHER_QUIET_NAMESPACES", "").split(",") if n],
        help="namespace whose Services get a table only through a DestinationRule "
        "(repeatable; kube-system, kube-public, kube-node-lease and the tables namespace "
        "always are)",
    )
    _add(p, "coalesce-ms", 100.0, "quiet time before a burst of events is reconciled", float)
    _add(p, "max-delay-ms", 1000.0, "upper bound on how long a burst may postpone a reconcile",
         float)  # fmt: skip
    _add(p, "metrics-port", 9090, "port of the Prometheus /metrics endpoint (0 = off)", int)
    _add(p, "bind-address", "0.0.0.0", "address of the metrics endpoint (a pod IP works)")
    _add(p, "liveness", "http://0.0.0.0:8080/healthz", "kopf liveness endpoint URL ('' = off)")
    peer = p.add_mutually_exclusive_group()
    peer.add_argument(
        "--standalone", action="store_true", help="no peering (single replica, tests)"
    )
    _add(peer, "peering", "", "kopf peering name; replicas with the same name elect one active")
    _add(p, "priority", "0", "peering priority: an integer, or 'random' for replicas of one "
         "Deployment; the highest runs, the others stand by")  # fmt: skip
    _add(p, "dr-version", "v1", "DestinationRule API version to watch (v1, v1beta1, v1alpha3)")
    _add(p, "resync-seconds", 300.0, "period of the full resync that repairs any table drifting "
         "from what the cluster implies", float)  # fmt: skip
    _add(p, "write-concurrency", 64, "table ConfigMap writes in flight at once", int)
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=run)


def _identity() -> str:
    """This replica's name in the peering object: the pod name when known, else host/pid."""
    import secrets
    import socket

    pod = os.environ.get("POD_NAME") or os.environ.get("POD_ID")
    base = pod or f"{socket.gethostname()}/{os.getpid()}"
    return f"{base}/{secrets.token_hex(3)}"


def _priority(value: str) -> int | None:
    if value == "random":
        import secrets

        return 1 + secrets.randbelow(1_000_000)
    try:
        return int(value)
    except ValueError:
        return None


def run(args: argparse.Namespace) -> int:
    """Build the runtime options and hand them to kopf as memo; blocks until it exits."""
    import logging

    import kopf

    from tether.handlers import wiring  # noqa: F401 — registers the handlers
    from tether.handlers.controller import Config
    from tether.handlers.runtime import Options
    from tether.k8s.tables import ensure_peering, load_credentials

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:  # kopf logs every handled event at INFO: far too chatty for pods
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    priority = _priority(args.priority)
    if priority is None:
        print(
            f"tether operator: --priority must be an integer or 'random', got {args.priority!r}",
            file=sys.stderr,
        )
        return 2
    load_credentials()
    peering = args.peering if args.peering and not args.standalone else None
    if peering and ensure_peering(peering):
        logging.getLogger("tether").info("created ClusterKopfPeering %s", peering)
    identity = _identity()
    options = Options(
        config=Config(
            tables_namespace=args.tables_namespace,
            domain=args.cluster_domain,
            root_namespace=args.root_namespace or None,
            dr_version=args.dr_version,
            quiet_namespaces=tuple(args.quiet_namespace),
            write_concurrency=max(1, args.write_concurrency),
        ),
        identity=identity,
        peering=peering,
        namespaces=tuple(args.namespace),
        quiet=args.coalesce_ms / 1000,
        max_delay=args.max_delay_ms / 1000,
        resync_seconds=max(1.0, args.resync_seconds),
    )
    memo = kopf.Memo(
        options=options, metrics_port=args.metrics_port, bind_address=args.bind_address
    )
    kopf.run(
        clusterwide=True,
        standalone=peering is None,
        priority=priority,
        peering_name=peering,
        identity=identity,
        liveness_endpoint=args.liveness or None,
        memo=memo,
    )
    return 0
