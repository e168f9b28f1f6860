"""Probe ports resolve by number or by the container's port name; thresholds are honoured."""

import asyncio

import pytest

from tether.lab.kubelet import probes

CONTAINER = {"name": "gw", "ports": [{"name": "admin", "containerPort": 9901}]}


def test_probe_port_by_number_or_name():
    assert probes.resolve_port(8080, CONTAINER) == 8080
    assert probes.resolve_port("8080", CONTAINER) == 8080
    assert probes.resolve_port("admin", CONTAINER) == 9901
    with pytest.raises(ValueError, match="not a named port"):
        probes.resolve_port("metrics", CONTAINER)


def test_exec_probe_is_not_run():
    assert probes.checker({"exec": {"command": ["true"]}}, CONTAINER, "10.244.0.2") is None


def test_readiness_flips_only_after_thresholds():
    results = iter([False, True, True, False, False, True])
    seen = []

    async def check():
        try:
            return next(results)
        except StopIteration:
            raise asyncio.CancelledError from None

    probe = {"periodSeconds": 0, "successThreshold": 2, "failureThreshold": 2}
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(probes.run_readiness(probe, check, seen.append))
    assert seen == [True, False]


def test_liveness_fires_after_consecutive_failures():
    results = iter([False, True, False, False])
    fired = []

    async def check():
        return next(results)

    async def on_failure():
        fired.append(True)

    asyncio.run(probes.run_liveness({"periodSeconds": 0, "failureThreshold": 2}, check, on_failure))
    assert fired == [True]
