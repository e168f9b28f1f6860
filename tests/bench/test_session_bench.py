"""`make bench`: persistent sessions against the hash rule (disruption) and the per-request cost
of checking a signed session value, with the hash pick measured alongside as the anchor.

Disruption is simulated with the real table builders (Envoy's ring hash with Istio's default
minimum of 1024 entries, and Maglev 65537) and the real session code (``issue`` →
``read_cookie_value`` → ``decide``), on SESSIONS client sessions whose cookie values are
Envoy-generated hex strings. "Moved" counts sessions that changed pod at least once; "moves"
counts every change. Timings are best-of-k CPU times of this process; compare the ratios.

Two paths check a signed value. The pure-Python path (``read_cookie_value`` + ``decide``) is
timed against a Python cookie + Maglev hash pick. The native lane's check (``wire/session.c``,
``SessionCheck.verify``) is timed through its Python binding: on a value it verified before (the
cache of verified values, what a browser's repeated requests hit), on values it has not (20,000
distinct values cycled through the 8,192-entry cache: base64 + HMAC-SHA-256 every time), and
the call's floor (a value refused before any work), against the lane's hash of the cookie
(xxHash64, ``xxhash.xxh64_intdigest``, also one C call). ``*_net`` subtracts each call's floor.
The whole-request figure on the real lane is ``python -m tests.bench.gateway_icount --sessions``
(instructions, needs valgrind).
"""

from __future__ import annotations

import itertools
import os
import random
import time
import timeit
from collections.abc import Callable

import pytest
import xxhash

from tether.hashing import CookieKey, Host, Maglev, RingHash, RingHashConfig, canonical_order
from tether.hashing.session import (
    HONOUR,
    KeyRing,
    SessionSpec,
    SigningKey,
    decide,
    encode_envoy_cookie,
    issue,
    read_cookie_value,
    session_context,
)
from tether.hashing.session.signing import mac_message

from .results import record

pytestmark = pytest.mark.bench

SESSIONS = 20_000
T0 = 1_750_000_000
RING = KeyRing([SigningKey("k1", bytes(range(32)), T0 - 60)])
SPEC = SessionSpec(kind="cookie", name="sid", path="/", context=session_context("d", "s", "sid"))
COOKIE = b"_ga=GA1.2.3.4; session-id=abc123; sticky-session-key=d9df64085857d8db; theme=dark"


def pod(i: int, gen: str = "a") -> str:
    return f"10.244.{ord(gen) - 96}.{i}:8080"


def picker(algorithm: str, addresses: list[str]) -> Callable[[int], str]:
    hosts = canonical_order([Host(a) for a in addresses])
    keys = [h.key for h in hosts]
    table = (
        Maglev.build(hosts) if algorithm == "maglev" else RingHash.build(hosts, RingHashConfig())
    )
    return lambda h: keys[table.choose(h)]


def session_hashes() -> list[int]:
    rng = random.Random(11)
    return [
        xxhash.xxh64_intdigest(format(rng.getrandbits(64), "016x").encode())
        for _ in range(SESSIONS)
    ]


class Sessions:
    """Clients with a persistent-session cookie; the soft policy picks a pod for new ones."""

    def __init__(self, hashes: list[int], pick: Callable[[int], str], now: int):
        self.hashes = hashes
        self.values = [issue(SPEC, pick(h), RING, now)[0] for h in hashes]

    def route(self, pick: Callable[[int], str], states: dict[str, int], now: int) -> list[str]:
        """One request per client: honour the cookie or fall back (and rewrite) as the gateway."""
        pods = []
        for i, h in enumerate(self.hashes):
            decision = decide(read_cookie_value(SPEC, self.values[i], RING, now), states, False)
            target = decision.address if decision.action == HONOUR else pick(h)
            if decision.action != HONOUR:
                self.values[i] = issue(SPEC, target, RING, now)[0]
            pods.append(target)
        return pods


