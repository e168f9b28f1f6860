"""DestinationRule status: what `kubectl get dr -o yaml` shows, and that it is written once."""

from tether.reconcile.plan import plan_service
from tether.reconcile.status import compute, is_new_invalid

from .cluster_fakes import pods, rule, service, slice_

NOW = "2026-11-29T10:00:00Z"


def _status(r, plans, current=None, moved=None, now=NOW):
    return compute(
        key=r.key,
        generation=3,
        host=r.rule.spec.host,
        result=r.result,
        plans=plans,
        moved=moved or {},
        current=current,
        now=now,
    )


def test_published_rule_reports_its_table():
    r = rule("seed.yaml")
    plan = plan_service(service(), [slice_(pods(3))], {}, [r], {})
    name = next(iter(plan.tables))
    st = _status(r, {("default", "httpbin"): plan}, moved={name: 0.25})
    ready = st["conditions"][0]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "True", "Published")
    assert st["observedGeneration"] == 3 and ready["lastTransitionTime"] == NOW
    assert st["endpoints"] == 3 and st["algorithm"] == "ring-hash" and st["tableSize"] == 1026
    assert st["keysMoved"] == 0.25 and st["services"] == ["default/httpbin"]
    assert st["tables"][0]["configMap"] == name and st["checksum"].startswith("sha256:")


def test_same_status_is_not_rewritten_and_transition_time_is_kept():
    r = rule("seed.yaml")
    plans = {("default", "httpbin"): plan_service(service(), [slice_(pods(3))], {}, [r], {})}
    first = _status(r, plans)
    assert _status(r, plans, current=first, now="2030-01-01T00:00:00Z") is None
    more = {("default", "httpbin"): plan_service(service(), [slice_(pods(4))], {}, [r], {})}
    second = _status(r, more, current=first, now="2030-01-01T00:00:00Z")
    assert second["endpoints"] == 4
    assert second["conditions"][0]["lastTransitionTime"] == NOW  # still Ready/Published


def test_rule_matching_no_service_is_not_ready():
    st = _status(rule("seed.yaml"), {})
    assert st["conditions"][0]["status"] == "False"
    assert st["conditions"][0]["reason"] == "NoMatchingService"
    assert "httpbin.default.svc.cluster.local" in st["conditions"][0]["message"]


def test_invalid_rule_carries_istios_message_and_warns_once():
    obj = rule("seed.yaml").rule.model_dump(by_alias=True, exclude_none=True, mode="json")
    obj["spec"]["trafficPolicy"]["loadBalancer"]["consistentHash"]["maglev"] = {"tableSize": 0}
    bad = rule(obj)
    st = _status(bad, {})
    cond = st["conditions"][0]
    assert cond["status"] == "False" and cond["reason"] == "Invalid"
    assert cond["message"].startswith("configuration is invalid: ")
    assert "tableSize must be set for maglev" in cond["message"]
    assert is_new_invalid({}, st)
    assert not is_new_invalid(st, st)
