"""Pinned versions of everything the offline kind tier builds (one place to bump them)."""

from __future__ import annotations

KIND = "v0.33.0"  # sigs.k8s.io/kind CLI
K8S = "v1.34.4"  # kubelet, kubeadm, kube-proxy here; the rest comes from the lab's build
ETCD_TAG = "3.6.5-0"  # the tag kubeadm v1.34.4 asks for (the binary is the lab's etcd)
PAUSE_TAGS = ("3.10.1", "3.10")  # kubeadm's pause, and the sandbox image kind's containerd names
COREDNS = "v1.12.1"  # kubeadm v1.34.4's CoreDNS
HTTPBIN = "v2.15.0"  # github.com/mccutchen/go-httpbin/v2, deploy/examples/httpbin.yaml's image
DEBIAN = "bookworm"
PYTHON = "3.11"

HTTPBIN_IMAGE = f"docker.io/mccutchen/go-httpbin:{HTTPBIN}"
TETHER_IMAGE = "tether:dev"  # what deploy/ runs
KINDEST_NODE = f"kindest/node:{K8S}"  # the upstream node image (pull mode)
