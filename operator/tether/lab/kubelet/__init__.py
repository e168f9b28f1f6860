"""The lab's loopback kubelet (`python -m tether.lab.kubelet --state DIR`).

It runs as its own process inside the lab's network namespace, registers Ready nodes, and runs
the pods bound to them: an httpbin-like backend for any image, the real `tether` process for
tether's image. See `agent.Kubelet`.
"""
