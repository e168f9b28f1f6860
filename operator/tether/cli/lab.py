"""`tether lab`: a real Kubernetes control plane with real pods, in a private network namespace.

tether lab build                    build the pinned binaries into the cache (if missing)
tether lab up [--name N] [--nodes K]
tether lab exec [--name N] -- CMD   run CMD inside the lab's namespace with KUBECONFIG set
tether lab status [--name N]
tether lab logs [--name N] [-n NS] POD [-c CONTAINER]
tether lab down [--name N]
tether lab whoami                   (in a pod) print who the pod's credentials say it is
"""

from __future__ import annotations

import argparse
import json
import os
import sys

DEFAULT_NAME = os.environ.get("TETHER_LAB_NAME", "dev")


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _build(args: argparse.Namespace) -> int:
    from tether.lab import build

    try:
        path = build.ensure_binaries(_say, force=args.force)
    except build.BuildError as e:
        _say(f"tether lab build: {e}")
        return 1
    stamp = build.read_stamp(path) or {}
    print(path)
    for name, size in stamp.get("sizes", {}).items():
        _say(f"  {name:<24} {size / 1e6:6.1f} MB")
    return 0


def _up(args: argparse.Namespace) -> int:
    from tether.lab import Lab, LabError, build
    from tether.lab.netns import NetnsError

    lab = Lab(args.name, nodes=args.nodes, here=args.here or None)
    try:
        lab.up(timeout=args.timeout, progress=_say)
    except (LabError, NetnsError, build.BuildError) as e:
        _say(f"tether lab up: {e}")
        return 1
    took = lab.meta().get("up_seconds", 0)
    kubectl = f"env KUBECONFIG={lab.kubeconfig} {lab.bin_dir}/kubectl get pods -A"
    if lab.here:
        where = "this shell's network namespace (rootless: use the lab from this shell only)"
        direct = kubectl
    else:
        where, direct = (
            f"network namespace {lab.netns}",
            f"sudo ip netns exec {lab.netns} {kubectl}",
        )
    print(
        f"""lab {lab.name!r} is up ({took:.1f} s): Kubernetes {build.K8S_VERSION}, \
{lab.nodes} node(s), {where}

  tether lab exec --name {lab.name} -- kubectl get nodes
  tether lab exec --name {lab.name} -- bash          # a shell inside the lab
  {direct}

  kubeconfig: {lab.kubeconfig}   (API at https://127.0.0.1:6443 inside the namespace)
  logs:       {lab.paths.logs}/   (pods: {lab.paths.pod_logs}/<ns>_<pod>_<uid>/<container>/<n>.log)
  stop:       tether lab down --name {lab.name}"""
    )
    return 0


def _exec(args: argparse.Namespace) -> int:
    from tether.lab import Lab, netns

    lab = Lab(args.name)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        _say("tether lab exec: give a command after --")
        return 2
    if not lab.is_up():
        _say(f"tether lab exec: lab {lab.name!r} is not up (tether lab up --name {lab.name})")
        return 1
    env = lab.env()
    if not lab.here:
        netns.setns(netns.path_of(lab.netns))  # single-threaded process: all of it moves
    try:
        os.execvpe(cmd[0], cmd, env)
    except FileNotFoundError:
        _say(f"tether lab exec: {cmd[0]}: command not found")
        return 127


def _status(args: argparse.Namespace) -> int:
    from tether.lab import Lab

    status = Lab(args.name).status()
    print(json.dumps(status, indent=2))
    return 0 if status["up"] else 3


def _down(args: argparse.Namespace) -> int:
    from tether.lab import Lab

    removed = Lab(args.name).down()
    if "addresses" in removed:
        gone = f"{len(removed['addresses'])} address(es) removed from lo"
    else:
        gone = f"namespace {removed['netns'] or '(none)'} deleted"
    _say(
        f"lab {args.name!r} down: {len(removed['processes'])} process(es) stopped, {gone}, "
        f"state {removed['state_dir'] or '(none)'} removed"
    )
    return 0


def _logs(args: argparse.Namespace) -> int:
    from tether.lab import Lab

    lab = Lab(args.name)
    dirs = sorted(lab.paths.pod_logs.glob(f"{args.namespace}_{args.pod}_*"))
    if not dirs:
        _say(f"no logs for pod {args.namespace}/{args.pod} under {lab.paths.pod_logs}")
        return 1
    containers = sorted(p for p in dirs[-1].iterdir() if p.is_dir())
    chosen = [c for c in containers if args.container in (None, c.name)]
    if not chosen:
        _say(f"no container {args.container!r} in pod {args.pod}")
        return 1
    runs = sorted(chosen[0].glob("*.log"), key=lambda p: int(p.stem))
    sys.stdout.write(runs[-1].read_text(errors="replace"))
    return 0


def _whoami(args: argparse.Namespace) -> int:
    from tether.lab.whoami import whoami

    print(json.dumps(whoami(tuple(args.list or ("pods", "secrets"))), indent=2))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `tether lab` and its subcommands."""
    parser = subparsers.add_parser("lab", help="a real Kubernetes control plane with real pods")
    sub = parser.add_subparsers(dest="lab_command", metavar="ACTION", required=True)

    def named(name: str, func, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_)
        p.add_argument("--name", default=DEFAULT_NAME, help="lab name (default: %(default)s)")
        p.set_defaults(func=func)
        return p

    b = sub.add_parser("build", help="build the pinned control-plane binaries (if missing)")
    b.add_argument("--force", action="store_true", help="rebuild even if the cache is valid")
    b.set_defaults(func=_build)
    up = named("up", _up, "start a lab (returns with its daemons running)")
    up.add_argument("--nodes", type=int, default=1, help="nodes to register (default: 1)")
    up.add_argument("--timeout", type=float, default=120.0, help="seconds to become ready")
    up.add_argument(
        "--here",
        action="store_true",
        help="rootless: run in this shell's own network namespace (start it with unshare -Urn)",
    )
    ex = named("exec", _exec, "run a command inside the lab's namespace with KUBECONFIG set")
    ex.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    named("status", _status, "show the lab's state as JSON (exit 3 when it is not up)")
    named("down", _down, "stop the lab and remove everything it created")
    lg = named("logs", _logs, "print a pod container's current log")
    lg.add_argument("pod")
    lg.add_argument("-n", "--namespace", default="default")
    lg.add_argument("-c", "--container", default=None)
    w = sub.add_parser("whoami", help="(inside a lab pod) show the identity of $KUBECONFIG")
    w.add_argument(
        "--list",
        action="append",
        choices=("pods", "secrets", "configmaps", "services"),
        help="try to list this resource in the pod's namespace (repeatable)",
    )
    w.set_defaults(func=_whoami)
