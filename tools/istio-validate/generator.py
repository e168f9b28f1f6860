"""Random DestinationRules for the Istio-verdict corpus: every field Istio validates, with values
on both sides of each rule (Istio's CRD filters out what the apiserver would refuse)."""

from __future__ import annotations

import random
from typing import Any

HOSTS = [
    "h",
    "reviews.default.svc.cluster.local",
    "*.example.com",
    "*",
    "bad_host",
    "x.123",
    "UPPER.Case.io",
    "a" * 64,
    "*-suffix.io",
    "1.2.3.4",
    "svc.",
    "a..b",
    "",
]
NAMES = ["v1", "v2", "v1", "", "V1", "v1.0", "bad_name", "a" * 64, "x"]
LABEL_KEYS = ["app", "version", "example.com/tier", "bad key", "-x", "a" * 64, "x/y/z"]
LABEL_VALUES = ["v1", "", "v 1", "-bad", "ok.value", "a" * 70]
DURATIONS = [
    "1s",
    "10ms",
    "1.5s",
    "1.0005s",
    "0.5ms",
    "90m",
    "1h30m",
    "100us",
    "0s",
    "-5s",
    "-0.5ms",
    "2562047h",
    "abc",
    "5",
    "1d",
    "",
    ".5s",
    "1e3s",
]
TTLS = ["0s", "10s", "-5s", "1.5s", "0.2ms", "abc", "5", "1d", "3600s", ""]
TABLE_SIZES = [
    0,
    1,
    2,
    3,
    4,
    7,
    9,
    25,
    65537,
    65536,
    1000003,
    4999999,
    5000011,
    5000012,
    2305843009213693951,
    4294967311,
    4294967297,
]
RING_SIZES = [0, 1, 1024, 65536, 8388608, 8388609]
INT32S = [0, 5, 100, -1, 2147483647, 2147483648, -2147483648, -2147483649, 3000000000]
PERCENTS = [0, 10, 100, 101, -1, 150]
REGIONS = ["us-east", "us-west", "us-east/zone1", "*", "us-*", "", "eu/z/s"]
PRIORITY_LABELS = [
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "topology.istio.io/subzone",
    "network",
    "custom/label",
]
EXPORTS = [".", "*", "default", "other", "~", "Bad_ns", "", "default"]
TLS_MODES = ["DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"]
CREDENTIALS = [
    "",
    "secret",
    "configmap://default/ca",
    "configmap://other/ca",
    "configmap://x",
    "configmap:///n",
    "configmap://default/",
    "kubernetes://ns/s",
]
TUNNEL_HOSTS = [
    "",
    "proxy.example.com",
    "10.0.0.1",
    "::1",
    "fe80::1%eth0",
    "bad_host",
    "1.2.3",
    "x.123",
]


def _maybe(rng: random.Random, p: float = 0.5) -> bool:
    return rng.random() < p


def _some(rng: random.Random, fields: dict[str, Any], p: float = 0.4) -> dict[str, Any]:
    """A random subset of ``fields`` (callables are drawn only when picked)."""
    return {k: (v() if callable(v) else v) for k, v in fields.items() if _maybe(rng, p)}


def _consistent_hash(rng: random.Random) -> dict[str, Any]:
    ch: dict[str, Any] = {}
    key = rng.choice(["header", "cookie", "ip", "query", None])
    if key == "header":
        ch["httpHeaderName"] = rng.choice(["x-user", ""])
    elif key == "cookie":
        cookie: dict[str, Any] = {"name": rng.choice(["session", ""])}
        cookie |= _some(rng, {"path": "/", "ttl": lambda: rng.choice(TTLS)})
        if _maybe(rng, 0.3):
            cookie["attributes"] = [
                {"name": rng.choice(["Secure", "SameSite", ""]), "value": rng.choice(["", "Lax"])}
                for _ in range(rng.randint(1, 3))
            ]
        ch["httpCookie"] = cookie
    elif key == "ip":
        ch["useSourceIp"] = rng.choice([True, False])
    elif key == "query":
        ch["httpQueryParameterName"] = rng.choice(["user", ""])
    algorithm = rng.choice(["ring", "maglev", None, None])
    if algorithm == "ring":
        ch["ringHash"] = _some(rng, {"minimumRingSize": lambda: rng.choice(RING_SIZES)}, 0.7)
    elif algorithm == "maglev":
        ch["maglev"] = _some(rng, {"tableSize": lambda: rng.choice(TABLE_SIZES)}, 0.9)
    if _maybe(rng, 0.15):
        ch["minimumRingSize"] = rng.choice(RING_SIZES)
    return ch


