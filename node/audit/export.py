"""Provenance export: the replayed (and so verified) chain written into SQLite.

An observer of the replay: every row comes from a block that passed every
check, so the database holds nothing the genesis file does not vouch for.
The tables are documented in docs/AUDIT.md.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from node.audit.replay import ReplayedBlock

SCHEMA = """
CREATE TABLE chain (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE blocks (
    height       INTEGER PRIMARY KEY,
    hash         TEXT NOT NULL UNIQUE,
    parent       TEXT NOT NULL,
    time_ms      INTEGER NOT NULL,
    proposer     TEXT NOT NULL,
    tx_root      TEXT NOT NULL,
    results_root TEXT NOT NULL,
    state_root   TEXT NOT NULL,
    tx_count     INTEGER NOT NULL,
    view         INTEGER NOT NULL,
    signers      TEXT NOT NULL          -- JSON list of validator keys that signed the commit
);
-- Keyed by place, not id: a faulty proposer may include a committed transaction again
-- (it gets bad_nonce and changes nothing), so an id can have two rows.
CREATE TABLE transactions (
    id        TEXT NOT NULL,
    height    INTEGER NOT NULL REFERENCES blocks(height),
    position  INTEGER NOT NULL,         -- index within the block
    type      TEXT NOT NULL,
    sender    TEXT NOT NULL,
    nonce     INTEGER NOT NULL,
    body      TEXT NOT NULL,            -- JSON
    signature TEXT NOT NULL,
    PRIMARY KEY (height, position)
);
CREATE TABLE results (
    tx_id       TEXT NOT NULL,
    height      INTEGER NOT NULL,
    position    INTEGER NOT NULL,
    code        TEXT NOT NULL,
    message     TEXT NOT NULL,
    eligible_at INTEGER,                -- ms; only for holding_period
    PRIMARY KEY (height, position),
    FOREIGN KEY (height, position) REFERENCES transactions (height, position)
);
CREATE INDEX transactions_by_id ON transactions (id);
CREATE INDEX results_by_tx ON results (tx_id);
CREATE TABLE token_ownership (
    token          TEXT NOT NULL,       -- "<collection>:<serial>"
    collection     TEXT NOT NULL,
    serial         INTEGER NOT NULL,
    owner          TEXT NOT NULL,
    previous_owner TEXT,                -- NULL for a mint
    acquired_by    TEXT NOT NULL,       -- 'mint' or 'gift'
    content_hash   TEXT,                -- set on the mint row
    at_ms          INTEGER NOT NULL,    -- block time
    height         INTEGER NOT NULL,
    position       INTEGER NOT NULL,    -- the transaction's index in the block
    tx_id          TEXT NOT NULL,
    PRIMARY KEY (token, height, position)
);
CREATE TABLE sanctions (
    account  TEXT NOT NULL,
    kind     TEXT NOT NULL,             -- 'transfer_freeze' or 'purchase_ban'
    action   TEXT NOT NULL,             -- 'issued' or 'lifted'
    reason   TEXT,                      -- for 'issued'
    until_ms INTEGER,                   -- for 'issued'; 0 = until lifted
    at_ms    INTEGER NOT NULL,
    height   INTEGER NOT NULL,
    position INTEGER NOT NULL,          -- the transaction's index in the block
    tx_id    TEXT NOT NULL PRIMARY KEY,
    issuer   TEXT NOT NULL              -- the compliance account that sent it
);
CREATE INDEX transactions_by_sender ON transactions (sender, height);
CREATE INDEX results_by_code ON results (code);
CREATE INDEX ownership_by_owner ON token_ownership (owner);
CREATE INDEX sanctions_by_account ON sanctions (account, height);
CREATE VIEW current_owners AS
    SELECT token, owner, acquired_by, at_ms, height FROM token_ownership AS t
    WHERE NOT EXISTS (
        SELECT 1 FROM token_ownership AS later
        WHERE later.token = t.token
          AND (later.height > t.height OR (later.height = t.height AND later.position > t.position))
    );
"""

COMMIT_EVERY_BLOCKS = 200


class SqliteExporter:
    """Writes each replayed block into a fresh SQLite file (a BlockObserver)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if self.path.exists():
            self.path.unlink()
        self._db = sqlite3.connect(str(self.path))
        self._db.executescript(SCHEMA)
        self._since_commit = 0

    def on_block(self, block: ReplayedBlock) -> None:
        header = block.header
        cursor = self._db.cursor()
        cursor.execute(
            "INSERT INTO blocks VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                block.height,
                block.hash,
                header["parent"],
                header["time"],
                header["proposer"],
                header["tx_root"],
                header["results_root"],
                header["state_root"],
                len(block.txs),
                block.view,
                json.dumps(list(block.signers)),
            ),
        )
        cursor.executemany(
            "INSERT INTO transactions VALUES (?,?,?,?,?,?,?,?)",
            [
                (
                    tx.id,
                    block.height,
                    index,
                    tx.type,
                    tx.sender,
                    tx.nonce,
                    json.dumps(tx.body, sort_keys=True),
                    tx.signature or "",
                )
                for index, tx in enumerate(block.txs)
            ],
        )
        cursor.executemany(
            "INSERT INTO results VALUES (?,?,?,?,?,?)",
            [
                (tx.id, block.height, index, result.code, result.message, result.eligible_at)
                for index, (tx, result) in enumerate(zip(block.txs, block.results, strict=True))
            ],
        )
        time_ms = header["time"]
        for position, (tx, result) in enumerate(zip(block.txs, block.results, strict=True)):
            if result.code != "ok":
                continue
            if tx.type == "mint":
                collection = tx.body["collection"]
                cursor.executemany(
                    "INSERT INTO token_ownership VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    [
                        (
                            "%s:%d" % (collection, item["serial"]),
                            collection,
                            item["serial"],
                            item["owner"],
                            None,
                            "mint",
                            item["content_hash"],
                            time_ms,
                            block.height,
                            position,
                            tx.id,
                        )
                        for item in tx.body["items"]
                    ],
                )
            elif tx.type == "gift":
                collection, _, serial = tx.body["token"].partition(":")
                cursor.execute(
                    "INSERT INTO token_ownership VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        tx.body["token"],
                        collection,
                        int(serial),
                        tx.body["to"],
                        tx.sender,
                        "gift",
                        None,
                        time_ms,
                        block.height,
                        position,
                        tx.id,
                    ),
                )
            elif tx.type == "sanction":
                cursor.execute(
                    "INSERT INTO sanctions VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (
                        tx.body["account"],
                        tx.body["kind"],
                        "issued",
                        tx.body["reason"],
                        tx.body["until"],
                        time_ms,
                        block.height,
                        position,
                        tx.id,
                        tx.sender,
                    ),
                )
            elif tx.type == "lift_sanction":
                cursor.execute(
                    "INSERT INTO sanctions VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (
                        tx.body["account"],
                        tx.body["kind"],
                        "lifted",
                        None,
                        None,
                        time_ms,
                        block.height,
                        position,
                        tx.id,
                        tx.sender,
                    ),
                )
        self._since_commit += 1
        if self._since_commit >= COMMIT_EVERY_BLOCKS:
            self._db.commit()
            self._since_commit = 0

    def finish(self, chain_facts: dict[str, Any]) -> None:
        """Record what the export covers and make it durable."""
        self._db.executemany(
            "INSERT OR REPLACE INTO chain VALUES (?, ?)",
            [(name, str(value)) for name, value in sorted(chain_facts.items())],
        )
        self._db.commit()
        self._db.close()

    def abort(self) -> None:
        """A failed replay leaves no half-verified database behind."""
        self._db.close()
        self.path.unlink(missing_ok=True)
