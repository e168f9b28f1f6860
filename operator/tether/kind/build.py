"""`build_all`: every image of the offline kind tier, in dependency order, cached by inputs.

The caller passes the folder of the lab's control-plane binaries and the lab build's version
ldflags (kube-apiserver,
kube-controller-manager, kube-scheduler, kubectl, etcd from `tools/k8s` and `tools/etcd`), so
the kind node runs the very binaries the lab runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tether.kind import gobuild, images
from tether.kind import versions as v

Progress = Callable[[str], None]


def build_all(
    lab_bins: Path,
    ldflags: str,
    say: Progress = lambda _m: None,
    tether: bool = True,
    node: bool = True,
) -> dict:
    """Build (or reuse) every image; return {'images': [...], 'seconds': {...}, ...}.

    Invariant on return: the node image (if `node`), go-httpbin's image and (if `tether`)
    tether:dev exist locally with inputs matching this checkout; nothing was pulled.
    """
    seconds: dict[str, float] = {}

    def timed(name: str, fn, *args):
        started = time.monotonic()
        result = fn(*args)
        seconds[name] = round(time.monotonic() - started, 1)
        return result

    go_bins = timed("go binaries", gobuild.ensure_go_binaries, ldflags, say)
    debian = timed("debian base", images.debian_base, say)
    python = timed("python base", images.python_base, debian, say)
    built = [v.HTTPBIN_IMAGE]
    if node:  # offline mode; pull mode takes kindest/node instead
        base = timed("kind base", images.kind_base, debian, say)
        comps = timed("component images", images.component_images, lab_bins, go_bins, base, say)
        timed("node image", images.node_image, base, go_bins, lab_bins, comps, say)
        built.insert(0, images.NODE_IMAGE)
    timed("go-httpbin image", images.httpbin_image, go_bins, say)
    if tether:
        timed("tether image", images.tether_image, python, say)
        built.append(v.TETHER_IMAGE)
    return {"images": built, "seconds": seconds, "go_bins": str(go_bins), "python": python}
