"""The planner: what tables a user gets for a Service, and what happens when things change."""

import json

import pytest

from tether.hashing import Host, Maglev, RingHash, RingHashConfig, xxh64
from tether.models import table as t
from tether.reconcile.plan import plan_service

from .cluster_fakes import pods, rule, service, slice_

SVC = service()


def _only(plan):
    assert len(plan.tables) == 1
    return next(iter(plan.tables.values()))


def test_service_without_rule_is_round_robin_over_ready_pods():
    plan = plan_service(SVC, [slice_(pods(3))], {}, [], {})
    out = _only(plan)
    assert out.doc.policy.type == "simple" and out.doc.policy.simple == "ROUND_ROBIN"
    assert [e.pod for e in out.doc.endpoints] == ["httpbin-0", "httpbin-1", "httpbin-2"]
    assert out.doc.source is None and out.doc.table is None
    assert out.name == t.configmap_name("default", "httpbin", 8000)
    assert t.loads(out.text) == out.doc  # what is written is what the gateway will read


def test_seed_rule_gives_envoy_ring_over_target_ports():
    plan = plan_service(SVC, [slice_(pods(3))], {}, [rule("seed.yaml", uid="u1")], {})
    doc = _only(plan).doc
    assert doc.policy.algorithm == "ring-hash" and doc.policy.min_ring_size == 1024
    assert doc.policy.hash_key.name == "sticky-session-key" and doc.policy.hash_key.ttl_seconds == 0
    assert doc.source.name == "httpbin" and doc.source.uid == "u1"
    keys = [e.hash_key for e in doc.endpoints]
    assert keys == ["10.244.0.2:8080", "10.244.0.3:8080", "10.244.0.4:8080"]
    hashes, idx = t.decode_ring(doc.table, 3)
    ring = RingHash.build([Host(k) for k in keys], RingHashConfig(min_ring_size=1024))
    assert list(hashes) == list(ring.hashes) and list(idx) == list(ring.indices)
    assert len(hashes) == 1026  # Envoy: 3 hosts, min 1024 -> scale 1026
    assert plan.rules["default/httpbin"].ready


def test_endpoint_order_in_slices_does_not_change_the_document():
    a = plan_service(SVC, [slice_(pods(5))], {}, [rule("seed.yaml")], {})
    b = plan_service(SVC, [slice_(list(reversed(pods(5))))], {}, [rule("seed.yaml")], {})
    assert _only(a).text == _only(b).text


def test_unchanged_inputs_are_not_a_change():
    first = plan_service(SVC, [slice_(pods(3))], {}, [rule("seed.yaml")], {})
    prev = {n: o.doc for n, o in first.tables.items()}
    again = plan_service(SVC, [slice_(pods(3))], {}, [rule("seed.yaml")], prev)
    assert not _only(again).changed and _only(again).moved is None


def test_scale_up_reports_moved_fraction_measured_on_keys():
    r = rule("maglev-cookie.yaml")
    svc = service(name=r.rule.spec.host.split(".")[0], ns=r.rule.namespace)
    before = plan_service(svc, [slice_(pods(3), name=svc.name, ns=svc.namespace)], {}, [r], {})
    prev = {n: o.doc for n, o in before.tables.items()}
    after = plan_service(svc, [slice_(pods(4), name=svc.name, ns=svc.namespace)], {}, [r], prev)
    out = _only(after)
    assert out.changed and out.doc.policy.algorithm == "maglev"
    old_m = Maglev.from_table(t.decode_maglev(_only(before).doc.table, 3), 3)
    new_m = Maglev.from_table(t.decode_maglev(out.doc.table, 4), 4)
    sample = [xxh64(f"client-{i}") for i in range(20000)]
    keys_old = [e.hash_key for e in _only(before).doc.endpoints]
    keys_new = [e.hash_key for e in out.doc.endpoints]
    moved = sum(keys_old[old_m.choose(h)] != keys_new[new_m.choose(h)] for h in sample) / 20000
    assert out.moved == pytest.approx(moved, abs=0.01)
    assert 0.2 < out.moved < 0.3  # 1/(n+1) = 25 % for Maglev at this size
    assert "3→4 endpoints" in out.summary() and "% of keys moved" in out.summary()


def test_not_ready_and_terminating_endpoints_are_listed_but_not_hashed():
    eps = [*pods(2), ("httpbin-9", "10.244.0.9", False, True)]
    out = _only(plan_service(SVC, [slice_(eps)], {}, [rule("seed.yaml")], {}))
    gone = next(e for e in out.doc.endpoints if e.pod == "httpbin-9")
    assert not gone.ready and gone.terminating
    _, idx = t.decode_ring(out.doc.table, 3)
    assert out.doc.endpoints.index(gone) not in set(idx)
    assert out.ready_endpoints == 2


