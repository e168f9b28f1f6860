"""Every image an offline kind cluster needs, built from Debian packages, Go modules and PyPI.

Each image carries the label `tether.kind.inputs` = a digest of what it was built from; an image
whose label matches is reused, so a warm build does nothing. No step pulls from a registry:
base images are local (`debootstrap` + `docker import`), and every `FROM` names one of them.
The builders live in `bases` (Debian, Python, kind's base) and `nodeimage` (the node's images,
the node image, go-httpbin, tether:dev); this module is their single entry point.
"""

from tether.kind.bases import apt_mirror, debian_base, kind_base, python_base
from tether.kind.imagetools import (
    BASE_IMAGE,
    DEBIAN_IMAGE,
    NODE_IMAGE,
    PYTHON_IMAGE,
    image_inputs,
    image_size,
)
from tether.kind.nodeimage import (
    CNI_CONFLIST,
    component_images,
    httpbin_image,
    node_image,
    tether_image,
)

__all__ = [
    "BASE_IMAGE",
    "CNI_CONFLIST",
    "DEBIAN_IMAGE",
    "NODE_IMAGE",
    "PYTHON_IMAGE",
    "apt_mirror",
    "component_images",
    "debian_base",
    "httpbin_image",
    "image_inputs",
    "image_size",
    "kind_base",
    "node_image",
    "python_base",
    "tether_image",
]
