"""The node keeps glibc's malloc from holding on to freed memory (runner.tune_allocator)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from node.runner import MALLOC_ENVIRONMENT

# Frees a 20 MiB block (which, by default, raises malloc's mapping and trimming thresholds
# to 20 and 40 MiB), then makes and frees thirty 1 MiB blocks, and prints how much of
# those 30 MiB the process still holds.
_HELD_AFTER_FREE = """
import sys
from node.runner import tune_allocator
print(tune_allocator() if sys.argv[1] == "tuned" else False)
def anonymous_mib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) // 1024
big = b"x" * (20 << 20)
del big
before = anonymous_mib()
blocks = [b"y" * (1 << 20) for _ in range(30)]
del blocks
print(anonymous_mib() - before)
"""

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.confstr("CS_GNU_LIBC_VERSION") is None,
    reason="glibc's malloc on Linux",
)


def _held_mib(mode: str) -> tuple[bool, int]:
    environment = {key: value for key, value in os.environ.items() if key not in MALLOC_ENVIRONMENT}
    result = subprocess.run(
        [sys.executable, "-c", _HELD_AFTER_FREE, mode],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=environment,
    )
    tuned, held = result.stdout.split()
    return tuned == "True", int(held)


def test_freed_blocks_go_back_to_the_system_once_tuned():
    tuned, held = _held_mib("default")
    assert not tuned and held >= 26  # glibc's default keeps them
    tuned, held = _held_mib("tuned")
    assert tuned and held <= 4


def test_an_operators_malloc_settings_are_left_alone(monkeypatch):
    from node.runner import tune_allocator

    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert tune_allocator() is False
