"""Sealing a block: execute its transactions and compute the header (PROTOCOL §5).

tx_root      = merkle_root of the 32-byte transaction ids, in block order.
results_root = merkle_root of the canonical bytes of each result map
               ({"code", "message"} plus "eligible_at" when set), in block order.
state_root   = the state tree's root after applying the block's write set to
               the parent's state root.
"""

from __future__ import annotations

from typing import Any

from contracts.context import BlockContext, BlockOutcome, Result
from contracts.execution import execute_block
from contracts.helpers import get_params
from contracts.state import StateView
from contracts.state_tree import NodeStore, TreeUpdate, apply_changes
from contracts.transactions import SignedTx
from primitives.encoding import canonical_bytes
from primitives.headers import ZERO_HASH, header_hash
from primitives.merkle import merkle_root


class BlockError(ValueError):
    """A block that cannot follow its parent (height, time or size)."""


def compute_tx_root(txs: list[SignedTx]) -> str:
    return merkle_root([bytes.fromhex(tx.id) for tx in txs])


def compute_results_root(results: list[Result]) -> str:
    # Most results of a block are equal (a plain "ok"): each distinct one is encoded once.
    encoded: dict[Result, bytes] = {}
    leaves = []
    for result in results:
        leaf = encoded.get(result)
        if leaf is None:
            leaf = encoded[result] = canonical_bytes(result.to_dict())
        leaves.append(leaf)
    return merkle_root(leaves)


def compute_parent_hash(parent_header: dict[str, Any]) -> str:
    """Block 1's parent is 64 zeros (the genesis header is synthetic, not a block)."""
    return ZERO_HASH if parent_header["height"] == 0 else header_hash(parent_header)


def seal_block(
    view: StateView,
    store: NodeStore,
    parent_header: dict[str, Any],
    txs: list[SignedTx],
    chain_id: str,
    height: int,
    time_ms: int,
    proposer: str,
) -> tuple[dict[str, Any], BlockOutcome, TreeUpdate]:
    """Execute `txs` on `view` (the parent's committed state) and return the header, the
    outcome (write set and results) and the state-tree update (nodes to persist with it,
    nodes only the parent's root needed)."""
    if height != parent_header["height"] + 1:
        raise BlockError(
            "height %d does not follow parent height %d" % (height, parent_header["height"])
        )
    if time_ms <= parent_header["time"]:
        raise BlockError(
            "block time %d is not after the parent's %d" % (time_ms, parent_header["time"])
        )
    max_block_txs = get_params(view)["max_block_txs"]
    if len(txs) > max_block_txs:
        raise BlockError("%d transactions, at most %d per block" % (len(txs), max_block_txs))
    outcome = execute_block(
        view, txs, BlockContext(chain_id=chain_id, height=height, time_ms=time_ms)
    )
    tree = apply_changes(store, parent_header["state_root"], outcome.writes, view.get)
    header = {
        "chain_id": chain_id,
        "height": height,
        "parent": compute_parent_hash(parent_header),
        "time": time_ms,
        "proposer": proposer,
        "tx_root": compute_tx_root(txs),
        "results_root": compute_results_root(outcome.results),
        "state_root": tree.root,
    }
    return header, outcome, tree


build_header = seal_block
