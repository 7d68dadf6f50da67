"""The `yuxi audit` commands end to end: replay from a home and from a URL (text and JSON,
exit codes), and the SQLite provenance export an auditor queries with plain SQL."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from audit_helpers import rpc_answers
from click.testing import CliRunner, Result

from contracts.transactions import compute_tx_id
from node.audit.cli import audit_group
from node.audit.devchain import DevChain, build_demo_chain, user_key


def test_replay_home_prints_a_text_report(demo_chain: DevChain, node_home: Path) -> None:
    """`replay --home` reads the node's LevelDB and genesis and reports the chain."""
    result = CliRunner().invoke(audit_group, ["replay", "--home", str(node_home), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "Chain verified" in result.output
    assert demo_chain.head["state_root"] in result.output
    assert "1 issued, 1 lifted" in result.output
    assert "tx/s" in result.output and "Ed25519" in result.output


def test_replay_from_url_as_json(demo_chain: DevChain, serve, tmp_path: Path) -> None:
    """`replay --from URL --genesis FILE --json` gives the machine-readable report."""
    server = serve(rpc_answers(demo_chain))
    genesis = tmp_path / "genesis.json"
    genesis.write_text(json.dumps(demo_chain.genesis_obj))
    result = CliRunner().invoke(
        audit_group,
        ["replay", "--from", server.url, "--genesis", str(genesis), "--json", "--workers", "0"],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["genesis_pinned"] is True
    assert summary["height"] == 11 and summary["state_root"] == demo_chain.head["state_root"]


def test_mismatch_exits_non_zero_naming_height_and_tx(demo_chain: DevChain, serve) -> None:
    """At the first mismatch the command exits 1 and names the height, tx and difference."""
    answers = rpc_answers(demo_chain)
    answers[3]["results"] = ["ok"]
    server = serve(answers)
    result = CliRunner().invoke(
        audit_group, ["replay", "--from", server.url, "--workers", "0", "--json"]
    )
    assert result.exit_code == 1
    error = json.loads(result.output)["error"]
    assert error["height"] == 4 and error["tx_index"] == 0 and error["check"] == "result"
    text = CliRunner().invoke(audit_group, ["replay", "--from", server.url, "--workers", "0"])
    assert text.exit_code == 1
    assert (
        "MISMATCH: height 4, tx 0 (" in text.output
        and "the rules give 'holding_period'" in text.output
    )


def test_replay_needs_exactly_one_source() -> None:
    """Neither or both of --home/--from is a usage error."""
    result = CliRunner().invoke(audit_group, ["replay"])
    assert result.exit_code == 2


def export(url: str, out: Path) -> Result:
    """`yuxi audit export` of the chain served at `url` into `out`."""
    return CliRunner().invoke(
        audit_group, ["export", "--from", url, "--out", str(out), "--workers", "0"]
    )


def test_export_writes_queryable_provenance(demo_chain: DevChain, serve, tmp_path: Path) -> None:
    """The export holds every block, transaction and result, each token's owners in order and
    the sanctions, all from the verified replay."""
    server = serve(rpc_answers(demo_chain))
    out = tmp_path / "chain.sqlite"
    result = export(server.url, out)
    assert result.exit_code == 0, result.output
    db = sqlite3.connect(str(out))
    assert db.execute("SELECT COUNT(*) FROM blocks").fetchone()[0] == 11
    assert db.execute("SELECT COUNT(*) FROM transactions").fetchone()[0] == 20
    assert (
        db.execute("SELECT COUNT(*) FROM results WHERE code = 'holding_period'").fetchone()[0] == 1
    )
    eligible = db.execute(
        "SELECT eligible_at FROM results WHERE code = 'holding_period'"
    ).fetchone()[0]
    assert eligible > demo_chain.genesis_time_ms
    history = db.execute(
        "SELECT owner, acquired_by, height FROM token_ownership"
        " WHERE token = 'moon-rabbit:1' ORDER BY height"
    ).fetchall()
    assert history == [(user_key(1).public_key, "mint", 3), (user_key(2).public_key, "gift", 5)]
    current = db.execute(
        "SELECT owner FROM current_owners WHERE token = 'moon-rabbit:1'"
    ).fetchone()[0]
    assert current == user_key(2).public_key
    sanctions = db.execute(
        "SELECT account, kind, action, height FROM sanctions ORDER BY height"
    ).fetchall()
    assert sanctions == [
        (user_key(4).public_key, "transfer_freeze", "issued", 5),
        (user_key(4).public_key, "transfer_freeze", "lifted", 6),
    ]
    facts = dict(db.execute("SELECT name, value FROM chain").fetchall())
    assert facts["state_root"] == demo_chain.head["state_root"] and facts["height"] == "11"


def test_export_keeps_each_inclusion_of_a_transaction_included_twice(
    serve, tmp_path: Path
) -> None:
    """A faulty proposer may include a committed transaction again: it gets bad_nonce and
    changes nothing, and the export holds both inclusions, each beside its own result."""
    chain = build_demo_chain()
    first_height = 3
    again = chain.blocks[first_height - 1].txs[0]
    chain.add_block([again])
    server = serve(rpc_answers(chain))
    out = tmp_path / "chain.sqlite"
    result = export(server.url, out)
    assert result.exit_code == 0, result.output
    db = sqlite3.connect(str(out))
    inclusions = db.execute(
        "SELECT t.height, r.code FROM transactions t"
        " JOIN results r ON r.height = t.height AND r.position = t.position"
        " WHERE t.id = ? ORDER BY t.height",
        (compute_tx_id(again),),
    ).fetchall()
    assert inclusions == [(first_height, "ok"), (chain.height, "bad_nonce")]


def test_export_of_a_lying_chain_leaves_no_file(
    demo_chain: DevChain, serve, tmp_path: Path
) -> None:
    """A chain that fails replay is not exported at all."""
    answers = rpc_answers(demo_chain)
    answers[1]["commit"]["signatures"] = answers[1]["commit"]["signatures"][:1]
    server = serve(answers)
    out = tmp_path / "chain.sqlite"
    result = export(server.url, out)
    assert result.exit_code == 1 and not out.exists()


def test_replay_against_the_node_rpc_app(
    demo_chain: DevChain, node_home: Path, tmp_path: Path
) -> None:
    """The node's own RPC app (status, blocks with full txs, genesis) serves a chain the
    auditor replays to the same state root: the two sides agree on every shape."""
    import shutil

    from audit_helpers import AppServer

    from node.config import load_config
    from node.rpc import make_rpc_app
    from node.rpc_support import WriteGate
    from node.runner import NodeRuntime, load_genesis_file, open_storage

    home = tmp_path / "node"
    shutil.copytree(node_home, home)
    config = load_config(home)
    genesis = load_genesis_file(config.genesis_file)
    storage = open_storage(config, genesis)
    try:
        runtime = NodeRuntime(config, genesis, None, storage)
        gate = WriteGate(config.tokens, config.require_token_for_writes)
        with AppServer(lambda: make_rpc_app(runtime.service, gate)) as server:
            result = CliRunner().invoke(
                audit_group, ["replay", "--from", server.url, "--json", "--workers", "1"]
            )
    finally:
        storage.close()
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["height"] == 11 and summary["state_root"] == demo_chain.head["state_root"]