def moves(history: list[list[str]]) -> tuple[float, float]:
    """(fraction of sessions that moved at least once, mean moves per session)."""
    per_session = [
        sum(a != b for a, b in itertools.pairwise(path)) for path in zip(*history, strict=True)
    ]
    return sum(1 for m in per_session if m) / len(per_session), sum(per_session) / len(per_session)


def scale_up(algorithm: str, hashes: list[int]) -> dict:
    before = [pod(i) for i in range(1, 4)]
    after = [pod(i) for i in range(1, 6)]
    pick3, pick5 = picker(algorithm, before), picker(algorithm, after)
    hash_rule = moves([[pick3(h) for h in hashes], [pick5(h) for h in hashes]])
    sessions = Sessions(hashes, pick3, T0)
    states = {a: 1 for a in after}
    first = sessions.route(pick3, {a: 1 for a in before}, T0)
    second = sessions.route(pick5, states, T0 + 1)
    persistent = moves([first, second])
    share_new = sum(1 for p in second if p not in before) / len(second)
    return {
        "hash_rule_moved": hash_rule[0],
        "persistent_moved": persistent[0],
        "optimum_balanced_hash": 2 / 5,
        "optimum_sessions": 0.0,
        "persistent_share_on_new_pods": share_new,
    }


def rolling_update(algorithm: str, hashes: list[int], n: int = 10) -> dict:
    """maxSurge 1, maxUnavailable 0: add new pod i (ready), then old pod i terminates."""
    ready = [pod(i) for i in range(1, n + 1)]
    hash_history: list[list[str]] = []
    session_history: list[list[str]] = []
    pick = picker(algorithm, ready)
    sessions = Sessions(hashes, pick, T0)
    now = T0
    for i in range(n + 1):
        if i:
            ready = [*ready, pod(i, "b")]  # surge: the new pod is ready
            pick = picker(algorithm, ready)
            hash_history.append([pick(h) for h in hashes])
            session_history.append(sessions.route(pick, dict.fromkeys(ready, 1), now))
            ready = [a for a in ready if a != pod(i)]  # the old pod terminates
            pick = picker(algorithm, ready)
        hash_history.append([pick(h) for h in hashes])
        session_history.append(sessions.route(pick, dict.fromkeys(ready, 1), now))
        now += 60
    hash_moved, hash_moves = moves(hash_history)
    session_moved, session_moves = moves(session_history)
    return {
        "hash_rule_moved": hash_moved,
        "hash_rule_moves_per_session": hash_moves,
        "persistent_moved": session_moved,
        "persistent_moves_per_session": session_moves,
        "optimum_moved": 1.0,
        "optimum_moves_per_session": 1.0,
    }


def per_call_ns(fn: Callable[[], object], number: int = 20_000, repeat: int = 7) -> float:
    return (
        min(timeit.repeat(fn, number=number, repeat=repeat, timer=time.process_time)) / number * 1e9
    )


class _Request:
    __slots__ = ("path", "remote_ip")

    def __init__(self) -> None:
        self.path, self.remote_ip = b"/", "10.1.2.3"

    def header_values(self, lname: bytes) -> list[bytes]:
        return [COOKIE] if lname == b"cookie" else []


