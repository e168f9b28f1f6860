"""Fixtures of the lab tier: one lab per session, joined by the test process itself.

After the `lab` fixture, this process lives in the lab's network namespace: 127.0.0.1:6443 is
the lab's apiserver, pod IPs answer, KUBECONFIG points at the admin kubeconfig and the lab's
kubectl is first on PATH — for this process and everything it starts.

Environment: TETHER_LAB=reuse (+ TETHER_LAB_NAME, default `dev`) reuses a running lab and
leaves it up; by default a fresh lab is started and torn down. A lab that cannot start makes
every lab test error with the reason (missing binary, netns permission, apiserver log tail).
"""

from __future__ import annotations

import pytest

from tether.lab import Lab

from ..conftest import fresh_namespace

# tether deployed from deploy/ exactly as a user applies it (session fixtures)
from .tether_deploy import tether_gateway, tether_operator  # noqa: F401

# The session's `lab` fixture is in tests/conftest.py (shared with tests/e2e on the lab).


@pytest.fixture
def namespace(lab: Lab, request: pytest.FixtureRequest) -> str:
    """A fresh namespace for one test (its `default` ServiceAccount exists); deleted after."""
    with fresh_namespace(lab, request) as name:
        yield name
