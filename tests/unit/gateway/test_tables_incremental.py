"""Incremental table application: every change is O(changed) and answers exactly as a router
rebuilt from scratch (the rules of the gateway before it was incremental) would."""

from __future__ import annotations

import gc
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from tether.gateway.routes import Route, Router, build_route
from tether.gateway.tables.store import TableStore

from .docs import cookie_key, make_document

HOME = "home"
SERVICES = [(ns, name) for ns in ("home", "a", "b") for name in ("web", "api")]
PORTS = (80, 81)
HOSTS = [
    f"{name}{suffix}{port}".encode()
    for _, name in SERVICES
    for suffix in ("", ".home", ".a", ".b", ".a.svc", ".b.svc.cluster.local", ".home.svc")
    for port in ("", ":80", ":81", ":9999")
] + [b"elsewhere", b"203.0.113.9:8080", None]


def _doc(ns="default", name="httpbin", port=8000, ip="10.0.0.1", **kw):
    return make_document([(ip, 8080, "p0"), ("10.0.0.2", 8080, "p1")], name=name,
                         namespace=ns, port=port, algorithm=None, **kw)  # fmt: skip


def _route(ns, name, port, ip="10.0.0.1", subset=None) -> Route:
    doc = _doc(ns, name, port, ip)
    if subset:
        doc = doc.model_copy(update={"subset": subset, "checksum": None}).sealed()
    return build_route(doc)


def _oracle(routes: list[Route], host: bytes | None, default_service=None) -> Route | None:
    """The Host rules, written out plainly over the whole route set (the old full rebuild)."""
    services: dict[tuple[str, str], dict[int, Route]] = {}
    for r in routes:
        if not r.doc.subset:
            svc = r.doc.service
            services.setdefault((svc.namespace, svc.name), {})[svc.port] = r

    def port_choice(ports, port):
        if not ports:
            return None
        return ports[port] if port is not None and port in ports else ports[min(ports)]

    if default_service is not None:
        default = port_choice(services.get(default_service[:2]), default_service[2])
    else:
        default = port_choice(next(iter(services.values())), None) if len(services) == 1 else None
    if host is None:
        return default
    text = host.decode().lower().rstrip(".")
    name, _, port_text = text.partition(":")
    port = int(port_text) if port_text.isdigit() else None
    for (ns, svc), ports in services.items():
        if name in (f"{svc}.{ns}", f"{svc}.{ns}.svc", f"{svc}.{ns}.svc.cluster.local"):
            return port_choice(ports, port)
    spaces = [ns for ns, svc in services if svc == name]
    if HOME in spaces:
        return port_choice(services[(HOME, name)], port)
    if len(spaces) == 1:
        return port_choice(services[(spaces[0], name)], port)
    return default


