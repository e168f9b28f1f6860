"""Hostile and huge DestinationRules: decoded, judged and planned quickly, each with a status.

A property test sends generated rule specs (valid, invalid, huge, malformed) through what the
operator does with a rule: decode and validate (``check``), then plan the Service it selects
(``plan_service``, with endpoints and a subset's pods). None may crash, none may take a second
of CPU, and each ends with a status a user can read (a decode error, Istio's or tether's
verdict, or a rule outcome of the plan).
"""

from __future__ import annotations

import time
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tether.models.primes import envoy_is_prime, envoy_is_prime_trial
from tether.models.validation import DECODE_PREFIX, INVALID_PREFIX, check
from tether.reconcile.plan import Rule, plan_service

from .cluster_fakes import pods, service, slice_

SVC = service()
SLICES = [slice_(pods(4))]
POD_LABELS = {f"httpbin-{i}": {"app": "httpbin", "version": f"v{i % 2}"} for i in range(4)}
HUGE = [0, 1, 2, 3, 4, 65537, 1999993, 2097143, 4999999, 5000011, 2**31 - 1, 2**61 - 1, 2**64 - 1]
HUGE += [1000003, 1999993, 2097143]  # the largest Maglev tables tether plans
RING = [0, 1, 1024, 65536, 65537, 131072, 8388608, 8388609, 2**63 - 1]

junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
durations = st.sampled_from(["0s", "1s", "1.5ms", "-5s", "abc", "5", "1d", "9999999999999h"])


def _maybe(strategy: st.SearchStrategy) -> st.SearchStrategy:
    return st.none() | strategy


@st.composite
def consistent_hash(draw: st.DrawFn) -> dict[str, Any]:
    ch: dict[str, Any] = {}
    key = draw(st.sampled_from(["httpHeaderName", "httpCookie", "useSourceIp", "query", None]))
    if key == "httpCookie":
        ch[key] = {"name": draw(st.sampled_from(["c", ""])), "ttl": draw(_maybe(durations))}
    elif key == "useSourceIp":
        ch[key] = draw(st.booleans())
    elif key is not None:
        ch[{"query": "httpQueryParameterName"}.get(key, key)] = draw(st.sampled_from(["x", ""]))
    algorithm = draw(st.sampled_from(["maglev", "ringHash", None]))
    if algorithm == "maglev":
        sizes = st.sampled_from(HUGE) if draw(st.integers(0, 4)) else st.integers(0, 2**64)
        ch["maglev"] = {"tableSize": draw(sizes)}
    elif algorithm == "ringHash":
        ch["ringHash"] = {"minimumRingSize": draw(st.sampled_from(RING))}
    if draw(st.integers(0, 5)) == 0:
        ch["minimumRingSize"] = draw(st.sampled_from(RING))
    return ch


@st.composite
def load_balancer(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["simple", "consistentHash", "consistentHash", "junk"]))
    if kind == "simple":
        return {"simple": draw(st.sampled_from(["ROUND_ROBIN", "RANDOM", "LEAST_REQUEST", 7]))}
    if kind == "junk" and draw(st.booleans()):
        return draw(st.dictionaries(st.sampled_from(["simple", "consistentHash", "warmup"]), junk))
    lb: dict[str, Any] = {"consistentHash": draw(consistent_hash())}
    if draw(st.integers(0, 5)) == 0:
        failover = st.fixed_dictionaries({"from": st.text(max_size=4), "to": st.text(max_size=4)})
        lb["zoneAwareLbSetting"] = {"failover": draw(st.lists(_maybe(failover), max_size=3))}
    return lb


@st.composite
def traffic_policy(draw: st.DrawFn) -> dict[str, Any]:
    policy: dict[str, Any] = {"loadBalancer": draw(load_balancer())}
    if draw(st.integers(0, 3)) == 0:
        ports = st.fixed_dictionaries(
            {"port": st.fixed_dictionaries({"number": st.sampled_from([8000, 0, 2**32])})},
            optional={"loadBalancer": load_balancer()},
        )
        policy["portLevelSettings"] = draw(st.lists(_maybe(ports), max_size=40))
    for part in ("connectionPool", "outlierDetection", "tls", "tunnel"):
        if draw(st.integers(0, 9)) == 0:
            policy[part] = draw(junk | st.fixed_dictionaries({}, optional={"tcp": junk}))
    return policy