def _failover(rng: random.Random) -> list[dict[str, str]]:
    return [
        {"from": rng.choice(REGIONS), "to": rng.choice(REGIONS)} for _ in range(rng.randint(1, 2))
    ]


def _locality(rng: random.Random) -> dict[str, Any]:
    def distribute() -> list[dict[str, Any]]:
        out = []
        for _ in range(rng.randint(1, 2)):
            to = {rng.choice([*REGIONS[:3], "us-east/zone2/*", "eu/*"]): rng.choice([100, 50, 0])}
            out.append({"from": rng.choice(REGIONS), "to": to})
        return out

    return _some(
        rng,
        {
            "distribute": distribute,
            "failover": lambda: _failover(rng),
            "failoverPriority": lambda: rng.sample(PRIORITY_LABELS, rng.randint(1, 2)),
            "enabled": lambda: rng.choice([True, False]),
        },
    )


def _zone_aware(rng: random.Random) -> dict[str, Any]:
    return _some(
        rng,
        {
            "enabled": lambda: rng.choice([True, False]),
            "failover": lambda: _failover(rng),
            "failoverPriority": lambda: rng.sample(PRIORITY_LABELS, rng.randint(1, 2)),
            "minClusterSize": lambda: rng.choice([1, 5]),
        },
    )


def _load_balancer(rng: random.Random) -> dict[str, Any]:
    lb: dict[str, Any] = {}
    policy = rng.choice(["simple", "consistentHash", None])
    if policy == "simple":
        lb["simple"] = rng.choice(
            ["UNSPECIFIED", "LEAST_CONN", "RANDOM", "PASSTHROUGH", "ROUND_ROBIN", "LEAST_REQUEST"]
        )
    elif policy == "consistentHash":
        lb["consistentHash"] = _consistent_hash(rng)
    lb |= _some(
        rng,
        {
            "localityLbSetting": lambda: _locality(rng),
            "zoneAwareLbSetting": lambda: _zone_aware(rng),
            "warmupDurationSecs": lambda: rng.choice(DURATIONS),
            "warmup": lambda: _some(
                rng,
                {
                    "duration": lambda: rng.choice(DURATIONS),
                    "minimumPercent": lambda: rng.choice([10, 100, 50.5]),
                    "aggression": lambda: rng.choice([0, 1, 2.5]),
                },
                0.6,
            ),
        },
        0.2,
    )
    return lb


def _connection_pool(rng: random.Random) -> dict[str, Any]:
    def tcp() -> dict[str, Any]:
        return _some(
            rng,
            {
                "maxConnections": lambda: rng.choice(INT32S),
                "connectTimeout": lambda: rng.choice(DURATIONS),
                "tcpKeepalive": lambda: _some(
                    rng,
                    {
                        "probes": lambda: rng.choice([0, 3]),
                        "time": lambda: rng.choice(DURATIONS),
                        "interval": lambda: rng.choice(DURATIONS),
                    },
                ),
                "maxConnectionDuration": lambda: rng.choice(DURATIONS),
                "idleTimeout": lambda: rng.choice(DURATIONS),
            },
        )

    def http() -> dict[str, Any]:
        return _some(
            rng,
            {
                "http1MaxPendingRequests": lambda: rng.choice(INT32S),
                "http2MaxRequests": lambda: rng.choice(INT32S),
                "maxRequestsPerConnection": lambda: rng.choice(INT32S),
                "maxRetries": lambda: rng.choice(INT32S),
                "idleTimeout": lambda: rng.choice(DURATIONS),
                "h2UpgradePolicy": lambda: rng.choice(["DEFAULT", "DO_NOT_UPGRADE", "UPGRADE"]),
                "useClientProtocol": lambda: rng.choice([True, False]),
                "maxConcurrentStreams": lambda: rng.choice(INT32S),
                "http2KeepAlive": lambda: _some(
                    rng,
                    {
                        "interval": lambda: rng.choice(DURATIONS),
                        "timeout": lambda: rng.choice(DURATIONS),
                    },
                    0.6,
                ),
            },
            0.3,
        )

    return _some(rng, {"tcp": tcp, "http": http}, 0.6)


