"""scripts/profile_node.py's parts that do not need a running chain."""

from __future__ import annotations

import importlib.util
import os
import threading
import time
from pathlib import Path

_SPEC = importlib.util.spec_from_file_location(
    "profile_node", Path(__file__).resolve().parent.parent / "scripts" / "profile_node.py"
)
assert _SPEC is not None and _SPEC.loader is not None
profile_node = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(profile_node)


def _spin(cpu_seconds: float) -> None:
    while time.thread_time() < cpu_seconds:  # a new thread starts at 0
        pass


def test_aggregate_ranks_own_and_inclusive_time_without_the_trunk(tmp_path: Path) -> None:
    raw = tmp_path / "node.raw"
    raw.write_text(
        "process 1;thread (0x1);main (a.py:1);commit (s.py:10);encode (e.py:5) 6\n"
        "process 1;thread (0x1);main (a.py:1);commit (s.py:12) 3\n"
        "process 1;thread (0x1);main (a.py:1);admit (m.py:3) 1\n"
    )
    text = profile_node.aggregate(raw, top=5)
    inclusive, own = text.split("-- own")
    assert "10 samples" in text
    assert "main (a.py)" not in text  # in every sample
    assert " 90.0%  commit (s.py)" in inclusive
    assert " 60.0%  encode (e.py)" in own and " 30.0%  commit (s.py)" in own
    assert " 10.0%  admit (m.py)" in own


def test_process_times_count_this_process_and_its_threads() -> None:
    worker = threading.Thread(target=_spin, args=(0.25,))
    worker.start()
    worker.join()
    times = profile_node.process_times(os.getpid())
    assert os.getpid() in times
    user, system = times["all"]
    assert user + system >= 0.25 - 0.02  # the worker's spin (ended before the read), to a tick
    report = profile_node.thread_report(os.getpid(), {}, times, 1.0)
    assert report.startswith("node %d: main thread" % os.getpid())
