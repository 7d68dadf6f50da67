"""The replay report: what the chain holds, for a person (rich text) or a program (JSON)."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from contracts.queries import validator_set_at
from contracts.state import PARAMS_KEY, ROLE_PREFIX, VALIDATORS_KEY
from node.audit.replay import GOVERNANCE_TYPES, ReplayedBlock, ReplayedChain
from node.audit.signatures import VerifyRate


class _ValuesView:
    """A StateView over the values a block wrote (or found) under its keys."""

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values

    def get(self, key: str) -> Any:
        return self._values.get(key)


@dataclass
class ChainReport:
    """Collects counts while the replay runs (a BlockObserver)."""

    by_type: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    sanctions_issued: list[dict[str, Any]] = field(default_factory=list)
    sanctions_lifted: list[dict[str, Any]] = field(default_factory=list)
    governance_changes: list[dict[str, Any]] = field(default_factory=list)
    empty_blocks: int = 0
    view_changes: int = 0  # blocks certified in a view above 0

    def on_block(self, block: ReplayedBlock) -> None:
        if not block.txs:
            self.empty_blocks += 1
        if block.view > 0:
            self.view_changes += 1
        for tx, result in zip(block.txs, block.results, strict=True):
            self.by_type[tx.type][result.code] += 1
            if result.code != "ok":
                continue
            if tx.type == "sanction":
                self.sanctions_issued.append(
                    {
                        "height": block.height,
                        "tx": tx.id,
                        "account": tx.body["account"],
                        "kind": tx.body["kind"],
                        "until": tx.body["until"],
                        "reason": tx.body["reason"],
                    }
                )
            elif tx.type == "lift_sanction":
                self.sanctions_lifted.append(
                    {
                        "height": block.height,
                        "tx": tx.id,
                        "account": tx.body["account"],
                        "kind": tx.body["kind"],
                    }
                )
        if any(tx.type in GOVERNANCE_TYPES for tx in block.txs):
            self._governance(block)

    def _governance(self, block: ReplayedBlock) -> None:
        """A proposal that executes changes parameters, roles or the validator set; report each."""
        proposals = [
            tx.id if tx.type == "propose" else tx.body["proposal"]
            for tx, result in zip(block.txs, block.results, strict=True)
            if tx.type in ("propose", "approve") and result.code == "ok"
        ]
        for key in sorted(block.writes):
            before, after = block.before[key], block.writes[key]
            if key == PARAMS_KEY:
                changed = {
                    name: {"from": (before or {}).get(name), "to": value}
                    for name, value in sorted((after or {}).items())
                    if (before or {}).get(name) != value
                }
                if changed:
                    self.governance_changes.append(
                        {
                            "height": block.height,
                            "change": "set_params",
                            "params": changed,
                            "proposals": proposals,
                        }
                    )
            elif key.startswith(ROLE_PREFIX):
                old, new = set(before or []), set(after or [])
                role = key[len(ROLE_PREFIX) :]
                for account in sorted(new - old):
                    self.governance_changes.append(
                        {
                            "height": block.height,
                            "change": "grant_role",
                            "role": role,
                            "account": account,
                            "proposals": proposals,
                        }
                    )
                for account in sorted(old - new):
                    self.governance_changes.append(
                        {
                            "height": block.height,
                            "change": "revoke_role",
                            "role": role,
                            "account": account,
                            "proposals": proposals,
                        }
                    )
            elif key == VALIDATORS_KEY:
                applies = block.height + 2
                old = {
                    item["pubkey"] for item in validator_set_at(_ValuesView(block.before), applies)
                }
                new = {
                    item["pubkey"] for item in validator_set_at(_ValuesView(block.writes), applies)
                }
                for pubkey in sorted(new - old):
                    self.governance_changes.append(
                        {
                            "height": block.height,
                            "change": "add_validator",
                            "pubkey": pubkey,
                            "applies_from": applies,
                            "proposals": proposals,
                        }
                    )
                for pubkey in sorted(old - new):
                    self.governance_changes.append(
                        {
                            "height": block.height,
                            "change": "remove_validator",
                            "pubkey": pubkey,
                            "applies_from": applies,
                            "proposals": proposals,
                        }
                    )


def build_summary(
    chain: ReplayedChain,
    report: ChainReport,
    *,
    source: str,
    genesis_hash: str,
    genesis_pinned: bool,
    verify_rate: VerifyRate | None,
    workers: int,
) -> dict[str, Any]:
    """The report as one JSON-able object (the --json output)."""
    by_code: Counter[str] = Counter()
    for counts in report.by_type.values():
        by_code.update(counts)
    tx_per_second = int(chain.txs / chain.elapsed_s) if chain.elapsed_s > 0 else 0
    return {
        "ok": True,
        "source": source,
        "chain_id": chain.genesis.chain_id,
        "genesis_hash": genesis_hash,
        "genesis_pinned": genesis_pinned,
        "genesis_state_root": chain.genesis_state_root,
        "height": chain.height,
        "head_hash": chain.head_hash,
        # The set that certified the head block: what verify-proof --validators needs
        # for proofs anchored there once governance has changed the genesis set.
        "validators_at_head": [
            item["pubkey"] for item in validator_set_at(_ValuesView(chain.state), chain.height)
        ],
        "state_root": chain.state_root,
        "blocks": chain.blocks,
        "empty_blocks": report.empty_blocks,
        "blocks_after_view_change": report.view_changes,
        "transactions": chain.txs,
        "transactions_by_type": {
            tx_type: dict(sorted(counts.items()))
            for tx_type, counts in sorted(report.by_type.items())
        },
        "results_by_code": dict(sorted(by_code.items())),
        "sanctions": {
            "issued": len(report.sanctions_issued),
            "lifted": len(report.sanctions_lifted),
            "issued_list": report.sanctions_issued,
            "lifted_list": report.sanctions_lifted,
        },
        "governance_changes": report.governance_changes,
        "throughput": {
            "elapsed_ms": int(chain.elapsed_s * 1000),
            "transactions_per_second": tx_per_second,
            "blocks_per_second": int(chain.blocks / chain.elapsed_s) if chain.elapsed_s > 0 else 0,
            "signature_workers": workers,
            "ed25519_verify_per_second_per_core": verify_rate.signatures_per_second_per_core
            if verify_rate
            else None,
            "ed25519_library": verify_rate.library if verify_rate else None,
        },
    }


def render_text(summary: dict[str, Any], console: Any) -> None:
    """Print the report for a person with rich."""
    from rich.table import Table

    console.print(
        "[bold green]Chain verified[/] %s from %s" % (summary["chain_id"], summary["source"])
    )
    pin = (
        "pinned with --genesis"
        if summary["genesis_pinned"]
        else "served by the node: compare it with the published hash"
    )
    console.print("genesis hash  %s (%s)" % (summary["genesis_hash"], pin))
    console.print("height        %d   head %s" % (summary["height"], summary["head_hash"]))
    console.print("state root    %s" % summary["state_root"])
    console.print(
        "blocks        %d (%d empty, %d certified after a view change)"
        % (summary["blocks"], summary["empty_blocks"], summary["blocks_after_view_change"])
    )
    console.print("transactions  %d" % summary["transactions"])
    if summary["transactions_by_type"]:
        table = Table(title="Transactions by type and result")
        table.add_column("type")
        table.add_column("result")
        table.add_column("count", justify="right")
        for tx_type, counts in summary["transactions_by_type"].items():
            for code, count in counts.items():
                table.add_row(tx_type, code, str(count))
        console.print(table)
    sanctions = summary["sanctions"]
    console.print("sanctions     %d issued, %d lifted" % (sanctions["issued"], sanctions["lifted"]))
    changes = summary["governance_changes"]
    console.print("governance    %d changes" % len(changes))
    for change in changes:
        detail = {k: v for k, v in change.items() if k not in ("height", "change", "proposals")}
        console.print("  block %d: %s %s" % (change["height"], change["change"], detail))
    throughput = summary["throughput"]
    console.print(
        "throughput    %d tx/s, %d blocks/s in %.2f s (signatures on %d workers;"
        " this machine verifies "
        "%s Ed25519 signatures/s per core with %s)"
        % (
            throughput["transactions_per_second"],
            throughput["blocks_per_second"],
            throughput["elapsed_ms"] / 1000,
            throughput["signature_workers"],
            throughput["ed25519_verify_per_second_per_core"],
            throughput["ed25519_library"],
        )
    )
