"""The auditor against a node that lies: each tampering of PROTOCOL §5's guarantees is
caught at the right block and transaction with the right message; the honest chain passes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from consensus.types import ValidatorSet, header_hash
from contracts.queries import validator_set_at
from contracts.transactions import parse_tx
from node.audit.cli import run_replay
from node.audit.devchain import DevChain, user_key
from node.audit.errors import AuditError, SourceError
from node.audit.replay import genesis_hash_of


def replay_from(url: str, workers: int = 0, genesis_file: Any = None) -> dict[str, Any]:
    return run_replay(
        home=None,
        from_url=url,
        genesis_file=genesis_file,
        workers=workers,
        observers=[],
        progress=False,
    )


def caught(url: str, workers: int = 0) -> AuditError:
    with pytest.raises(AuditError) as info:
        replay_from(url, workers)
    return info.value


def validators_at(chain: DevChain, height: int) -> ValidatorSet:
    """The set in force at `height`, read from the honest chain's final state (the
    schedule keeps every change with the height it applies from)."""
    return ValidatorSet(tuple(item["pubkey"] for item in validator_set_at(chain.view, height)))


def resign(chain: DevChain, answer: dict[str, Any], signers: list[str] | None = None) -> None:
    """Play a Byzantine quorum: certify the (tampered) header with real validator keys."""
    height = answer["header"]["height"]
    answer["commit"] = chain.sign_commit(answer["header"], validators_at(chain, height), 0, signers)
    answer["hash"] = header_hash(answer["header"])


def test_honest_chain_passes_with_full_report(demo_chain: DevChain, answers: list, serve) -> None:
    """An honest node's chain replays to the same state root, with counts of every kind."""
    server = serve(answers)
    summary = replay_from(server.url, workers=2)
    assert summary["ok"] is True
    assert summary["height"] == demo_chain.height == 11
    assert summary["state_root"] == demo_chain.head["state_root"]
    assert summary["genesis_hash"] == genesis_hash_of(demo_chain.genesis_obj)
    assert summary["transactions"] == 20
    assert summary["transactions_by_type"]["gift"] == {
        "holding_period": 1,
        "not_owner": 1,
        "ok": 4,
        "sender_frozen": 1,
    }
    assert summary["results_by_code"]["unauthorized"] == 1
    assert summary["sanctions"]["issued"] == 1 and summary["sanctions"]["lifted"] == 1
    changes = {change["change"] for change in summary["governance_changes"]}
    assert changes == {"set_params", "add_validator"}
    assert summary["throughput"]["ed25519_verify_per_second_per_core"] > 0
    assert summary["throughput"]["signature_workers"] == 2


def test_altered_transaction_is_caught_by_its_signature(answers: list, serve) -> None:
    """A gift whose recipient was changed no longer matches its sender's signature."""
    original_id = parse_tx(answers[4]["txs"][0]).id
    answers[4]["txs"][0]["body"]["to"] = user_key(5).public_key
    altered_id = parse_tx(answers[4]["txs"][0]).id
    error = caught(serve(answers).url, workers=1)
    assert (error.height, error.tx_index, error.check) == (5, 0, "signature")
    assert error.tx_id == altered_id != original_id
    assert "signature does not verify" in str(error)


def test_transaction_dropped_from_a_certified_block_is_caught_by_tx_root(
    answers: list, serve
) -> None:
    """Leaving a transaction out of a block breaks the certified tx_root."""
    del answers[4]["txs"][3]
    del answers[4]["results"][3]
    error = caught(serve(answers).url)
    assert (error.height, error.check) == (5, "tx_root")


def test_certificate_with_too_few_signatures(answers: list, serve) -> None:
    """Two signatures of four validators are not a quorum."""
    answers[2]["commit"]["signatures"] = answers[2]["commit"]["signatures"][:2]
    error = caught(serve(answers).url)
    assert (error.height, error.check) == (3, "certificate")
    assert "2 signatures, 3 needed of 4 validators" in str(error)


def test_certificate_with_a_forged_signature(answers: list, serve) -> None:
    """A validator's signature replaced by one over other bytes fails."""
    forged = user_key(1).sign(b"something else")
    answers[1]["commit"]["signatures"][0]["signature"] = forged
    error = caught(serve(answers).url)
    assert (error.height, error.check) == (2, "certificate")
    assert "bad signature from validator" in str(error)


def test_certificate_from_keys_that_are_not_validators(
    demo_chain: DevChain, answers: list, serve
) -> None:
    """A quorum of signatures from outsiders proves nothing."""
    outsiders = [user_key(index) for index in range(3)]
    for key in outsiders:
        demo_chain.extra_signing_keys.setdefault(key.public_key, key)
    resign(demo_chain, answers[0], signers=[key.public_key for key in outsiders])
    error = caught(serve(answers).url)
    assert (error.height, error.check) == (1, "certificate")
    assert "is not a validator at height 1" in str(error)