def costs() -> dict:
    hosts = canonical_order([Host(f"10.0.{i // 256}.{i % 256}:8080") for i in range(100)])
    maglev = Maglev.build(hosts)
    cookie, request = CookieKey("sticky-session-key", ttl_seconds=0), _Request()
    address, key = hosts[7].key, RING.keys[0]
    signed, _ = issue(SPEC, address, RING, T0)
    unsigned_spec = SessionSpec(kind="cookie", name="sid", signing="unsigned")
    envoy_value = encode_envoy_cookie(address)
    states = {h.key: 1 for h in hosts}
    reading = read_cookie_value(SPEC, signed, RING, T0)
    assert reading.status == "valid" and decide(reading, states, False).action == HONOUR
    assert read_cookie_value(unsigned_spec, envoy_value, None, T0).address == address
    return {
        "anchor_cookie_maglev_pick": per_call_ns(lambda: maglev.choose(cookie.evaluate(request))),
        "signed_read": per_call_ns(lambda: read_cookie_value(SPEC, signed, RING, T0)),
        "hmac_only": per_call_ns(
            lambda: key.mac(mac_message(SPEC.context, key.id, address, 0, T0 + 86400))
        ),
        "unsigned_envoy_read": per_call_ns(
            lambda: read_cookie_value(unsigned_spec, envoy_value, None, T0)
        ),
        "signed_read_and_decide": per_call_ns(
            lambda: decide(read_cookie_value(SPEC, signed, RING, T0), states, False)
        ),
        "issue_signed": per_call_ns(lambda: issue(SPEC, address, RING, T0)),
    }


def native_costs() -> dict:
    from tether.gateway.wire import _wire

    assert _wire is not None, "the native extension is not built: run `make install`"
    keys = [(k.id, k.secret, k.activates_at, k.retires_at) for k in RING.keys]
    check = _wire.SessionCheck(SPEC.context, keys, SPEC.window)
    address = pod(7)
    values = [issue(SPEC, address, RING, T0 + i)[0].encode() for i in range(20_000)]
    now, one, cycle = T0 + 20_000, values[0], itertools.cycle(values)
    assert {check.verify(v, now) for v in values} == {address.encode()}
    refused, cookie_value = b"x" * 300, b"d9df64085857d8db"
    xxh = xxhash.xxh64_intdigest
    figures = {
        "verify_cached": per_call_ns(lambda: check.verify(one, now), number=200_000),
        "verify_uncached": per_call_ns(lambda: check.verify(next(cycle), now)),
        "verify_call_floor": per_call_ns(lambda: check.verify(refused, now), number=200_000),
        "next_value_cost": per_call_ns(lambda: next(cycle)) - per_call_ns(lambda: None),
        "anchor_xxh64_cookie": per_call_ns(lambda: xxh(cookie_value), number=200_000),
        "xxh64_call_floor": per_call_ns(lambda: xxh(b""), number=200_000),
    }
    floor = figures["verify_call_floor"]
    figures["verify_cached_net"] = figures["verify_cached"] - floor
    figures["verify_uncached_net"] = figures["verify_uncached"] - floor - figures["next_value_cost"]
    return figures


def test_session_bench():
    load_start = os.getloadavg()
    hashes = session_hashes()
    results: dict = {"machine": {"loadavg_at_start": load_start}}
    for algorithm in ("ring", "maglev"):
        results[f"scale_3_to_5_{algorithm}"] = scale_up(algorithm, hashes)
        results[f"rolling_update_10_{algorithm}"] = rolling_update(algorithm, hashes)
    results["per_request_ns"] = timing = costs()
    anchor = timing["anchor_cookie_maglev_pick"]
    results["per_request_ratio_to_hash_pick"] = {
        k: round(v / anchor, 2) for k, v in timing.items() if k != "anchor_cookie_maglev_pick"
    }
    results["native_check_ns"] = native = native_costs()
    results["native_check_ratio_to_xxh64_call"] = {
        k: round(native[k] / native["anchor_xxh64_cookie"], 2)
        for k in ("verify_cached", "verify_uncached")
    }
    results["machine"]["loadavg_at_end"] = os.getloadavg()
    for key, value in results.items():
        record("sessions", key, value)
    for algorithm in ("ring", "maglev"):
        up = results[f"scale_3_to_5_{algorithm}"]
        assert up["persistent_moved"] == 0.0, "a session moved although its pod still exists"
        assert up["hash_rule_moved"] > up["optimum_balanced_hash"] * 0.9
        roll = results[f"rolling_update_10_{algorithm}"]
        assert roll["persistent_moved"] == 1.0  # every old pod is replaced: every session moves
