"""State proofs: served by a node's real RPC app, checked offline against the genesis file;
a proof for another root, a modified value, a truncated path or a forged certificate fails."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner

from contracts.genesis import load_genesis
from contracts.queries import validator_set_at
from node.audit.cli import audit_group, run_replay
from node.audit.devchain import DevChain, user_key
from node.audit.proofs import ProofError, build_proof_document, verify_proof_document
from node.storage import Storage

ABSENT_ACCOUNT = "ee" * 32


def proof_at(home: Path, subject: dict[str, Any]) -> dict[str, Any]:
    storage = Storage(home / "data")
    try:
        document = build_proof_document(storage, subject)
    finally:
        storage.close()
    assert document is not None
    return document


@pytest.fixture(scope="module")
def documents(early_home: Path) -> dict[str, dict[str, Any]]:
    return {
        "account": proof_at(early_home, {"kind": "account", "id": user_key(2).public_key}),
        "absent_account": proof_at(early_home, {"kind": "account", "id": ABSENT_ACCOUNT}),
        "token": proof_at(early_home, {"kind": "token", "collection": "moon-rabbit", "serial": 1}),
        "absent_token": proof_at(
            early_home, {"kind": "token", "collection": "moon-rabbit", "serial": 999}
        ),
    }


@pytest.mark.parametrize("name", ["account", "absent_account", "token", "absent_token"])
def test_valid_proofs_verify_offline(demo_chain: DevChain, documents: dict, name: str) -> None:
    """Present and absent accounts and tokens verify against nothing but the genesis."""
    document = documents[name]
    outcome = verify_proof_document(
        json.loads(json.dumps(document)), load_genesis(demo_chain.genesis_obj)
    )
    assert outcome["ok"] and outcome["height"] == 6
    assert outcome["present"] is (not name.startswith("absent"))
    if name == "token":
        assert outcome["value"]["owner"] == user_key(2).public_key  # gifted to user 2 in block 5


def test_proof_for_another_root_fails(demo_chain: DevChain, documents: dict) -> None:
    """The same value and path anchored in another (validly certified) block's root fails."""
    document = copy.deepcopy(documents["account"])
    other = demo_chain.blocks[2]
    document.update(
        header=other.header,
        hash=__import__("consensus.types").types.header_hash(other.header),
        commit=other.commit,
    )
    with pytest.raises(ProofError, match="state proof does not show"):
        verify_proof_document(document, load_genesis(demo_chain.genesis_obj))


def test_modified_value_fails(demo_chain: DevChain, documents: dict) -> None:
    """Changing one field of the proven value breaks the leaf's value hash."""
    document = copy.deepcopy(documents["token"])
    document["value"]["owner"] = user_key(3).public_key
    with pytest.raises(ProofError, match="state proof does not show"):
        verify_proof_document(document, load_genesis(demo_chain.genesis_obj))


def test_claiming_a_present_key_absent_fails(demo_chain: DevChain, documents: dict) -> None:
    """A node cannot hide a value by answering null with the real path."""
    document = copy.deepcopy(documents["account"])
    document["value"] = None
    with pytest.raises(ProofError):
        verify_proof_document(document, load_genesis(demo_chain.genesis_obj))


def test_truncated_path_fails(demo_chain: DevChain, documents: dict) -> None:
    """Dropping the last internal node of the path leaves the leaf unanchored."""
    document = copy.deepcopy(documents["token"])
    assert len(document["proof"]["nodes"]) >= 2
    document["proof"]["nodes"] = document["proof"]["nodes"][:-1]
    with pytest.raises(ProofError, match="state proof does not show"):
        verify_proof_document(document, load_genesis(demo_chain.genesis_obj))


def test_subject_and_key_must_agree(demo_chain: DevChain, documents: dict) -> None:
    """A proof of one account cannot be passed off as a proof about another."""
    document = copy.deepcopy(documents["account"])
    document["subject"]["id"] = user_key(4).public_key
    with pytest.raises(ProofError, match="subject is key"):
        verify_proof_document(document, load_genesis(demo_chain.genesis_obj))


