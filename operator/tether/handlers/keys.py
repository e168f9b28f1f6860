"""The session-signing keys: created when missing, rotated and pruned by the acting replica.

``KeyManager`` watches the one Secret ``tether-session-keys`` (``tether.k8s.session_keys``)
and, only while this replica may write (``Gate``), brings it to what ``next_keyring`` says:

- absent → a new ring with one key that signs at once (256 bits from ``secrets``);
- the newest key signs for ``KeyPolicy.every`` (30 days) → ``rotate``: the new key is
  published ``propagation`` (5 min) before it signs, every older key keeps verifying for
  ``overlap`` (48 h) after that; keys past their retirement are pruned;
- unreadable (edited by hand into something that is not a key ring) → left alone, reported
  in the log and ``tether_operator_session_keyring_invalid`` (rewriting it would throw away
  keys that gateways may still hold; delete the Secret to get a fresh ring).

It checks again on every change of the Secret, on every opening of the gate and at the next
instant the ring is due to change (a rotation or a retirement), at least hourly. Writes carry
the live resourceVersion; a conflict waits for the watch to bring the new state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from typing import NamedTuple

from tether.handlers import metrics
from tether.hashing.session.keyring import (
    DEFAULT_POLICY,
    KeyPolicy,
    due_for_rotation,
    new_keyring,
    prune,
    rotate,
)
from tether.k8s import kopf_io
from tether.k8s.informer import Informer
from tether.k8s.session_keys import KeySecret, KeySecretWriter, parse_key_secret
from tether.models import session_keys as sk

log = logging.getLogger(__name__)

LONGEST_WAIT = 3600.0  # check at least hourly
RETRY = 30.0  # after a failed write


class KeyPlan(NamedTuple):
    """What to do with the key Secret now: ``action`` and the ring to write (None: nothing)."""

    action: str  # "create" | "rotate" | "prune" | "keep" | "invalid"
    text: str | None
    next_check: float  # seconds until the ring next needs attention


def next_keyring(
    current: str | None, now: int, policy: KeyPolicy, secret: Callable[[], bytes]
) -> KeyPlan:
    """Decide the key ring's next state from its current ``keyring.json`` (None = absent)."""
    if current is None:
        ring = new_keyring(now, secret())
        return KeyPlan("create", sk.dumps_keyring(ring), _wait(ring, now, policy))
    try:
        ring = sk.loads_keyring(current)
    except sk.KeyRingError as exc:
        log.error("Secret %s holds no usable key ring (%s); not rewriting it", sk.SECRET_NAME, exc)
        return KeyPlan("invalid", None, LONGEST_WAIT)
    if all(k.retires_at is not None and now >= k.retires_at for k in ring.keys):
        ring = new_keyring(now, secret())  # no key verifies any more: start afresh, at once
        return KeyPlan("rotate", sk.dumps_keyring(ring), _wait(ring, now, policy))
    action = "keep"
    new = ring
    if due_for_rotation(ring, now, policy):
        new, action = rotate(ring, now, secret(), policy), "rotate"
    pruned = prune(new, now)
    if pruned is not new and action == "keep":
        action = "prune"
    text = None if action == "keep" else sk.dumps_keyring(pruned)
    return KeyPlan(action, text, _wait(pruned, now, policy))


def _wait(ring: sk.SessionKeyRing, now: int, policy: KeyPolicy) -> float:
    newest = max(k.activates_at for k in ring.keys)
    moments = [newest + policy.every, *(k.retires_at for k in ring.keys if k.retires_at)]
    return float(min(max(min(moments) - now, 1), LONGEST_WAIT))


class KeyManager:
    """Keeps the key Secret current while ``may_write()`` holds (see the module docstring)."""

    def __init__(
        self,
        settings: kopf_io.Settings,
        namespace: str,
        may_write: Callable[[], bool],
        policy: KeyPolicy = DEFAULT_POLICY,
        clock: Callable[[], float] = time.time,
        secret: Callable[[], bytes] = lambda: secrets.token_bytes(32),
    ) -> None:
        self.informer: Informer[KeySecret] = Informer(
            "session-keys", settings, kopf_io.SECRETS, parse_key_secret, namespace=namespace,
            fields=f"metadata.name={sk.SECRET_NAME}", on_change=self._on_change, optional=True,
        )  # fmt: skip
        self.writer = KeySecretWriter(settings, namespace)
        self.key = (namespace, sk.SECRET_NAME)
        self.may_write = may_write
        self.policy, self.clock, self.secret = policy, clock, secret
        self._task: asyncio.Task[None] | None = None
        self._again = False
        self._timer: asyncio.TimerHandle | None = None

    def _on_change(self, key, old, new) -> None:
        self.kick()

    def kick(self) -> None:
        """Check the Secret soon (coalesced: one check runs at a time)."""
        if not (self.may_write() and self.informer.synced.is_set()):
            return
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.get_running_loop().create_task(self._run(), name="tether-keys")

    async def _run(self) -> None:
        self._again = True
        while self._again:
            self._again = False
            wait = await self.ensure()
            self._arm(wait)

    def _arm(self, wait: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(wait, self.kick)

    async def ensure(self) -> float:
        """Bring the Secret to its next state if this replica may write; seconds to next check."""
        if not self.may_write():
            return LONGEST_WAIT
        live = self.informer.get(self.key)
        plan = next_keyring(
            live.text if live else None, int(self.clock()), self.policy, self.secret
        )
        metrics.KEYRING_INVALID.set(1 if plan.action == "invalid" else 0)
        if plan.text is None or not self.may_write():
            return plan.next_check
        try:
            if live is None:
                obj = await self.writer.create(plan.text)
            else:
                obj = await self.writer.replace(plan.text, live.resource_version)
        except (kopf_io.Conflict, kopf_io.NotFound):
            return RETRY  # changed meanwhile: its watch event kicks a new check
        except Exception as exc:  # RBAC, API down: keep the operator running, try again later
            log.warning("could not write Secret %s (%r); retrying", sk.SECRET_NAME, exc)
            return RETRY
        self.informer.put_local(self.key, obj)
        metrics.KEY_WRITES.labels(plan.action).inc()
        log.info("session keys: %s (Secret %s/%s)", plan.action, *self.key)
        return plan.next_check

    def stop(self) -> None:
        """Stop checking (the replica stands by or shuts down)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def close(self) -> None:
        """Cancel a running check (operator shutdown)."""
        self.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
