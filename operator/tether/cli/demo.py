"""`tether demo` (`make demo`, `make kind-demo`): the seed walkthrough, end to end.

On the lab (default) or on a real kind cluster (`--cluster kind`: real images, kubelet,
CoreDNS and kube-proxy; the gateway is reached from the host at http://127.0.0.1:<port>).

1. start the cluster; deploy httpbin ×3, the operator and the gateway exactly from deploy/;
2. 30 requests to /status/418 without a DestinationRule: spread over the 3 pods;
3. apply the seed DestinationRule verbatim; a browser-like client sends /status/333 keeping its
   cookie: every request reaches one pod, and the ``sticky-session-key`` Set-Cookie is shown;
4. 1,000 client sessions, then ``kubectl scale --replicas 5``: which sessions moved, per pod,
   and the moved fraction against Envoy's table (the DestinationRule status) and 1/(n+1);
5. persistent sessions (``demo_sessions``): back to 3 pods, Istio's persistent-session label
   on the Service, the same 1,000 browsers keep signed cookies: scale 3→5 moves none of them,
   deleting one pod moves exactly that pod's sessions;
6. clean up. Exit code 0 only if every step behaved as described.
"""

from __future__ import annotations

import argparse
import secrets
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "deploy" / "examples"


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `demo` subcommand."""
    p = sub.add_parser("demo", help="run the seed walkthrough end to end on the lab or kind")
    p.add_argument(
        "--cluster",
        choices=("lab", "kind"),
        default="lab",
        help="lab (default: seconds, no Docker) or kind (real images)",
    )
    p.add_argument("--name", default="demo", help="lab or kind cluster name (default %(default)s)")
    p.add_argument("--keep", action="store_true", help="leave the cluster running afterwards")
    p.add_argument("--sessions", type=int, default=1000, help="client sessions for step 4")
    p.set_defaults(func=run)


class Demo:
    """The walkthrough's steps on one cluster (a `tether.lab.Lab` or a kind cluster)."""

    def __init__(self, lab, console, sessions: int) -> None:
        from tether.cli.demo_http import Answers

        self.lab, self.console, self.sessions = lab, console, sessions
        self.answers = Answers(lab)
        self.failures: list[str] = []

    def check(self, ok: bool, what: str) -> bool:
        """Print a ✔/✘ line; a failed check makes the demo exit non-zero."""
        mark = "[green]✔[/green]" if ok else "[red]✘[/red]"
        self.console.print(f"  {mark} {what}")
        if not ok:
            self.failures.append(what)
        return ok

    def step(self, title: str) -> None:
        """Print a step heading."""
        self.console.rule(f"[bold]{title}")

    def wait(self, predicate, timeout: float, what: str):
        """Poll predicate with a spinner until truthy; TimeoutError naming `what` after timeout."""
        from tether.lab.testing import wait_until

        with self.console.status(f"waiting for {what}"):
            return wait_until(predicate, timeout=timeout, interval=0.2, what=what)

    # -- steps --------------------------------------------------------------------------

    def deploy(self) -> tuple[str, int]:
        """Apply the CRD, deploy/ and httpbin ×3; gateway's (pod IP, port) when all are ready."""
        lab = self.lab
        self.step("Deploy httpbin ×3, the operator and the gateway from deploy/")
        crd = str(ROOT / "crds" / "destinationrule.yaml")
        self._kubectl("apply", "-f", crd)
        self.wait(self._crd_established, 60, "the DestinationRule CRD")
        self._kubectl("apply", "-k", str(ROOT / lab.deploy_dir))
        self._kubectl("apply", "-n", "default", "-f", str(EXAMPLES / "httpbin.yaml"))
        self.wait(lambda: self._ready("default", "app=httpbin") == 3, 120, "3 httpbin pods Ready")
        self.wait(
            lambda: self._ready("tether-system", "app.kubernetes.io/name=tether-operator"),
            120,
            "the operator",
        )
        self.wait(
            lambda: self._ready("tether-system", "app.kubernetes.io/name=tether-gateway"),
            120,
            "the gateway (Ready after its first table load)",
        )
        if lab.backend == "kind":
            gw = ("127.0.0.1", lab.host_port)
            self.console.print(f"  gateway at http://{gw[0]}:{gw[1]} (from this host)")
            return gw
        pod = lab.kubectl_json(
            "pods", "-n", "tether-system", "-l", "app.kubernetes.io/name=tether-gateway"
        )["items"][0]
        gw = pod["status"]["podIP"]
        self.console.print(f"  gateway at http://{gw}:8080 (pod {pod['metadata']['name']})")
        return gw, 8080

    def get(self, gw: tuple[str, int], path: str, n: int = 1):
        """`n` GETs of `path` through the gateway, each with the pod that answered."""
        from tether.cli.demo_http import request

        return self.answers.resolve([request(*gw, path) for _ in range(n)])

    def routes(self, gw: tuple[str, int], cookies: list[str]) -> list[str]:
        """The pod each session cookie lands on."""
        from tether.cli.demo_http import route_sessions

        return route_sessions(*gw, cookies, answers=self.answers)

    def _table_doc(self):
        """The published table of default/httpbin:8000, verified."""
        from tether.models import table as t

        name = t.configmap_name("default", "httpbin", 8000)
        cm = self.lab.kubectl_json("configmap", name, "-n", "tether-system")
        return t.loads(cm["data"][t.DATA_KEY])

    def _kubectl(self, *cmd: str) -> None:
        self.console.print(f"  $ kubectl {' '.join(cmd)}", style="dim")
        self.lab.kubectl(*cmd)

    def _crd_established(self) -> bool:
        crd = self.lab.kubectl_json("crd", "destinationrules.networking.istio.io")
        conds = (crd.get("status") or {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conds)

    def _ready(self, ns: str, selector: str) -> int:
        pods = self.lab.kubectl_json("pods", "-n", ns, "-l", selector)["items"]
        return sum(
            1
            for p in pods
            if not p["metadata"].get("deletionTimestamp")
            and any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in p["status"].get("conditions", [])
            )
        )

    def spread(self, gw: tuple[str, int]) -> None:
        """Step 2 of the seed: 30 requests without a rule must reach every pod, with no cookie."""
        self.step("Without a DestinationRule: 30 × GET /status/418")
        self.wait(
            lambda: len({r.pod for r in self.get(gw, "/get", 6)}) == 3,
            60,
            "the gateway to route to all 3 pods",
        )
        replies = self.get(gw, "/status/418", 30)
        counts = Counter(r.pod for r in replies)
        self._table(("pod", "requests"), counts.most_common())
        self.check(all(r.status == 418 for r in replies), "every reply is 418 I'm a teapot")
        self.check(len(counts) == 3, f"spread over all 3 pods ({dict(counts)})")
        self.check(not any(r.set_cookies for r in replies), "no cookie without a rule")

    def sticky(self, gw: tuple[str, int]) -> None:
        """Apply the seed rule verbatim; a cookie-keeping browser must stay on one pod."""
        from tether.cli.demo_http import Browser, request

        self.step("Apply the seed DestinationRule verbatim")
        self.console.print((EXAMPLES / "seed-destinationrule.yaml").read_text(), style="cyan")
        self.lab.kubectl("apply", "-f", str(EXAMPLES / "seed-destinationrule.yaml"))
        self.wait(
            lambda: request(*gw, "/get").set_cookies,
            60,
            "the gateway to load the consistent-hash table",
        )
        self.step("A browser: 20 × GET /status/333, keeping its cookie")
        browser = Browser(*gw)
        replies = self.answers.resolve([browser.get("/status/333") for _ in range(20)])
        browser.close()
        counts = Counter(r.pod for r in replies)
        self.console.print(f"  Set-Cookie: {browser.first_set_cookie}")
        self._table(("pod", "requests"), counts.most_common())
        sc = browser.first_set_cookie or ""
        value = sc.split(";")[0].partition("=")[2]
        self.check(
            sc.startswith('sticky-session-key="') and len(value) == 18,
            'Set-Cookie is sticky-session-key="<16 hex digits>"',
        )
        self.check(
            sc.endswith("; HttpOnly") and "Max-Age" not in sc,
            "ttl 0s: a session cookie (no Max-Age), HttpOnly, as Envoy sets it",
        )
        self.check(
            len(counts) == 1 and all(r.status == 333 for r in replies),
            f"all 20 requests reached one pod ({next(iter(counts))})",
        )
        self.check(
            sum(bool(r.set_cookies) for r in replies) == 1,
            "the cookie is set once, on the first reply only",
        )

    def rescale(self, gw: tuple[str, int]) -> tuple[list[str], float]:
        """Scale 3→5 and check the moved sessions against what the two tables predict; the
        sessions' cookies and the fraction that moved."""
        from tether.reconcile.moved import moved_fraction

        n = self.sessions
        self.step(f"{n} client sessions, then kubectl scale deployment httpbin --replicas 5")
        cookies = [f'sticky-session-key="{secrets.token_hex(8)}"' for _ in range(n)]
        before = self.routes(gw, cookies)
        table_before = self._table_doc()
        self.lab.kubectl("scale", "deployment/httpbin", "--replicas=5", "-n", "default")
        self.wait(lambda: self._ready("default", "app=httpbin") == 5, 120, "5 httpbin pods Ready")
        self.wait(
            lambda: len(set(self.routes(gw, cookies[:200]))) == 5,
            60,
            "the gateway to load the 5-pod table",
        )
        after = self.routes(gw, cookies)
        table_after = self.wait(
            lambda: (d := self._table_doc()) and sum(e.ready for e in d.endpoints) == 5 and d,
            30,
            "the 5-endpoint table",
        )
        moved = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
        pods = sorted(set(before) | set(after))
        rows = [
            (
                p,
                before.count(p),
                after.count(p),
                sum(1 for a, _ in moved if a == p),
                sum(1 for _, b in moved if b == p),
            )
            for p in pods
        ]
        self._table(("pod", "before", "after", "moved away", "moved in"), rows)
        frac = len(moved) / n
        # the key-space fraction between the two tables the clients saw (3 → 5 endpoints; the
        # rule's status.keysMoved covers only the last rebuild, which may have been 4 → 5)
        expected = moved_fraction(table_before, table_after)
        optimum = 2 / 5
        self.console.print(
            f"  moved: {len(moved)}/{n} = {frac:.1%}   Envoy's tables 3→5 (key space): "
            f"{expected:.1%}   optimum for 3→5 (2/5): {optimum:.1%}   "
            f"ratio to optimum: {frac / optimum:.2f}"
        )
        self.check(
            abs(frac - expected) <= 0.2 * expected,
            "moved fraction within 1.2× of what the two tables predict",
        )
        self.check(
            all(b in pods for _, b in moved) and len(set(after)) == 5,
            "sessions spread over all 5 pods",
        )
        return cookies, frac

    def _table(self, columns: tuple[str, ...], rows) -> None:
        from rich.table import Table

        table = Table(*columns)
        for row in rows:
            table.add_row(*(str(c) for c in row))
        self.console.print(table)

    def clean(self) -> None:
        """Delete what the demo created (the lab itself is removed by the caller)."""
        self.step("Clean up")
        self.lab.kubectl(
            "delete",
            "destinationrule",
            "httpbin",
            "-n",
            "default",
            "--ignore-not-found",
            check=False,
        )
        self.lab.kubectl(
            "delete",
            "-n",
            "default",
            "-f",
            str(EXAMPLES / "httpbin.yaml"),
            "--ignore-not-found",
            check=False,
        )


