"""Only the compiled part of the build; everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "contracts._memory_tree",
            ["contracts/_memory_tree.c"],
            depends=["contracts/_trie.h"],
            libraries=["crypto"],  # SHA-256 from OpenSSL (Debian: libssl-dev)
            extra_compile_args=["-O2", "-Wall", "-Wno-deprecated-declarations"],
        ),
        Extension(
            "contracts._state_tree",
            ["contracts/_state_tree.c"],
            depends=["contracts/_trie.h"],
            libraries=["crypto"],
            extra_compile_args=["-O2", "-Wall", "-Wno-deprecated-declarations"],
        ),
        Extension(
            "primitives._native",
            ["primitives/_native.c"],
            libraries=["crypto"],
            extra_compile_args=["-O2", "-Wall", "-Wno-deprecated-declarations"],
        ),
    ]
)
