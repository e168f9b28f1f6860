"""What `tether kind up` hands to `kind create cluster`."""

from __future__ import annotations

import json

from tether.kind.config import GATEWAY_NODEPORT, GATEWAY_TLS_NODEPORT, ClusterConfig
from tether.kind.images import CNI_CONFLIST, apt_mirror


def test_gateway_port_is_published_on_loopback_only():
    cfg = json.loads(ClusterConfig("t", 30123, restrict_oom=False).render())
    (mapping,) = cfg["nodes"][0]["extraPortMappings"]
    assert mapping == {"containerPort": GATEWAY_NODEPORT, "hostPort": 30123,
                       "listenAddress": "127.0.0.1", "protocol": "TCP"}  # fmt: skip
    assert cfg["networking"]["apiServerAddress"] == "127.0.0.1"


def test_tls_port_is_published_on_loopback_when_given():
    cfg = json.loads(ClusterConfig("t", 30123, False, tls_port=30124).render())
    plain, tls = cfg["nodes"][0]["extraPortMappings"]
    assert plain["hostPort"] == 30123
    assert tls == {"containerPort": GATEWAY_TLS_NODEPORT, "hostPort": 30124,
                   "listenAddress": "127.0.0.1", "protocol": "TCP"}  # fmt: skip


def test_restrict_oom_score_adj_only_when_the_machine_needs_it():
    assert "containerdConfigPatches" not in json.loads(ClusterConfig("t", 1, False).render())
    patch = json.loads(ClusterConfig("t", 1, True).render())["containerdConfigPatches"]
    assert "restrict_oom_score_adj = true" in patch[0]


def test_static_cni_matches_kinds_default_pod_subnet():
    (rng,) = CNI_CONFLIST["plugins"][0]["ipam"]["ranges"]
    assert rng == [{"subnet": "10.244.0.0/24"}]


def test_apt_mirror_is_a_url():
    assert apt_mirror().startswith(("http://", "https://"))
