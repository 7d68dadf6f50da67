"""Make LevelDB read its table files with pread instead of mmap, where it can be done.

LevelDB 1.22, as plyvel's wheels bundle it, maps up to 1,000 table files and has no
option to stop: every mapped page it touched counts in the node's RSS, and bounding
the open tables to bound it (80) made a large state re-open a table on most reads
(unmapping the evicted one and faulting in the new one: a fifth of a validator's main
thread with a million tokens, `perf`, twenty-first round of docs/PERFORMANCE.md).
The limit is a private global, `g_mmap_limit`, read once when the library's default
environment is created (by the first database opened in the process); LevelDB's own
tests set it to 0 through a helper the library does not export. This sets it from the
library's symbol table instead, after checking the symbol is the 4-byte default of
1,000 it expects, and raises the soft limit on open files, from which LevelDB sizes
the table files it keeps open for pread (a fifth of it).

It must run before the process opens its first database (node/storage.py imports it
first). Where it cannot be done (not Linux, a stripped or different library) or the
operator sets YUXI_LEVELDB_MMAP=1, tables stay mapped and storage keeps the small
table cache: `use_pread()` says which.
"""

from __future__ import annotations

import ctypes
import os
import resource
from pathlib import Path

import plyvel  # noqa: F401  (loads the LevelDB library this module looks for)
from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

MMAP_LIMIT_SYMBOL = "_ZN7leveldb12_GLOBAL__N_112g_mmap_limitE"  # leveldb::{anon}::g_mmap_limit
DEFAULT_MMAP_LIMIT = 1000
OPEN_FILES_WANTED = 65536  # LevelDB keeps a fifth of the soft limit open for pread


def loaded_leveldb() -> tuple[Path, int] | None:
    """The LevelDB library mapped into this process and the address its file starts at."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            if len(fields) != 6 or int(fields[2], 16) != 0:  # want a file's first page
                continue
            if Path(fields[5]).name.startswith("libleveldb"):
                return Path(fields[5]), int(fields[0].split("-")[0], 16)
    return None


def mmap_limit_address(library: Path, mapped_at: int) -> int | None:
    """Where `g_mmap_limit` is in memory, or None if the library has no such symbol."""
    with library.open("rb") as file:
        elf = ELFFile(file)
        symbols = elf.get_section_by_name(".symtab")
        found = symbols.get_symbol_by_name(MMAP_LIMIT_SYMBOL) if symbols else None
        if not found or found[0]["st_size"] != ctypes.sizeof(ctypes.c_int):
            return None
        first_load = min(s["p_vaddr"] for s in elf.iter_segments() if s["p_type"] == "PT_LOAD")
        return mapped_at - (first_load & ~0xFFF) + found[0]["st_value"]


def _switch_to_pread() -> bool:
    if not Path("/proc/self/maps").exists():
        return False
    located = loaded_leveldb()
    try:
        address = mmap_limit_address(*located) if located else None
    except (OSError, ELFError):  # the file moved, or is not the ELF this expects
        return False
    if address is None:
        return False
    limit = ctypes.c_int.from_address(address)
    if limit.value not in (DEFAULT_MMAP_LIMIT, 0):
        return False  # not the variable this was written for
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = OPEN_FILES_WANTED if hard == resource.RLIM_INFINITY else min(hard, OPEN_FILES_WANTED)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    limit.value = 0
    return True


_PREAD = _switch_to_pread() if os.environ.get("YUXI_LEVELDB_MMAP") != "1" else False


def use_pread() -> bool:
    """Whether this process's LevelDB reads tables with pread (decided on first import)."""
    return _PREAD
