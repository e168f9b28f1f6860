"""Session fixtures shared by the tiers: the lab, and the end-to-end suite's cluster backend.

`--cluster lab|kind` (or TETHER_E2E_CLUSTER) picks the backend of tests/e2e. The `lab`
fixture lives here so tests/lab and tests/e2e share one lab when they run in one session.
"""

from __future__ import annotations

import contextlib
import os
import uuid

import pytest

from tether.lab import Lab
from tether.lab.testing import LabUnavailable, session_lab, wait_until


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--cluster",
        choices=("lab", "kind"),
        default=os.environ.get("TETHER_E2E_CLUSTER", "lab"),
        help="backend of the end-to-end suite (tests/e2e): lab (default) or kind",
    )


@pytest.fixture(scope="session")
def lab() -> Lab:
    """The session's running lab (joined: this process is inside its network namespace)."""
    try:
        with session_lab(enter=True) as running:
            yield running
    except LabUnavailable as e:
        pytest.fail(str(e), pytrace=False)


@contextlib.contextmanager
def fresh_namespace(cluster, request: pytest.FixtureRequest):
    """A namespace named after the test, on any backend (its `default` ServiceAccount exists);
    deleted afterwards without waiting."""
    base = request.node.name.lower().replace("_", "-")[:40].strip("-")
    name = f"{base}-{uuid.uuid4().hex[:5]}"
    cluster.kubectl("create", "namespace", name)
    wait_until(
        lambda: cluster.kubectl("get", "serviceaccount", "default", "-n", name, check=False),
        timeout=30,
        what=f"ServiceAccount {name}/default",
    )
    try:
        yield name
    finally:
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
