"""The end-to-end suite's fixtures: one cluster backend per session, chosen by `--cluster`.

- `lab` (default): the session's lab (tests/conftest.py); this process joins its namespace.
- `kind`: a kind cluster from the offline images (`make kind-images` builds them; a session
  never builds). TETHER_KIND=reuse (+ TETHER_KIND_NAME, default `tether`) reuses a running
  cluster and leaves it up; by default a cluster `pytest-<pid>` is created and deleted.

A scenario only one backend can run carries `@pytest.mark.only_on("lab"|"kind")` with the
reason in its docstring; the other backend's session deselects it (it is listed as
deselected, never skipped). A backend that cannot start fails every test with the reason.
"""

from __future__ import annotations

import contextlib
import os

import pytest

from ..conftest import fresh_namespace
from .deploy import deploy_gateway, deploy_operator


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    backend = config.getoption("--cluster")
    keep, drop = [], []
    for item in items:
        only = item.get_closest_marker("only_on")
        (drop if only and backend not in only.args else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


class KindUnavailable(RuntimeError):
    """The kind cluster needed by the suite could not be started."""


@contextlib.contextmanager
def session_kind():
    """Yield a running kind cluster with tether's images loaded (see module doc)."""
    from tether.kind import engine, images
    from tether.kind import versions as v
    from tether.kind.cluster import KindCluster
    from tether.lab import build

    reuse = os.environ.get("TETHER_KIND", "").lower() == "reuse"
    name = os.environ.get("TETHER_KIND_NAME") or ("tether" if reuse else f"pytest-{os.getpid()}")
    try:
        engine.ensure_docker()
        missing = [
            r
            for r in (images.NODE_IMAGE, v.TETHER_IMAGE, v.HTTPBIN_IMAGE)
            if images.image_inputs(r) is None
        ]
        if missing:
            raise KindUnavailable(f"images missing: {missing}; run `make kind-images`")
        cluster = KindCluster(name, kubectl=build.bin_dir() / "kubectl")
        started = False
        if not (reuse and cluster.status()["up"]):
            cluster.up(images.NODE_IMAGE, "offline")
            started = True
        cluster.load(v.TETHER_IMAGE, v.HTTPBIN_IMAGE)
    except KindUnavailable:
        raise
    except Exception as e:
        raise KindUnavailable(f"the kind cluster {name!r} could not start: {e}") from e
    try:
        yield cluster
    finally:
        if started and not reuse:
            cluster.down()


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest):
    """The session's cluster backend: a `Lab` or a `KindCluster` (see module doc)."""
    if request.config.getoption("--cluster") == "lab":
        yield request.getfixturevalue("lab")
        return
    try:
        with session_kind() as kc:
            yield kc
    except KindUnavailable as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture
def namespace(cluster, request: pytest.FixtureRequest) -> str:
    """A fresh namespace for one test (its `default` ServiceAccount exists); deleted after."""
    with fresh_namespace(cluster, request) as name:
        yield name


@pytest.fixture(scope="session")
def tether_operator(cluster):
    """deploy/operator running on the session's cluster."""
    deploy_operator(cluster)
    return cluster


@pytest.fixture(scope="session")
def tether_gateway(tether_operator):
    """The gateway (deploy/gateway; deploy/kind on kind) on the session's cluster, Ready."""
    deploy_gateway(tether_operator)
    return tether_operator
