"""A small in-memory API server for the operator's writes, with the API's preconditions.

It stands in for ``kopf_io.request``: ConfigMaps in one namespace (create fails if the name
exists, update and delete honour ``resourceVersion``), DestinationRule and BackendLBPolicy
status merge patches (conditional on ``metadata.resourceVersion``), Secrets in that namespace
(as ConfigMaps) and Events. Every change is logged as a watch
event, which a test delivers to the operator's cache when it wants the watch to arrive.
"""

from __future__ import annotations

import copy
import re

import yaml

from tether.k8s import kopf_io

from ..reconcile.cluster_fakes import FIXTURES

NS = "tether-system"
STATUS_PATH = r"/apis/networking.istio.io/\w+/namespaces/([^/]+)/destinationrules/([^/]+)/status"
POLICY_STATUS = (
    r"/apis/gateway.networking.k8s.io/v1alpha2/namespaces/([^/]+)/backendlbpolicies/([^/]+)/status"
)


def _err(cls, code: int, message: str):
    return cls({"code": code, "message": message}, status=code, headers={})


class FakeApi:
    def __init__(self) -> None:
        self.rv = 100
        self.configmaps: dict[str, dict] = {}
        self.rules: dict[tuple[str, str], dict] = {}
        self.policies: dict[tuple[str, str], dict] = {}
        self.secrets: dict[str, dict] = {}
        self.secret_watch: list[tuple[str, dict]] = []
        self.events: list[dict] = []
        self.writes: list[tuple[str, str]] = []  # (verb, name)
        self.watch: list[tuple[str, dict]] = []  # ConfigMap events not yet delivered
        self.watch_status: list[dict] = []  # objects whose status tether patched

    def _next(self) -> str:
        self.rv += 1
        return str(self.rv)

    async def request(self, settings, method, path, payload=None, **_):
        if m := re.fullmatch(rf"/api/v1/namespaces/{NS}/configmaps(?:/([^/]+))?", path):
            return self._configmap(method, m.group(1), payload)
        if m := re.fullmatch(STATUS_PATH, path):
            return self._status(self.rules, m.group(1), m.group(2), payload)
        if m := re.fullmatch(POLICY_STATUS, path):
            return self._status(self.policies, m.group(1), m.group(2), payload)
        if m := re.fullmatch(rf"/api/v1/namespaces/{NS}/secrets(?:/([^/]+))?", path):
            return self._secret(method, m.group(1), payload)
        if re.fullmatch(r"/api/v1/namespaces/[^/]+/events", path):
            self.events.append(payload)
            return payload
        raise AssertionError(f"unexpected {method} {path}")

    def _configmap(self, method, name, body):
        if method == "post":
            name = body["metadata"]["name"]
            if name in self.configmaps:
                raise _err(kopf_io.Conflict, 409, "already exists")
            return self._store("ADDED", name, body)
        have = self.configmaps.get(name)
        if have is None:
            raise _err(kopf_io.NotFound, 404, "not found")
        if method == "put":
            if body["metadata"].get("resourceVersion") != have["metadata"]["resourceVersion"]:
                raise _err(kopf_io.Conflict, 409, "the object has been modified")
            return self._store("MODIFIED", name, body)
        if method == "delete":
            wanted = ((body or {}).get("preconditions") or {}).get("resourceVersion")
            if wanted and wanted != have["metadata"]["resourceVersion"]:
                raise _err(kopf_io.Conflict, 409, "precondition failed")
            return self.remove(name)
        raise AssertionError(method)

    def _store(self, kind: str, name: str, body: dict) -> dict:
        obj = copy.deepcopy(body)
        obj["metadata"]["resourceVersion"] = self._next()
        self.configmaps[name] = obj
        self.writes.append(("create" if kind == "ADDED" else "update", name))
        self.watch.append((kind, copy.deepcopy(obj)))
        return copy.deepcopy(obj)

    def remove(self, name: str) -> dict:
        obj = self.configmaps.pop(name)
        self.writes.append(("delete", name))
        obj = {**obj, "metadata": {**obj["metadata"], "resourceVersion": self._next()}}
        self.watch.append(("DELETED", obj))
        return {"kind": "Status", "status": "Success"}

    def edit(self, name: str, text: str) -> None:
        """A user edits the table by hand (kubectl edit)."""
        obj = copy.deepcopy(self.configmaps[name])
        obj["data"]["table.json"] = text
        obj["metadata"]["resourceVersion"] = self._next()
        self.configmaps[name] = obj
        self.watch.append(("MODIFIED", copy.deepcopy(obj)))

    def _secret(self, method, name, body):
        obj = copy.deepcopy(body)
        if method == "post":
            name = body["metadata"]["name"]
            if name in self.secrets:
                raise _err(kopf_io.Conflict, 409, "already exists")
        else:
            have = self.secrets.get(name)
            if have is None:
                raise _err(kopf_io.NotFound, 404, "not found")
            if body["metadata"].get("resourceVersion") != have["metadata"]["resourceVersion"]:
                raise _err(kopf_io.Conflict, 409, "the object has been modified")
        obj["metadata"]["resourceVersion"] = self._next()
        self.secrets[name] = obj
        self.writes.append(("secret-" + method, name))
        self.secret_watch.append(("ADDED" if method == "post" else "MODIFIED", copy.deepcopy(obj)))
        return copy.deepcopy(obj)

    def _status(self, store, ns, name, body):
        rule = store.get((ns, name))
        if rule is None:
            raise _err(kopf_io.NotFound, 404, "not found")
        wanted = (body.get("metadata") or {}).get("resourceVersion")
        if wanted and wanted != rule["metadata"]["resourceVersion"]:
            raise _err(kopf_io.Conflict, 409, "the object has been modified")
        rule["status"] = {**(rule.get("status") or {}), **body["status"]}
        rule["metadata"]["resourceVersion"] = self._next()
        self.writes.append(("status", f"{ns}/{name}"))
        self.watch_status.append(copy.deepcopy(rule))
        return copy.deepcopy(rule)

    def deliver(self, informer) -> None:
        """The watch catches up: every pending ConfigMap event reaches the cache."""
        pending, self.watch = self.watch, []
        for kind, obj in pending:
            informer.handle(kind, obj)

    def list_configmaps(self) -> list[dict]:
        return [copy.deepcopy(o) for o in self.configmaps.values()]


def service(name="httpbin", ns="default", port=8000, **annotations) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": f"uid-{ns}-{name}",
            "resourceVersion": "1",
            "annotations": annotations,
        },
        "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": port}]},
    }


def endpointslice(service="httpbin", ns="default", n=3, rv="1", prefix=None, ip="10.244.0"):
    prefix = prefix or service
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{service}-x",
            "namespace": ns,
            "resourceVersion": rv,
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [
            {
                "addresses": [f"{ip}.{i + 2}"],
                "conditions": {"ready": True},
                "targetRef": {"kind": "Pod", "name": f"{prefix}-{i}"},
            }
            for i in range(n)
        ],
    }


def seed_rule(rv="1") -> dict:
    obj = yaml.safe_load((FIXTURES / "seed.yaml").read_text())
    obj["metadata"].update(resourceVersion=rv, uid="uid-dr", generation=1)
    return obj