def test_invalid_rule_keeps_the_published_policy_and_follows_endpoints():
    good = plan_service(SVC, [slice_(pods(3))], {}, [rule("seed.yaml")], {})
    prev = {n: o.doc for n, o in good.tables.items()}
    bad = rule("seed.yaml")
    spec = bad.rule.model_dump(by_alias=True, exclude_none=True, mode="json")
    spec["spec"]["trafficPolicy"]["loadBalancer"]["consistentHash"]["maglev"] = {"tableSize": 6}
    broken = rule(spec)
    assert not broken.result.valid
    plan = plan_service(SVC, [slice_(pods(4))], {}, [broken], prev)
    out = _only(plan)
    assert out.doc.policy == _only(good).doc.policy  # still the ring of the valid generation
    assert out.ready_endpoints == 4
    verdict = plan.rules["default/httpbin"]
    assert not verdict.ready and verdict.reason == "Invalid"
    assert "tableSize must be a prime number for maglev" in verdict.message


def test_invalid_rule_never_published_is_ignored_like_istio_would():
    spec = json.loads(
        json.dumps(rule("seed.yaml").rule.model_dump(by_alias=True, exclude_none=True, mode="json"))
    )
    spec["spec"]["trafficPolicy"]["loadBalancer"]["consistentHash"]["maglev"] = {"tableSize": 6}
    plan = plan_service(SVC, [slice_(pods(2))], {}, [rule(spec)], {})
    assert _only(plan).doc.policy.type == "simple"
    assert plan.rules["default/httpbin"].reason == "Invalid"


def test_subsets_get_their_own_tables_filtered_by_pod_labels():
    r = rule("subsets.yaml")
    svc = service(name="reviews", ns="bookinfo", ports=(("http", 9080),))
    eps = [("reviews-a", "10.244.1.2"), ("reviews-b", "10.244.1.3"), ("reviews-c", "10.244.1.4")]
    labels = {
        "reviews-a": {"version": "v1"},
        "reviews-b": {"version": "v2"},
        "reviews-c": {"version": "v2"},
    }
    plan = plan_service(svc, [slice_(eps, name="reviews", ns="bookinfo")], labels, [r], {})
    by_subset = {o.doc.subset: o.doc for o in plan.tables.values()}
    assert set(by_subset) == {None, "v1", "v2", "v3"}
    assert by_subset["v3"].endpoints == ()  # no pod carries version=v3
    assert [e.pod for e in by_subset["v1"].endpoints] == ["reviews-a"]
    assert [e.pod for e in by_subset["v2"].endpoints] == ["reviews-b", "reviews-c"]
    # port-level header key wins for the plain table; the v2 subset's sourceIp beats it
    assert by_subset[None].policy.hash_key.kind == "header"
    assert by_subset["v2"].policy.hash_key.kind == "sourceIp"
    assert by_subset["v2"].subset_labels == {"version": "v2"}


def test_deleted_service_plans_nothing_so_its_tables_go():
    assert plan_service(None, [], {}, [rule("seed.yaml")], {}).tables == {}


def test_opt_out_annotation_and_kubernetes_service_are_not_published():
    off = service(annotations={"tether.dev/publish": "false"})
    assert plan_service(off, [slice_(pods(1))], {}, [], {}).tables == {}
    api = service(name="kubernetes", ports=(("https", 443),))
    assert plan_service(api, [], {}, [], {}).tables == {}


def test_thousand_endpoints_maglev_fits_a_configmap():
    r = rule("maglev-cookie.yaml")
    svc = service(name=r.rule.spec.host.split(".")[0], ns=r.rule.namespace)
    many = [(f"p-{i}", f"10.{i // 65536}.{i // 256 % 256}.{i % 256}") for i in range(1000)]
    out = _only(plan_service(svc, [slice_(many, name=svc.name, ns=svc.namespace)], {}, [r], {}))
    assert out.doc.table.size == 65537 and out.doc.table.data is not None
    assert len(out.text.encode()) < 1024 * 1024


def test_system_and_tether_namespaces_get_tables_only_through_a_rule():
    from tether.reconcile.plan import PlanSettings

    settings = PlanSettings(quiet_namespaces=frozenset({"kube-system", "tether-system"}))
    gw = service(name="tether-gateway", ns="tether-system", ports=(("http", 80),))
    eps = [slice_(pods(1), name="tether-gateway", ns="tether-system")]
    assert plan_service(gw, eps, {}, [], {}, settings).tables == {}
    r = rule(
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "DestinationRule",
            "metadata": {"name": "gw", "namespace": "tether-system"},
            "spec": {
                "host": "tether-gateway",
                "trafficPolicy": {"loadBalancer": {"simple": "ROUND_ROBIN"}},
            },
        }
    )
    assert len(plan_service(gw, eps, {}, [r], {}, settings).tables) == 1
