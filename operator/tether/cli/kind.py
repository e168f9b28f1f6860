"""`tether kind`: a real kind cluster (real kubelet, images, CoreDNS, kube-proxy) for tether.

tether kind build [--mode offline|pull]   build every image (offline: from Go modules, Debian
                                          packages and PyPI; cached, a warm build does nothing)
tether kind up [--name N] [--port P]      start dockerd if needed, create the cluster, load
                                          tether:dev and go-httpbin; the gateway answers at
                                          http://127.0.0.1:P once deploy/kind is applied
tether kind load [IMAGE...]               rebuild tether:dev (docker cache) and load images
tether kind exec [--name N] -- CMD        run CMD with KUBECONFIG set to the cluster
tether kind status [--name N]             JSON; exit 3 when the cluster is not up
tether kind down [--name N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

DEFAULT_NAME = os.environ.get("TETHER_KIND_NAME", "tether")


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def lab_bins():
    """The lab's control-plane binaries (built once, shared with the lab)."""
    from tether.lab import build

    return build.ensure_binaries(_say)


def cluster(name: str):
    """A KindCluster handle using the lab's kubectl."""
    from tether.kind.cluster import KindCluster

    return KindCluster(name, kubectl=lab_bins() / "kubectl")


def prepare(mode: str, tether: bool = True) -> tuple[str, dict]:
    """Start dockerd if needed and build (or reuse) the images; return (node image, report)."""
    from tether.kind import build, cluster, engine, images

    eng = engine.ensure_docker(say=_say)
    if eng.workaround:
        _say(
            "machine: CAP_SYS_RESOURCE missing from the capability bounding set -> "
            "runc wrapper + restrict_oom_score_adj"
        )
    from tether.lab.build import k8s_ldflags

    report = build.build_all(lab_bins(), k8s_ldflags(), _say, tether=tether, node=mode == "offline")
    image = images.NODE_IMAGE if mode == "offline" else cluster.pull_node_image(_say)
    return image, report


def _build(args: argparse.Namespace) -> int:
    from tether.kind import images

    started = time.monotonic()
    image, report = prepare(args.mode)
    _say(
        f"{args.mode} mode: node image {image}; built or reused in "
        f"{time.monotonic() - started:.0f} s"
    )
    for ref in report["images"]:
        _say(f"  {ref:<50} {images.image_size(ref) / 1e6:7.1f} MB")
    return 0


def _up(args: argparse.Namespace) -> int:
    from tether.kind import versions as v

    started = time.monotonic()
    image, _ = prepare(args.mode)
    c = cluster(args.name)
    meta = c.up(image, args.mode, host_port=args.port, say=_say)
    t_cluster = time.monotonic()
    _say(f"loading {v.TETHER_IMAGE} and {v.HTTPBIN_IMAGE} into the node")
    c.load(v.TETHER_IMAGE, v.HTTPBIN_IMAGE)
    took = time.monotonic() - started
    print(
        f"""kind cluster {c.name!r} is up ({meta["mode"]} mode, node image {meta["image"]}): \
{took:.0f} s in all, cluster {meta.get("up_seconds", 0):.0f} s, image load \
{time.monotonic() - t_cluster:.0f} s

  tether kind exec --name {c.name} -- kubectl apply -f crds/        # KUBECONFIG={c.kubeconfig}
  tether kind exec --name {c.name} -- kubectl apply -k deploy/kind   # operator + gateway
  tether kind exec --name {c.name} -- kubectl apply -f deploy/examples/httpbin.yaml
  curl http://127.0.0.1:{meta["host_port"]}/status/418            # the gateway, from this host
  curl -k https://127.0.0.1:{meta.get("tls_port", "?")}/get  # TLS (Secret tether-gateway-tls)

  stop: tether kind down --name {c.name}"""
    )
    return 0


def _load(args: argparse.Namespace) -> int:
    from tether.kind import engine, images
    from tether.kind import versions as v

    engine.ensure_docker(say=_say)
    refs = args.images or [v.TETHER_IMAGE, v.HTTPBIN_IMAGE]
    if v.TETHER_IMAGE in refs:
        images.tether_image(images.image_inputs(images.PYTHON_IMAGE) or "", _say)
    cluster(args.name).load(*refs)
    _say(f"loaded {', '.join(refs)} into {args.name}")
    return 0


def _exec(args: argparse.Namespace) -> int:
    c = cluster(args.name)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        _say("tether kind exec: give a command after --")
        return 2
    try:
        os.execvpe(cmd[0], cmd, c.env())
    except FileNotFoundError:
        _say(f"tether kind exec: {cmd[0]}: command not found")
        return 127


def _status(args: argparse.Namespace) -> int:
    st = cluster(args.name).status()
    print(json.dumps(st, indent=2))
    return 0 if st["up"] else 3


def _down(args: argparse.Namespace) -> int:
    existed = cluster(args.name).down()
    _say(f"kind cluster {args.name!r} " + ("deleted" if existed else "was not running"))
    return 0


def run(args: argparse.Namespace) -> int:
    """Dispatch to the action; kind, engine and build errors become one line and exit 1."""
    from tether.kind.cluster import KindError
    from tether.kind.engine import EngineError
    from tether.kind.gobuild import GoBuildError
    from tether.lab.build import BuildError

    try:
        return args.action(args)
    except (KindError, EngineError, GoBuildError, BuildError) as e:
        _say(f"tether kind {args.kind_command}: {e}")
        return 1


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `tether kind` and its subcommands."""
    parser = subparsers.add_parser("kind", help="a real kind cluster for tether (offline-capable)")
    sub = parser.add_subparsers(dest="kind_command", metavar="ACTION", required=True)

    def action(name: str, func, help_: str, mode: bool = False) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_)
        p.add_argument("--name", default=DEFAULT_NAME, help="cluster name (default %(default)s)")
        if mode:
            p.add_argument(
                "--mode",
                choices=("offline", "pull"),
                default="offline",
                help="offline: build every image here (default); pull: one "
                "`docker pull` of kindest/node",
            )
        p.set_defaults(func=run, action=func)
        return p

    action("build", _build, "build every image the cluster needs (cached)", mode=True)
    up = action("up", _up, "create the cluster and load tether's images", mode=True)
    up.add_argument(
        "--port",
        type=int,
        default=None,
        help="host port of the gateway on 127.0.0.1 (default: a free one)",
    )
    ld = action("load", _load, "rebuild tether:dev and load images into the cluster")
    ld.add_argument("images", nargs="*", help="images to load (default: tether:dev, go-httpbin)")
    ex = action("exec", _exec, "run a command with KUBECONFIG set to the cluster")
    ex.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    action("status", _status, "the cluster's state as JSON (exit 3 when not up)")
    action("down", _down, "delete the cluster")