def _start_lab(args, console):
    """Start (or reuse) the lab and join its namespace; return (lab, reused)."""
    from tether.lab import Lab

    lab = Lab(args.name)
    reused = lab.is_up()
    if not reused:
        lab.up(progress=lambda msg: console.print(f"  [lab] {msg}", style="dim"))
    lab.enter()  # this process now sends its requests from inside the lab
    return lab, reused


def _start_kind(args, console):
    """Build (or reuse) the images, start (or reuse) the kind cluster, load tether's images."""
    from tether.cli.kind import cluster, prepare
    from tether.kind import versions as v

    image, _ = prepare("offline")
    kc = cluster(args.name)
    reused = kc.status()["up"]
    if not reused:
        meta = kc.up(image, "offline", say=lambda m: console.print(f"  [kind] {m}", style="dim"))
        console.print(
            f"  [kind] cluster up in {meta['up_seconds']:.0f} s (offline mode, node image {image})",
            style="dim",
        )
    kc.load(v.TETHER_IMAGE, v.HTTPBIN_IMAGE)
    return kc, reused


def run(args: argparse.Namespace) -> int:
    """Run every step; 0 only if each check passed."""
    from rich.console import Console

    from tether.cli.demo_sessions import persistent

    console = Console()
    started = time.monotonic()
    console.rule(f"[bold]tether demo on {args.cluster}: sticky sessions without a mesh")
    cluster, reused = (_start_kind if args.cluster == "kind" else _start_lab)(args, console)
    try:
        demo = Demo(cluster, console, args.sessions)
        gw = demo.deploy()
        demo.spread(gw)
        demo.sticky(gw)
        cookies, moved = demo.rescale(gw)
        persistent(demo, gw, cookies, moved)
        demo.clean()
    except Exception as exc:  # a failed step ends the demo with its reason
        console.print(f"[red]demo failed: {exc}")
        return 1
    finally:
        if not (args.keep or reused):
            cluster.down()
    took = time.monotonic() - started
    if demo.failures:
        console.print(f"[red]{len(demo.failures)} check(s) failed in {took:.0f} s:")
        for f in demo.failures:
            console.print(f"  - {f}")
        return 1
    console.print(f"[green]every step behaved ({took:.0f} s)")
    return 0
