"""Prometheus metrics of the operator, served on ``--metrics-port`` at ``/metrics``."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

REBUILDS = Counter(
    "tether_operator_table_rebuilds_total",
    "Tables whose content changed and were written to their ConfigMap.",
    ["algorithm"],
)
REBUILD_SECONDS = Histogram(
    "tether_operator_rebuild_duration_seconds",
    "Time to plan one service (endpoints, policy, table build, encoding).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
ENDPOINTS = Gauge(
    "tether_operator_table_endpoints",
    "Ready endpoints hashed into each published table.",
    ["table"],
)
KEYS_MOVED = Gauge(
    "tether_operator_keys_moved_fraction",
    "Fraction of the key space that moved to another endpoint on the table's last change.",
    ["table"],
)
EVENT_TO_PUBLISH = Histogram(
    "tether_operator_event_to_publish_seconds",
    "From the first event that dirtied a service to its ConfigMap write (incl. coalescing).",
    buckets=(0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0),
)
WRITES = Counter(
    "tether_operator_configmap_writes_total",
    "ConfigMap API writes by operation.",
    ["op"],
)
INVALID_RULES = Gauge(
    "tether_operator_invalid_destinationrules",
    "DestinationRules currently rejected by validation.",
)
SYNCS = Counter(
    "tether_operator_syncs_total",
    "Completed reconciles (each covers one coalesced batch of dirty services).",
)
RECONCILE_ERRORS = Counter(
    "tether_operator_reconcile_errors_total",
    "Flushes that failed and were retried.",
)

LEADER = Gauge(
    "tether_operator_leader",
    "1 while this replica leads and writes (peering verdict and caches synced), else 0.",
)
CONFLICTS = Counter(
    "tether_operator_write_conflicts_total",
    "Writes refused because the live object changed since the cache saw it (409/404).",
)
REPAIRS = Counter(
    "tether_operator_table_repairs_total",
    "Tables rewritten because the live ConfigMap differed from the desired one although the "
    "document had not changed (edited, stale or written by another replica).",
)
RESYNCS = Counter(
    "tether_operator_resyncs_total",
    "Full resyncs started (taking over, and every --resync-seconds).",
)
EVENTS_DROPPED = Counter(
    "tether_operator_events_dropped_total",
    "Kubernetes Events dropped because the posting queue was full (a burst).",
)
PENDING = Gauge(
    "tether_operator_pending_keys",
    "Services and rules waiting to be reconciled (events and resyncs).",
)
CACHED = Gauge(
    "tether_operator_cached_objects",
    "Objects in the operator's watch caches, by kind.",
    ["kind"],
)

SESSION_SERVICES = Gauge(
    "tether_operator_session_services",
    "Services whose tables carry persistent sessions (Istio label or BackendLBPolicy).",
)
POLICY_STATUS_WRITES = Counter(
    "tether_operator_policy_status_writes_total",
    "BackendLBPolicy status patches (written only when the status changed).",
)
KEY_WRITES = Counter(
    "tether_operator_session_key_writes_total",
    "Writes of the session-signing key Secret, by action (create, rotate, prune).",
    ["action"],
)
KEYRING_INVALID = Gauge(
    "tether_operator_session_keyring_invalid",
    "1 while the key Secret holds something that is not a key ring (left alone), else 0.",
)


def serve(port: int, addr: str = "0.0.0.0") -> None:
    """Start the /metrics HTTP server in a daemon thread (no-op when port is 0)."""
    if port:
        start_http_server(port, addr=addr)
