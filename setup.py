"""Build the two small native extensions; everything else lives in pyproject.toml.

Both have pure-Python twins that the unit tests hold them equal to: the Maglev fill kernel
(hashing/maglev/reference.py) and the cookie scan (hashing/keys/parse.py).
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
            "tether.hashing.keys._cookie",
            sources=["operator/tether/hashing/keys/_cookie.c"],
            extra_compile_args=["-O2"],
        ),
    ]
)
