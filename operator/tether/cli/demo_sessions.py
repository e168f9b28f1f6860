"""The demo's persistent-sessions step (``tether demo``, after the hash rule's scale-out).

The same 1,000 browsers (each still sending its hash-rule cookie, so the DestinationRule picks
its first pod), now with Istio's persistent-session label on the Service: each keeps the
signed cookie the gateway sets. ``kubectl scale 3→5`` moves none of them (the hash rule moved
about half), and deleting one pod moves exactly that pod's sessions (each to one other pod,
with a new cookie); every other session stays where it was.
"""

from __future__ import annotations

from collections import Counter

LABEL = "istio.io/persistent-session"
COOKIE = "shop"


def _pods_table(demo, before: list[str], after: list[str]) -> None:
    pods = sorted(set(before) | set(after))
    moved = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    rows = [
        (p, before.count(p), after.count(p), sum(a == p for a, _ in moved),
         sum(b == p for _, b in moved))
        for p in pods
    ]  # fmt: skip
    demo._table(("pod", "before", "after", "moved away", "moved in"), rows)


def _browsers(n: int, cookies: list[str] | None = None):
    """n browsers with their own hash-rule cookie (the given ones, else fresh)."""
    import secrets

    from tether.cli.demo_http import SessionClient

    cookies = cookies or [f'sticky-session-key="{secrets.token_hex(8)}"' for _ in range(n)]
    return [SessionClient(COOKIE, other=c) for c in cookies[:n]]


def _describe(example: str) -> str:
    from tether.hashing.session import b64decode, parse_cookie

    f = parse_cookie(b64decode(example.split(";", 1)[0].split("=", 1)[1].strip('"')))
    return f"names {f.address}, signed with key {f.key_id}, valid until {f.valid_until} (Unix s)"


def persistent(demo, gw: tuple[str, int], cookies: list[str], hash_moved: float | None) -> None:
    """Label the Service, open the sessions, scale 3→5, then delete one pod."""
    from tether.cli.demo_http import session_cookie, visit

    lab, n = demo.lab, demo.sessions
    demo.step(f"Persistent sessions: {LABEL}={COOKIE} on the Service, {n} browsers")
    lab.kubectl("scale", "deployment/httpbin", "--replicas=3", "-n", "default")
    demo.wait(lambda: _settled(demo, 3), 120, "httpbin back at 3 pods")
    demo._kubectl("label", "service", "httpbin", "-n", "default", f"{LABEL}={COOKIE}")
    doc = demo.wait(lambda: (d := demo._table_doc()).session and d, 60, "the session block")
    s = doc.session
    demo.console.print(
        f"  table schemaVersion {doc.schema_version}: {s.kind} sessions {s.name!r}, "
        f"signing {s.signing}, drain {'on' if s.drain else 'off'}, strict {s.strict}"
    )

    def visit_all(clients):
        return visit(*gw, clients, answers=demo.answers)

    demo.wait(
        lambda: session_cookie(visit_all(_browsers(1))[0].set_cookies, COOKIE),
        60,
        "the gateway to issue session cookies",
    )
    clients = _browsers(n, cookies)
    replies = visit_all(clients)
    example = next(sc for sc in replies[0].set_cookies if sc.startswith(f"{COOKIE}="))
    demo.console.print(f"  Set-Cookie: {example}\n  (the value {_describe(example)})")
    demo.check(all(c.cookie for c in clients), f"all {n} browsers got a signed session cookie")
    before = [c.pods[-1] for c in clients]
    demo.console.print(f"  sessions per pod: {dict(Counter(before))}")
    demo.check(len(set(before)) == 3, "the DestinationRule's hash picked each session's pod")

    demo.step(f"{n} persistent sessions, then kubectl scale deployment httpbin --replicas 5")
    lab.kubectl("scale", "deployment/httpbin", "--replicas=5", "-n", "default")
    demo.wait(lambda: _settled(demo, 5), 120, "5 httpbin pods in the table")
    demo.wait(lambda: len({r.pod for r in visit_all(_browsers(100))}) == 5, 60,
              "new sessions on all 5 pods")  # fmt: skip
    visit_all(clients)
    after = [c.pods[-1] for c in clients]
    _pods_table(demo, before, after)
    moved = sum(a != b for a, b in zip(before, after, strict=True))
    hash_text = f" (the hash rule moved {hash_moved:.1%})" if hash_moved is not None else ""
    demo.console.print(f"  moved: {moved}/{n} = {moved / n:.1%}{hash_text}")
    demo.check(moved == 0, "scale 3→5 moved no persistent session")

    victim = Counter(after).most_common(1)[0][0]
    demo.step(f"kubectl delete pod {victim}")
    lab.kubectl("delete", "pod", victim, "-n", "default", "--wait=true")
    demo.wait(
        lambda: (d := demo._table_doc()) and victim not in {e.pod for e in d.endpoints}
        and sum(e.ready for e in d.endpoints) == 5,
        120,
        "the table without the deleted pod (and its replacement)",
    )  # fmt: skip
    replies = visit_all(clients)
    final = [c.pods[-1] for c in clients]
    _pods_table(demo, after, final)
    moved = [i for i, (a, b) in enumerate(zip(after, final, strict=True)) if a != b]
    had = [i for i, p in enumerate(after) if p == victim]
    reissued = sum(bool(session_cookie(replies[i].set_cookies, COOKIE)) for i in had)
    demo.console.print(
        f"  moved: {len(moved)}/{n}; the deleted pod had {len(had)} sessions; "
        f"re-issued cookies: {reissued}"
    )
    demo.check(moved == had, "deleting one pod moved exactly that pod's sessions")
    demo.check(
        reissued == len(had),
        "each moved session got a new cookie naming its new pod",
    )


def _settled(demo, n: int) -> bool:
    """The Deployment is at n Ready pods and the table lists exactly those, none terminating."""
    doc = demo._table_doc()
    return (
        demo._ready("default", "app=httpbin") == n
        and len(doc.endpoints) == n
        and sum(e.ready for e in doc.endpoints) == n
    )
