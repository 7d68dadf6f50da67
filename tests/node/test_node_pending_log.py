"""The pending-transaction log: what was admitted and not removed survives reopening, a
write cut short loses only itself, rewrites keep the live records, and a database that
kept them in LevelDB hands them over."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from node import pending_log
from node.pending_log import FILE_NAME, PendingLog
from node.storage import Storage


def tx(number: int) -> tuple[str, bytes]:
    encoded = b"transaction %d " % number + bytes(number % 50)
    return hashlib.sha256(encoded).hexdigest(), encoded


def txs(numbers: range) -> dict[str, bytes]:
    return dict(tx(number) for number in numbers)


def two_writes(path: Path, first: range, second: range) -> int:
    """Admit `first`, then `second`, in two appends; the file's size between them."""
    log = PendingLog(path)
    log.pending_put_many(txs(first))
    size = path.stat().st_size
    log.pending_put_many(txs(second))
    log.close()
    return size


def test_admitted_and_not_removed_survive_reopening(tmp_path: Path) -> None:
    log = PendingLog(tmp_path / FILE_NAME)
    log.pending_put_many(txs(range(10)))
    log.pending_delete([tx(3)[0], tx(7)[0], "ab" * 32])  # the last was never admitted
    log.pending_put_many(txs(range(10, 12)))
    expected = txs(range(12))
    del expected[tx(3)[0]], expected[tx(7)[0]]
    assert sorted(log.pending_all()) == sorted(expected.values())
    log.close()
    reopened = PendingLog(tmp_path / FILE_NAME)
    assert sorted(reopened.pending_all()) == sorted(expected.values()) and len(reopened) == 10
    reopened.close()


@pytest.mark.parametrize("cut", [1, 5, 9, 20, 40])
def test_a_write_cut_short_loses_only_itself(tmp_path: Path, cut: int) -> None:
    path = tmp_path / FILE_NAME
    whole = two_writes(path, range(3), range(3, 4))
    with open(path, "r+b") as file:
        file.truncate(whole + cut)  # inside the last record: its header or its payload
    reopened = PendingLog(path)
    assert sorted(reopened.pending_all()) == sorted(txs(range(3)).values())
    assert path.stat().st_size == whole  # the torn tail is gone, appends follow whole records
    reopened.pending_put_many(txs(range(5, 6)))
    reopened.close()
    again = PendingLog(path)
    assert sorted(again.pending_all()) == sorted([*txs(range(3)).values(), tx(5)[1]])
    again.close()


def test_a_damaged_record_ends_the_log(tmp_path: Path) -> None:
    path = tmp_path / FILE_NAME
    good = two_writes(path, range(2), range(2, 4))
    data = bytearray(path.read_bytes())
    data[good + 20] ^= 0xFF  # a bit flipped in the third record's payload
    path.write_bytes(bytes(data))
    reopened = PendingLog(path)
    assert sorted(reopened.pending_all()) == sorted(txs(range(2)).values())
    reopened.close()


def test_the_file_is_rewritten_with_only_the_live_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pending_log, "REWRITE_MIN_BYTES", 4096)
    path = tmp_path / FILE_NAME
    log = PendingLog(path)
    largest = 0
    for start in range(0, 2000, 100):
        log.pending_put_many(txs(range(start, start + 100)))
        log.pending_delete([tx(number)[0] for number in range(start, start + 95)])
        largest = max(largest, path.stat().st_size)
    live = {tx(n)[0]: tx(n)[1] for n in range(2000) if n % 100 >= 95}
    assert sorted(log.pending_all()) == sorted(live.values())
    # without rewrites the file would hold 2,000 records and 1,900 removals
    assert largest < 8 * 4096 and not path.with_name(path.name + ".tmp").exists()
    log.close()
    reopened = PendingLog(path)
    assert sorted(reopened.pending_all()) == sorted(live.values())
    reopened.close()


def test_pending_entries_of_an_older_database_move_into_the_log(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "db")
    for tx_id, encoded in txs(range(3)).items():  # as nodes before the log wrote them
        storage._db.put(b"p" + tx_id.encode(), encoded)
    storage.close()
    (tmp_path / "db" / FILE_NAME).unlink()
    reopened = Storage(tmp_path / "db")
    try:
        assert sorted(reopened.pending_all()) == sorted(txs(range(3)).values())
        assert list(reopened._db.iterator(prefix=b"p")) == []
    finally:
        reopened.close()