def test_forged_certificate_fails(demo_chain: DevChain, documents: dict) -> None:
    """A header with a changed state root, even with a matching proof, needs a real quorum."""
    document = copy.deepcopy(documents["account"])
    document["commit"]["signatures"] = document["commit"]["signatures"][:1]
    with pytest.raises(ProofError, match="certificate: 1 signatures, 3 needed"):
        verify_proof_document(document, load_genesis(demo_chain.genesis_obj))


def test_after_a_validator_change_the_set_must_be_given(
    demo_chain: DevChain, node_home: Path
) -> None:
    """At height 11 a validator added by governance signs: the genesis alone cannot vouch for
    it (the documented limit); with the set in force there, the proof verifies."""
    document = proof_at(node_home, {"kind": "account", "id": user_key(0).public_key})
    genesis = load_genesis(demo_chain.genesis_obj)
    with pytest.raises(ProofError, match="pass the set in force there with --validators"):
        verify_proof_document(document, genesis)
    in_force = [item["pubkey"] for item in validator_set_at(demo_chain.view, document["height"])]
    assert verify_proof_document(document, genesis, in_force)["present"] is True
    replayed = run_replay(
        home=node_home, from_url=None, genesis_file=None, workers=0, observers=[], progress=False
    )
    assert sorted(replayed["validators_at_head"]) == sorted(in_force)


async def test_proof_routes_on_the_node_rpc(
    demo_chain: DevChain, early_home: Path, tmp_path: Path
) -> None:
    """GET /v1/proofs/... on the node's own RPC app answers proofs that verify offline; the
    CLI verify-proof accepts a saved one and refuses a tampered one."""
    from node.config import load_config
    from node.rpc import make_rpc_app
    from node.rpc_support import WriteGate
    from node.runner import NodeRuntime, load_genesis_file, open_storage

    config = load_config(early_home)
    genesis = load_genesis_file(config.genesis_file)
    storage = open_storage(config, genesis)
    try:
        runtime = NodeRuntime(config, genesis, None, storage)
        app = make_rpc_app(
            runtime.service, WriteGate(config.tokens, config.require_token_for_writes)
        )
        async with TestClient(TestServer(app)) as client:
            answers = {}
            for name, path in {
                "account": "/v1/proofs/accounts/%s" % user_key(1).public_key,
                "absent": "/v1/proofs/accounts/%s" % ABSENT_ACCOUNT,
                "token": "/v1/proofs/tokens/moon-rabbit/3",
                "absent_token": "/v1/proofs/tokens/moon-rabbit/500",
            }.items():
                response = await client.get(path)
                assert response.status == 200, await response.text()
                answers[name] = await response.json()
            bad = await client.get("/v1/proofs/accounts/not-hex")
            assert bad.status == 400 and (await bad.json())["error"]["code"] == "bad_request"
            served_genesis = await (await client.get("/v1/genesis")).json()
    finally:
        storage.close()
    assert served_genesis == demo_chain.genesis_obj
    assert (
        answers["absent"]["value"] is None and answers["account"]["value"]["authenticated"] is True
    )
    for document in answers.values():
        assert set(document) >= {"value", "proof", "header", "hash", "commit"}
        verify_proof_document(document, load_genesis(demo_chain.genesis_obj))

    genesis_path = tmp_path / "genesis.json"
    genesis_path.write_text(json.dumps(demo_chain.genesis_obj))
    proof_path = tmp_path / "proof.json"
    proof_path.write_text(json.dumps(answers["token"]))
    runner = CliRunner()
    result = runner.invoke(
        audit_group, ["verify-proof", str(proof_path), "--genesis", str(genesis_path)]
    )
    assert result.exit_code == 0, result.output
    assert "proof valid: token/moon-rabbit:3 is present at height 6" in result.output
    answers["token"]["value"]["owner"] = ABSENT_ACCOUNT
    proof_path.write_text(json.dumps(answers["token"]))
    result = runner.invoke(
        audit_group, ["verify-proof", str(proof_path), "--genesis", str(genesis_path)]
    )
    assert result.exit_code == 1
    assert "INVALID PROOF" in result.output
