"""node/table_reads.py: LevelDB's tables read with pread, so open tables cost no RSS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from node.table_reads import loaded_leveldb, mmap_limit_address

ROOT = Path(__file__).resolve().parents[2]

# In a fresh process: open a Storage, fill LevelDB past a few table files, read them
# back, and report how many table files are mapped into the process.
_PROBE = """
import json, os, sys
from node import storage
db = storage.Storage(sys.argv[1])._db
for i in range(60_000):
    db.put(b"s%08d" % i, os.urandom(200))
db.compact_range()
assert all(db.get(b"s%08d" % i) is not None for i in range(0, 60_000, 97))
tables = [name for name in os.listdir(sys.argv[1]) if name.endswith(".ldb")]
mapped = [line for line in open("/proc/self/maps") if line.rstrip().endswith(".ldb")]
print(json.dumps({"pread": storage.use_pread(), "open_files": storage.MAX_OPEN_FILES,
                  "tables": len(tables), "mapped": len(mapped)}))
"""

linux_only = pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc")


def _probe(home: Path, **env: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(home)], cwd=ROOT, capture_output=True,
        text=True, timeout=120, env={**os.environ, **env}, check=True,
    )
    return json.loads(done.stdout)


@linux_only
def test_tables_are_read_without_being_mapped(tmp_path: Path) -> None:
    seen = _probe(tmp_path, YUXI_LEVELDB_MMAP="0")
    assert seen["pread"] and seen["open_files"] == 1000
    assert seen["tables"] >= 2 and seen["mapped"] == 0


@linux_only
def test_the_operator_can_keep_mapped_tables_and_the_small_table_cache(tmp_path: Path) -> None:
    seen = _probe(tmp_path, YUXI_LEVELDB_MMAP="1")
    assert not seen["pread"] and seen["open_files"] == 80
    assert seen["mapped"] >= 2  # what the switch to pread prevents


@linux_only
def test_a_library_without_the_limit_is_left_alone() -> None:
    located = loaded_leveldb()
    assert located is not None  # plyvel is imported, so its LevelDB is mapped
    assert mmap_limit_address(Path(sys.executable).resolve(), 0) is None
