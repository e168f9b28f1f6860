"""Build the one native extension (Maglev fill kernel); everything else lives in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "tether.hashing.maglev._kernel",
            sources=["operator/tether/hashing/maglev/_kernel.c"],
            extra_compile_args=["-O2", "-std=c99"],
        )
    ]
)
