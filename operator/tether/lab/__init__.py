"""tether.lab — a real Kubernetes control plane with real pods on one machine, no Docker.

`Lab(name)` starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler (pinned
versions built from the Go module proxy, see `build`) and a loopback kubelet (`kubelet`)
inside a private network namespace. Imports here stay light: the kubelet's aiohttp code loads
only in the kubelet process.
"""

from tether.lab.build import BuildError, ensure_binaries
from tether.lab.lab import Lab, LabError
from tether.lab.netns import NetnsError

__all__ = ["BuildError", "Lab", "LabError", "NetnsError", "ensure_binaries"]
