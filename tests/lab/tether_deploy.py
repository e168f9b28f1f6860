"""tether deployed on the lab exactly as a user applies it, plus helpers to observe it.

The helpers are the end-to-end suite's (tests/e2e/deploy.py), which take any cluster backend;
a `tether.lab.Lab` is one. The session fixtures below deploy on the session's lab, where the
lab's kubelet runs pods of the `tether` image as real `tether` processes with the pod's
ServiceAccount token, so RBAC from deploy/ is exercised for real.
"""

from __future__ import annotations

import pytest

from tether.lab import Lab

from ..e2e.deploy import (  # noqa: F401 — the helpers lab tests import from here
    EXAMPLES,
    ROOT,
    TABLES_NS,
    configmap_versions,
    crd_established,
    deploy_gateway,
    deploy_operator,
    gateway_pods,
    metric,
    metrics,
    operator_pods,
    ready_condition,
    ready_endpoints,
    rule_events,
    table_doc,
)


@pytest.fixture(scope="session")
def tether_operator(lab: Lab) -> Lab:
    """The operator of deploy/operator running on the session's lab."""
    deploy_operator(lab)
    return lab


@pytest.fixture(scope="session")
def tether_gateway(tether_operator: Lab) -> Lab:
    """deploy/gateway on the session lab, Ready."""
    deploy_gateway(tether_operator)
    return tether_operator