def _outlier(rng: random.Random) -> dict[str, Any]:
    return _some(
        rng,
        {
            "consecutiveErrors": lambda: rng.choice(INT32S),
            "splitExternalLocalOriginErrors": lambda: rng.choice([True, False]),
            "consecutiveLocalOriginFailures": lambda: rng.choice([0, 5]),
            "consecutiveGatewayErrors": lambda: rng.choice([0, 5]),
            "consecutive5xxErrors": lambda: rng.choice([0, 5]),
            "interval": lambda: rng.choice(DURATIONS),
            "baseEjectionTime": lambda: rng.choice(DURATIONS),
            "maxEjectionPercent": lambda: rng.choice(PERCENTS + INT32S),
            "minHealthPercent": lambda: rng.choice(PERCENTS),
        },
        0.3,
    )


def _tls(rng: random.Random) -> dict[str, Any]:
    return _some(
        rng,
        {
            "mode": lambda: rng.choice(TLS_MODES),
            "clientCertificate": "/etc/cert.pem",
            "privateKey": "/etc/key.pem",
            "caCertificates": "/etc/ca.pem",
            "credentialName": lambda: rng.choice(CREDENTIALS),
            "subjectAltNames": lambda: rng.choice([["a.example.com"], []]),
            "sni": "a.example.com",
            "insecureSkipVerify": lambda: rng.choice([True, False]),
            "caCrl": "/etc/crl.pem",
        },
        0.4,
    )


def _port_entry(rng: random.Random) -> dict[str, Any]:
    entry = _some(
        rng,
        {
            "port": lambda: _some(rng, {"number": lambda: rng.choice([80, 0, 65536, 8080])}, 0.9),
            "loadBalancer": lambda: _load_balancer(rng),
            "connectionPool": lambda: _connection_pool(rng),
            "outlierDetection": lambda: _outlier(rng),
            "tls": lambda: _tls(rng),
        },
        0.5,
    )
    return entry


def traffic_policy(rng: random.Random) -> dict[str, Any]:
    """A random TrafficPolicy, sometimes empty, sometimes with every part."""
    return _some(
        rng,
        {
            "loadBalancer": lambda: _load_balancer(rng),
            "connectionPool": lambda: _connection_pool(rng),
            "outlierDetection": lambda: _outlier(rng),
            "tls": lambda: _tls(rng),
            "portLevelSettings": lambda: [_port_entry(rng) for _ in range(rng.randint(0, 3))],
            "tunnel": lambda: _some(
                rng,
                {
                    "protocol": lambda: rng.choice(["CONNECT", "POST", "GET", ""]),
                    "targetHost": lambda: rng.choice(TUNNEL_HOSTS),
                    "targetPort": lambda: rng.choice([0, 443, 65536, 8080]),
                },
                0.8,
            ),
            "proxyProtocol": lambda: _some(rng, {"version": lambda: rng.choice(["V1", "V2"])}),
            "retryBudget": lambda: _some(
                rng,
                {
                    "percent": lambda: rng.choice([0, 20.5, 100]),
                    "minRetryConcurrency": lambda: rng.choice([0, 10]),
                    "budgetInterval": lambda: rng.choice(DURATIONS),
                },
            ),
        },
        0.35,
    )


def random_rule(rng: random.Random, index: int) -> dict[str, Any]:
    """One DestinationRule document (the apiserver's CRD check decides whether it is kept)."""
    spec: dict[str, Any] = {"host": rng.choice(HOSTS)}
    if _maybe(rng, 0.85):
        spec["trafficPolicy"] = traffic_policy(rng)
    if _maybe(rng, 0.35):
        subsets = []
        for _ in range(rng.randint(1, 3)):
            subset: dict[str, Any] = {"name": rng.choice(NAMES)}
            if _maybe(rng, 0.5):
                subset["labels"] = {
                    rng.choice(LABEL_KEYS): rng.choice(LABEL_VALUES)
                    for _ in range(rng.randint(1, 2))
                }
            if _maybe(rng, 0.4):
                subset["trafficPolicy"] = traffic_policy(rng)
            subsets.append(subset)
        spec["subsets"] = subsets
    if _maybe(rng, 0.2):
        spec["exportTo"] = rng.sample(EXPORTS, rng.randint(1, 3))
    if _maybe(rng, 0.1):
        labels = {rng.choice(["app", "*x", "tier"]): rng.choice(["a", "b*", "web"])}
        spec["workloadSelector"] = {"matchLabels": labels if _maybe(rng, 0.8) else {}}
    return {
        "apiVersion": "networking.istio.io/" + rng.choice(["v1", "v1beta1", "v1alpha3"]),
        "kind": "DestinationRule",
        "metadata": {"name": f"gen-{index}", "namespace": rng.choice(["default", "prod"])},
        "spec": spec,
    }