def test_certificate_from_the_old_validator_set_after_a_change(
    demo_chain: DevChain, answers: list, serve
) -> None:
    """Block 9 needs 4 of the 5 validators in force from h+2; the old set's quorum of 3 fails."""
    old_set = validators_at(demo_chain, 1)
    resign(demo_chain, answers[8], signers=list(old_set.validators[:3]))
    error = caught(serve(answers).url)
    assert (error.height, error.check) == (9, "certificate")
    assert "3 signatures, 4 needed of 5 validators" in str(error)


def test_new_validator_signing_before_its_set_applies(
    demo_chain: DevChain, answers: list, serve
) -> None:
    """Added in block 7, the new validator is not yet one at block 8 (changes apply at h+2)."""
    newcomer = sorted(
        set(validators_at(demo_chain, 9).validators) - set(validators_at(demo_chain, 8).validators)
    )
    signers = list(validators_at(demo_chain, 8).validators[:2]) + newcomer
    resign(demo_chain, answers[7], signers=signers)
    error = caught(serve(answers).url)
    assert (error.height, error.check) == (8, "certificate")
    assert "is not a validator at height 8" in str(error)


def test_wrong_result_code_claimed_by_the_node(answers: list, serve) -> None:
    """The node says an early gift succeeded; the rules give holding_period."""
    assert answers[3]["results"] == ["holding_period"]
    answers[3]["results"] = ["ok"]
    error = caught(serve(answers).url)
    assert (error.height, error.tx_index, error.check) == (4, 0, "result")
    assert error.tx_id == parse_tx(answers[3]["txs"][0]).id
    assert "the node says result 'ok', the rules give 'holding_period'" in str(error)


def test_wrong_results_root_certified_by_a_byzantine_quorum(
    demo_chain: DevChain, answers: list, serve
) -> None:
    """Even a quorum of validators cannot certify results the rules would not give."""
    answers[5]["header"]["results_root"] = "ab" * 32
    resign(demo_chain, answers[5])
    error = caught(serve(answers).url)
    assert (error.height, error.check) == (6, "results_root")


def test_bad_state_root_certified_by_a_byzantine_quorum(
    demo_chain: DevChain, answers: list, serve
) -> None:
    """A certified header whose state root does not follow from re-execution is caught."""
    answers[2]["header"]["state_root"] = "cd" * 32
    resign(demo_chain, answers[2])
    error = caught(serve(answers).url)
    assert (error.height, error.check) == (3, "state_root")
    assert "state_root in header " + "cd" * 32 in str(error)


def test_bad_state_root_without_a_quorum_breaks_the_certificate(answers: list, serve) -> None:
    """Changing a certified header's state root makes its certificate certify another hash."""
    answers[2]["header"]["state_root"] = "cd" * 32
    error = caught(serve(answers).url)
    assert (error.height, error.check) == (3, "certificate")


def test_reordered_blocks(answers: list, serve) -> None:
    """Blocks 5 and 6 served swapped: block 6 arrives where 5 belongs."""
    answers[4], answers[5] = answers[5], answers[4]
    error = caught(serve(answers).url)
    assert (error.height, error.check) == (5, "height")
    assert "expected block 5 next, the node gave block 6" in str(error)


def test_missing_block(answers: list, serve) -> None:
    """The node claims height 11 but has no block 6."""
    answers[5] = None
    error = caught(serve(answers).url)
    assert (error.height, error.check) == (6, "height")
    assert "block 6 is missing" in str(error)


def test_broken_parent_link(demo_chain: DevChain, answers: list, serve) -> None:
    """A certified block that does not follow its parent is refused."""
    answers[6]["header"]["parent"] = "ef" * 32
    resign(demo_chain, answers[6])
    error = caught(serve(answers).url)
    assert (error.height, error.check) == (7, "parent")


def test_node_hash_that_is_not_its_header_hash(answers: list, serve) -> None:
    """The hash a node reports must be its header's hash."""
    answers[0]["hash"] = "00" * 32
    error = caught(serve(answers).url)
    assert (error.height, error.check) == (1, "hash")


def test_pinned_genesis_of_another_chain(
    demo_chain: DevChain, answers: list, serve, tmp_path
) -> None:
    """An auditor's own genesis file that differs from the node's names both hashes."""
    other = copy.deepcopy(demo_chain.genesis_obj)
    other["genesis_time"] += 1
    path = tmp_path / "genesis.json"
    import json

    path.write_text(json.dumps(other))
    with pytest.raises(AuditError) as info:
        replay_from(serve(answers).url, genesis_file=path)
    assert info.value.check == "genesis" and "another chain" in str(info.value)


def test_unreachable_node_is_a_source_error() -> None:
    """A node that does not answer is reported as unreadable, not as a mismatch."""
    with pytest.raises(SourceError):
        replay_from("http://127.0.0.1:9")


def test_concurrent_fetches_reach_the_replay_in_height_order(
    demo_chain: DevChain, answers: list, serve
) -> None:
    """Blocks fetched concurrently arrive in height order even when lower heights answer last."""
    server = serve(answers, delay_s=lambda height: 0.04 * (12 - height) / 12)
    summary = replay_from(server.url)
    assert summary["state_root"] == demo_chain.head["state_root"]
    assert server.requests == demo_chain.height