_step = st.tuples(
    st.sampled_from(SERVICES), st.sampled_from(PORTS), st.sampled_from([None, "v1"]),
    st.sampled_from(["10.0.0.1", "10.0.0.7", None]),  # None: the table is deleted
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(steps=st.lists(st.lists(_step, min_size=1, max_size=4), max_size=12),
       default=st.sampled_from([None, ("a", "web", None), ("home", "api", 81)]))  # fmt: skip
def test_every_chain_of_updates_answers_like_a_full_rebuild(steps, default):
    router = Router([], home_namespace=HOME, default_service=default)
    live: dict[str, Route] = {}
    for batch in steps:
        changes = {}
        for (ns, name), port, subset, ip in batch:
            route = None if ip is None else _route(ns, name, port, ip, subset)
            key = f"{ns}/{name}:{port}" + (f"/{subset}" if subset else "")
            changes[key] = route
            if route is None:
                live.pop(key, None)
            else:
                live[key] = route
        before = router
        router = router.updated(changes)
        assert before.lookup(b"web.a") is _oracle_of(before, b"web.a", default)  # unchanged
        for host in HOSTS:
            assert router.lookup(host) is _oracle(list(live.values()), host, default), host
        assert dict(router.by_key) == live
        addresses = {t.authority for r in live.values() for t in r.targets}
        assert set(router.authorities) == addresses


def _oracle_of(router: Router, host, default):
    return _oracle(router.routes, host, default)


def test_added_removed_and_gone_name_only_what_changed():
    a, b = _route("a", "web", 80, "10.0.0.1"), _route("b", "web", 80, "10.0.0.1")
    r1 = Router([a, b])
    assert set(r1.added) == {a, b} and r1.removed == () and r1.gone == ()
    a2 = _route("a", "web", 80, "10.0.0.9")
    r2 = r1.updated({a.key: a2})
    assert r2.added == (a2,) and r2.removed == (a,)
    assert r2.gone == ()  # 10.0.0.1 is still b's, 10.0.0.2 still both
    r3 = r2.updated({b.key: None})
    assert r3.removed == (b,) and r3.gone == ("10.0.0.1:8080",)
    assert r1.lookup(b"web.a") is a and r2.lookup(b"web.a") is a2  # older Routers stay as were


def _store():
    swaps, errors = [], []
    store = TableStore(swaps.append, lambda n, why: errors.append((n, why)), home_namespace=HOME)
    return store, swaps, errors


def test_add_update_rename_delete_through_the_store():
    store, swaps, _ = _store()
    store.apply("cm-web", _doc("a", "web", 80).dumps())
    store.publish()
    first = store.router.lookup(b"web.a")
    assert first.targets[0].host == "10.0.0.1"
    store.apply("cm-web", _doc("a", "web", 80, ip="10.0.0.5").dumps())  # update
    store.publish()
    assert store.router.lookup(b"web.a").targets[0].host == "10.0.0.5"
    store.apply("cm-web", _doc("a", "shop", 80, ip="10.0.0.5").dumps())  # rename: other key
    store.publish()
    assert sorted(store.router.by_key) == ["a/shop:80"]
    assert store.router.lookup(b"web.a").key == "a/shop:80"  # now the default: the only one
    store.remove("cm-web")
    store.publish()
    assert len(store.router) == 0 and store.router.lookup(b"shop.a") is None
    assert len(swaps) == 4


def test_same_key_from_two_entries_the_first_name_wins_and_hands_over():
    store, _, _ = _store()
    store.apply("tt-b", _doc("a", "web", 80, ip="10.0.0.2").dumps())
    store.apply("tt-a", _doc("a", "web", 80, ip="10.0.0.1").dumps())
    store.publish()
    assert store.router.lookup(b"web.a").targets[0].host == "10.0.0.1"
    store.apply("tt-b", _doc("a", "web", 80, ip="10.0.0.3").dumps())  # the loser changes
    assert store.publish() is None  # nothing a request can see changed
    assert store.router.lookup(b"web.a").targets[0].host == "10.0.0.1"
    store.remove("tt-a")
    store.publish()
    assert store.router.lookup(b"web.a").targets[0].host == "10.0.0.3"


def test_a_bad_document_keeps_that_entrys_last_good_table_only():
    store, _, errors = _store()
    store.apply("tt-web", _doc("a", "web", 80).dumps())
    store.apply("tt-api", _doc("a", "api", 80).dumps())
    store.publish()
    good = store.router.lookup(b"web.a")
    tampered = json.loads(_doc("a", "web", 80, ip="10.0.0.9").dumps())
    tampered["endpoints"][0]["address"] = "10.6.6.6"
    assert not store.apply("tt-web", json.dumps(tampered))
    store.apply("tt-api", _doc("a", "api", 80, ip="10.0.0.4").dumps())
    store.publish()
    assert store.router.lookup(b"web.a") is good
    assert store.router.lookup(b"api.a").targets[0].host == "10.0.0.4"
    assert [n for n, _ in errors] == ["tt-web"] and "checksum" in errors[0][1]


def test_bare_names_follow_namespaces_as_they_come_and_go():
    store, _, _ = _store()

    def step(apply=(), remove=()):
        for ns in apply:
            store.apply(f"{ns}-web", _doc(ns, "web", 80, ip=f"10.0.1.{len(ns)}").dumps())
        for ns in remove:
            store.remove(f"{ns}-web")
        store.publish()
        route = store.router.lookup(b"web")
        return route.doc.service.namespace if route is not None else None

    assert step(apply=["a"]) == "a"  # the only one
    assert step(apply=["bb"]) is None  # two other namespaces: not guessed
    assert step(apply=[HOME]) == HOME  # the home namespace's wins
    assert step(remove=[HOME]) is None
    assert step(remove=["a"]) == "bb"  # unique again


def test_default_route_follows_the_published_services():
    store, _, _ = _store()
    store.apply("one", _doc("a", "web", 81).dumps())
    store.apply("one-80", _doc("a", "web", 80).dumps())
    store.publish()
    assert store.router.lookup(b"localhost:8080").key == "a/web:80"  # only service, lowest port
    store.apply("two", _doc("b", "api", 80).dumps())
    store.publish()
    assert store.router.lookup(b"localhost:8080") is None  # two services, no default
    store.remove("one")
    store.remove("one-80")
    store.publish()
    assert store.router.lookup(None).key == "b/api:80"
    subset = make_document([("10.0.0.1", 80, "p")], algorithm=None, namespace="c", name="x")
    subset = subset.model_copy(update={"subset": "v1", "checksum": None}).sealed()
    store.apply("sub", subset.dumps())
    store.publish()
    assert store.router.lookup(None).key == "b/api:80"  # a subset table is not a Service


def _ketama(doc):
    from tether.reconcile.tables import build

    policy = doc.policy.model_copy(update={"algorithm": "ketama"})
    table = build(policy, doc.endpoints)
    return doc.model_copy(update={"policy": policy, "table": table, "checksum": None}).sealed()


def test_replaced_tables_are_freed_without_the_cycle_collector():
    """Tables hold no reference cycles: a replaced table is freed at once by reference counting.
    The gateway freezes what is alive after its first load (``gc.freeze``); frozen tables would
    leak when replaced if they were cyclic."""
    from tether.models.table import HashKey

    eps = [(f"10.0.0.{i}", 8080, f"p{i}", i != 2) for i in range(5)]
    header = HashKey(kind="header", name="x-user")
    docs = [
        make_document(eps, name="maglev", hash_key=cookie_key(ttl=60)),
        make_document(eps, name="ring", algorithm="ring-hash", hash_key=header),
        _ketama(make_document(eps, name="ketama", algorithm="ring-hash", hash_key=header)),
        make_document(eps, name="bounded", hash_key=header, balance=150),
        make_document(eps, name="unshipped", hash_key=header, ship=False),
        make_document(eps, name="rr", algorithm=None),
    ]
    gc.collect()
    gc.disable()
    try:
        store, _, _ = _store()
        for i, doc in enumerate(docs):
            assert store.apply(f"tt-{i}", doc.dumps())
        store.publish()
        assert len(store.router) == len(docs)
        for i in range(len(docs)):
            store.remove(f"tt-{i}")
        store.publish()
        del store
        assert gc.collect() == 0
    finally:
        gc.enable()