@st.composite
def subsets(draw: st.DrawFn) -> list[Any]:
    """Few or very many subsets, mostly valid (unique names, labels that select pods)."""
    count = draw(st.sampled_from([1, 2, 3, 40, 300, 2000]))
    policy = draw(_maybe(traffic_policy()))
    out: list[Any] = []
    for i in range(count):
        subset: dict[str, Any] = {"name": f"v{i}", "labels": {"version": f"v{i % 3}"}}
        if policy is not None and i % 2:
            subset["trafficPolicy"] = policy
        out.append(subset)
    if draw(st.integers(0, 4)) == 0:
        out[draw(st.integers(0, count - 1))] = draw(_maybe(junk))
    return out


@st.composite
def rule_spec(draw: st.DrawFn) -> dict[str, Any]:
    spec: dict[str, Any] = {"host": draw(st.sampled_from(["httpbin"] * 6 + ["*", "", "x_y"]))}
    if draw(st.integers(0, 9)) > 0:
        spec["trafficPolicy"] = draw(traffic_policy())
    if draw(st.integers(0, 2)) == 0:
        spec["subsets"] = draw(subsets())
    if draw(st.integers(0, 9)) == 0:
        spec["exportTo"] = draw(st.lists(_maybe(st.text(max_size=4)), max_size=3))
    return spec


@settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    spec=rule_spec(),
    annotations=st.dictionaries(
        st.sampled_from(
            [
                "tether.dev/algorithm",
                "tether.dev/maglev-table-size",
                "tether.dev/hash-balance-factor",
            ]
        ),
        st.sampled_from(["ketama", "auto", "150", "1"]),
        max_size=2,
    ),
)
def test_any_rule_is_judged_and_planned_within_a_second_with_a_status(
    spec: dict[str, Any], annotations: dict[str, str]
) -> None:
    obj = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": "fuzz", "namespace": "default", "annotations": annotations},
        "spec": spec,
    }
    started = time.process_time()  # CPU seconds: other load on the machine does not count
    dr, result = check(obj)
    if dr is None:
        assert result.message.startswith(DECODE_PREFIX) and len(result.message) > len(DECODE_PREFIX)
    else:
        plan = plan_service(SVC, SLICES, POD_LABELS, [Rule(dr, result)], {})
        outcome = plan.rules.get("default/fuzz")
        if result.valid:
            assert plan.tables  # the Service always gets its tables
            if outcome is not None:  # None: the rule selects another host
                assert outcome.reason in ("Published", "Merged")
        else:
            assert result.message.startswith(INVALID_PREFIX)
            assert outcome is None or (outcome.reason == "Invalid" and not outcome.ready)
    elapsed = time.process_time() - started
    assert elapsed < 1.0, f"{elapsed:.2f} s for {spec}"


@given(st.integers(0, 10**10))
def test_fast_primality_equals_envoys_loop(x: int) -> None:
    """Miller-Rabin vs Envoy's trial division, where the loop is cheap enough to run."""
    assert envoy_is_prime(x) == envoy_is_prime_trial(x)


def test_fast_primality_equals_envoys_loop_on_every_small_number() -> None:
    assert [x for x in range(30000) if envoy_is_prime(x)] == [
        x for x in range(30000) if envoy_is_prime_trial(x)
    ]


def test_primality_quirks_and_large_primes() -> None:
    assert [x for x in range(10) if envoy_is_prime(x)] == [1, 2, 3, 5, 7]  # 1 passes, as Envoy
    assert envoy_is_prime(2**61 - 1) and envoy_is_prime(18446744073709551557)  # largest < 2^64
    assert not envoy_is_prime(4294967291 * 4294967279)  # product of the two largest u32 primes
    assert not envoy_is_prime(4294967291**2)  # square of a prime: Go's float sqrt is exact there
    assert not envoy_is_prime(3215031751)  # strong pseudoprime to bases 2, 3, 5, 7
    assert not envoy_is_prime(3825123056546413051)  # strong pseudoprime to bases 2..23
