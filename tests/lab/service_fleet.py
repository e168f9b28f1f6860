"""Many Services backed by hand-made EndpointSlices (no pods), created fast and bounded.

Each Service ``svc-<i>`` is headless (no ClusterIP to allocate, no selector, so no controller
touches its slices) with one TCP port; its EndpointSlice ``svc-<i>-x`` lists ``endpoints``
ready addresses that exist nowhere (the operator only reads them). Objects are POSTed as raw
JSON by a small pool of threads (``workers`` requests in flight), each of which joins the lab's
network namespace first when the calling process is not inside it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import urllib3
import yaml

from tether.lab import Lab, netns

T = TypeVar("T")

MANAGED_BY = "tether-fleet"


def service_name(i: int) -> str:
    return f"svc-{i}"


def service_doc(ns: str, i: int) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": service_name(i), "namespace": ns},
        "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 8000}]},
    }


def address(g: int) -> str:
    """The g-th fleet endpoint address (10.100.0.0 onwards: ordinary, reachable nowhere)."""
    return f"10.{100 + g // 65536}.{g // 256 % 256}.{g % 256}"


def slice_doc(ns: str, i: int, endpoints: int) -> dict:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{service_name(i)}-x",
            "namespace": ns,
            "labels": {
                "kubernetes.io/service-name": service_name(i),
                "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
            },
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": [address(i * 1000 + e)], "conditions": {"ready": True}}
            for e in range(endpoints)
        ],
    }


class RawApi:
    """Token + CA from the lab's admin kubeconfig; JSON over a pooled HTTPS connection."""

    def __init__(self, kubeconfig: Path, workers: int) -> None:
        cfg = yaml.safe_load(Path(kubeconfig).read_text())
        cluster = cfg["clusters"][0]["cluster"]
        self.server = cluster["server"].rstrip("/")
        self.headers = {
            "Authorization": f"Bearer {cfg['users'][0]['user']['token']}",
            "Content-Type": "application/json",
        }
        self.http = urllib3.PoolManager(
            maxsize=workers, ca_certs=cluster["certificate-authority"], retries=False
        )

    def stream(self, path: str, on_event: Callable[[dict], None], stop: threading.Event) -> None:
        """Watch ``path`` (a list URL) from now on; ``on_event`` gets each decoded event."""
        _, listing = self.call("GET", f"{path}{'&' if '?' in path else '?'}limit=1")
        rv = listing["metadata"]["resourceVersion"]
        sep = "&" if "?" in path else "?"
        while not stop.is_set():
            url = f"{self.server}{path}{sep}watch=1&resourceVersion={rv}&timeoutSeconds=60"
            resp = self.http.request("GET", url, headers=self.headers, preload_content=False)
            buf = b""
            for chunk in resp.stream(65536):
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    event = json.loads(line)
                    rv = event["object"]["metadata"].get("resourceVersion", rv)
                    on_event(event)
                if stop.is_set():
                    break
            resp.release_conn()

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else None
        resp = self.http.request(method, self.server + path, body=data, headers=self.headers)
        return resp.status, (json.loads(resp.data) if resp.data else {})


def _path(doc: dict, name: str | None = None) -> str:
    ns = doc["metadata"]["namespace"]
    base = "/api/v1" if doc["apiVersion"] == "v1" else f"/apis/{doc['apiVersion']}"
    plural = "services" if doc["kind"] == "Service" else "endpointslices"
    return f"{base}/namespaces/{ns}/{plural}" + (f"/{name}" if name else "")


class Fleet:
    """Creates and changes the Services and slices of one namespace on one lab."""

    def __init__(self, lab: Lab, ns: str, workers: int = 8) -> None:
        self.lab, self.ns, self.workers = lab, ns, workers
        self.api = RawApi(lab.kubeconfig, workers)
        inside = netns.current_inode() == netns.inode(lab.netns)
        target = netns.path_of(lab.netns)
        self.join: Callable[[], None] = (lambda: None) if inside else (lambda: netns.setns(target))
        self._pool = ThreadPoolExecutor(workers, initializer=self.join)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._pool.shutdown()

    def inside(self, fn: Callable[..., T], *args) -> T:
        """Run ``fn(*args)`` on a thread inside the lab's network namespace (pod IPs answer)."""
        return self._pool.submit(fn, *args).result()

    def _each(self, fn: Callable[[dict], tuple[int, dict]], docs: Iterable[dict]) -> None:
        for status, body in self._pool.map(fn, docs):
            if status >= 300 and status != 409:
                raise RuntimeError(f"API answered {status}: {body.get('message')}")

    def create(self, n: int, endpoints: int, start: int = 0) -> float:
        """Create Services start..start+n-1 with their slices; returns seconds taken."""
        t0 = time.monotonic()
        self._each(lambda d: self.api.call("POST", _path(d), d),
                   (service_doc(self.ns, i) for i in range(start, start + n)))  # fmt: skip
        self._each(lambda d: self.api.call("POST", _path(d), d),
                   (slice_doc(self.ns, i, endpoints) for i in range(start, start + n)))  # fmt: skip
        return time.monotonic() - t0

    def set_endpoints(self, indices: Iterable[int], endpoints: int) -> None:
        """Replace the slices of these Services with ``endpoints`` ready addresses."""

        def put(doc: dict) -> tuple[int, dict]:
            name = doc["metadata"]["name"]
            status, cur = self.api.call("GET", _path(doc, name))
            if status != 200:
                return status, cur
            doc["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"]
            return self.api.call("PUT", _path(doc, name), doc)

        self._each(put, (slice_doc(self.ns, i, endpoints) for i in indices))
