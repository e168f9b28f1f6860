"""Build the small native extensions; everything else lives in pyproject.toml.

Each has a pure-Python twin that the unit tests hold it equal to: the Maglev fill kernel
(hashing/maglev/reference.py), the ring search (RingHash.choose_reference), the cookie scan
(hashing/keys/parse.py) and the gateway's head fast path (gateway/wire/reference.py).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "tether.hashing.maglev._kernel",
            sources=["operator/tether/hashing/maglev/_kernel.c"],
            extra_compile_args=["-O2", "-std=c99"],
        ),
        Extension(
            "tether.hashing.ring._search",
            sources=["operator/tether/hashing/ring/_search.c"],
            extra_compile_args=["-O2", "-std=c99", "-Wall"],
        ),
        Extension(
            "tether.hashing.keys._cookie",
            sources=["operator/tether/hashing/keys/_cookie.c"],
            extra_compile_args=["-O2"],
        ),
        Extension(
            "tether.gateway.wire._wire",
            sources=[
                "operator/tether/gateway/wire/_wire.c",
                "operator/tether/gateway/wire/lane.c",
                "operator/tether/gateway/wire/accesslog.c",
                "operator/tether/gateway/wire/session.c",
                "operator/tether/gateway/wire/seen.c",
            ],
            depends=["operator/tether/gateway/wire/wire.h"],
            extra_compile_args=["-O2", "-std=c99", "-Wall"],
        ),
    ]
)
