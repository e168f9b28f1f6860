"""What a scale (or a policy change) would do to a published table, before doing it.

``predict(current, replicas, policy, removal)`` builds the table the operator would publish
after the change, with the operator's own builder, and measures it with ``transition``:

- **Scale down**: the pods the ReplicaSet deletes (``scaledown.removal``) leave; every other
  address is known, so each scenario is exact. When the controller's choice is a tie, every
  combination is a scenario (at most ``samples``, drawn evenly).
- **Scale up**: pods that do not exist yet have no address. A table depends on an address only
  through its hash, so a new pod's effect is a random draw; each scenario gives the new pods
  distinct unused addresses drawn in the pod network of the current ones (/16 for IPv4, /64 for
  IPv6) with a fixed seed. The spread of the scenarios is the prediction's uncertainty; pods
  that already exist but are not ready yet keep their real address.
- ``policy`` None keeps the current policy; a Maglev ``table_size`` None means ``auto``.

The future hook for sessions: ``Scenario.transition`` row-normalised is the probability that a
key of each old pod moves, which turns per-pod active-session counts into moved sessions.
"""

from __future__ import annotations

import ipaddress
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations, islice

from tether.models import table as t
from tether.reconcile import tables
from tether.reconcile.policy import resolve_policy
from tether.reconcile.scaledown import Removal
from tether.reconcile.transition import KeySpace, Transition, transition

NEW_POD = "new-{}"


@dataclass(frozen=True)
class Scenario:
    """One possible outcome: the table after the change and the key flow into it."""

    removed: tuple[str, ...]
    added: tuple[str, ...]  # hash keys of the synthesised endpoints
    doc: t.TableDocument
    transition: Transition

    @property
    def max_over_avg(self) -> float:
        """The busiest pod's share over the mean share (1.0 is perfect balance)."""
        after = self.transition.after
        return max(after.values()) * len(after) if after else 0.0


@dataclass(frozen=True)
class Prediction:
    """The scenarios of one change under one policy, and their summary."""

    policy: t.Policy
    replicas: int
    scenarios: tuple[Scenario, ...]

    @property
    def moved(self) -> list[float]:
        """Moved fraction of every scenario."""
        return [s.transition.moved for s in self.scenarios]

    @property
    def mean(self) -> float:
        """Mean moved fraction over the scenarios."""
        return statistics.fmean(self.moved)

    @property
    def sd(self) -> float:
        """Standard deviation of the moved fraction over the scenarios (0 for one)."""
        return statistics.pstdev(self.moved)

    @property
    def optimum(self) -> float:
        """The least any table could move for this change (ideal shares)."""
        return self.scenarios[0].transition.optimum

    def shares(self) -> dict[str, float]:
        """Expected share per pod after the change, over the scenarios (0 where it is gone).

        New pods are ``new-1``, ``new-2``, … ; the values sum to 1.
        """
        total: dict[str, float] = {}
        for s in self.scenarios:
            names = {e.hash_key: e.pod or e.hash_key for e in s.doc.endpoints}
            for key, share in s.transition.after.items():
                total[names[key]] = total.get(names[key], 0.0) + share
        return {k: v / len(self.scenarios) for k, v in sorted(total.items())}


def pod_network(addresses: Sequence[str]) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """Where new pods' addresses are drawn: the /16 (IPv4) or /64 (IPv6) of the first one."""
    first = ipaddress.ip_address(addresses[0]) if addresses else ipaddress.ip_address("10.244.0.0")
    prefix = 16 if first.version == 4 else 64
    return ipaddress.ip_network(f"{first}/{prefix}", strict=False)


def synthesise(existing: Sequence[str], count: int, rng: random.Random) -> list[str]:
    """``count`` distinct addresses in the pod network of ``existing``, none of them taken."""
    net = pod_network(existing)
    taken = set(existing)
    out: list[str] = []
    while len(out) < count:
        addr = str(net.network_address + rng.randrange(2, net.num_addresses - 1))
        if addr not in taken:
            taken.add(addr)
            out.append(addr)
    return out


def with_endpoints(current: t.TableDocument, policy: t.Policy, endpoints) -> t.TableDocument:
    """``current`` with other endpoints and policy, its table built by the operator's builder."""
    eps = tuple(sorted(endpoints, key=lambda e: e.hash_key))
    policy = resolve_policy(policy, sum(1 for e in eps if e.ready))
    doc = current.model_copy(update={"policy": policy, "endpoints": eps, "table": None})
    return doc.model_copy(update={"table": tables.build(policy, eps)})


def _new_endpoint(address: str, port: int, i: int) -> t.Endpoint:
    key = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    return t.Endpoint(address=address, port=port, pod=NEW_POD.format(i), hashKey=key)


def _removal_sets(rm: Removal, samples: int, rng: random.Random) -> list[tuple[str, ...]]:
    combos = list(islice(combinations(rm.tied, rm.choose), 10 * samples))
    if len(combos) > samples:
        combos = rng.sample(combos, samples)
    return [rm.certain + c for c in combos] or [rm.certain]


def predict(
    current: t.TableDocument,
    replicas: int,
    policy: t.Policy | None = None,
    rm: Removal | None = None,
    *,
    samples: int = 64,
    seed: int = 0,
) -> Prediction:
    """Scenarios for scaling ``current``'s pods to ``replicas`` under ``policy``.

    Both sides of every transition use ``policy``: the prediction answers "how much would this
    scale move if the table were built that way", not the one-off cost of switching (``switch``).
    ``rm`` says which pods a scale-down deletes (``replicas`` below the number of pods, ready or
    not); without it the change is a scale-up (or none). The same arguments always give the
    same scenarios.
    """
    policy = policy or current.policy
    if policy.type != "consistentHash":
        raise ValueError(f"a {policy.simple} policy has no key space to predict")
    # the table as it would be today under ``policy``: a policy change costs nothing here
    same = policy == current.policy
    base = KeySpace.of(current if same else with_endpoints(current, policy, current.endpoints))
    rng = random.Random(seed)
    ready = [e for e in current.endpoints if e.ready]
    waiting = [e for e in current.endpoints if not e.ready and not e.terminating]
    port = ready[0].port if ready else (current.endpoints[0].port if current.endpoints else 80)
    scenarios = []
    if rm is not None:  # scale down: the pods that stay are known, waiting ones become ready
        for gone in _removal_sets(rm, samples, rng):
            keep = [
                e.model_copy(update={"ready": True})
                for e in (*ready, *waiting)
                if (e.pod or e.hash_key) not in gone
            ]
            doc = with_endpoints(current, policy, keep)
            scenarios.append(Scenario(gone, (), doc, transition(base, doc)))
    elif replicas < len(ready):
        raise ValueError("a scale-down needs the pods the ReplicaSet would delete")
    else:
        joining = [e.model_copy(update={"ready": True}) for e in waiting][: replicas - len(ready)]
        missing = replicas - len(ready) - len(joining)
        for _ in range(samples if missing else 1):
            known = [e.address for e in current.endpoints]
            addrs = synthesise(known, missing, rng)
            new = [_new_endpoint(a, port, i + 1) for i, a in enumerate(addrs)]
            doc = with_endpoints(current, policy, [*ready, *joining, *new])
            added = tuple(e.hash_key for e in new)
            scenarios.append(Scenario((), added, doc, transition(base, doc)))
    return Prediction(policy, replicas, tuple(scenarios))


def switch(current: t.TableDocument, policy: t.Policy) -> Transition | None:
    """The one-off key flow of switching ``current`` to ``policy`` with the same pods."""
    return transition(current, with_endpoints(current, policy, current.endpoints))
