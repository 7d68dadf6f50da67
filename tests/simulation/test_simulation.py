"""The whole-cluster simulator: fixed, regression and fresh seeds, replay, and its teeth."""

from __future__ import annotations

from pathlib import Path

import pytest
from simulation_seeds import FRESH_SEEDS

from consensus.replica import Replica
from simulation.broken import VARIANTS
from simulation.cluster import FAULT_KINDS, Simulation, SimulationFailure, run_seed, scenario_for

FIXED_SEEDS = range(1, 67)  # every fault kind at both sizes, three times over
REGRESSION_FILE = Path(__file__).with_name("regression_seeds.txt")


def regression_cases() -> list[tuple[int, str, int, str, int]]:
    cases = []
    for line in REGRESSION_FILE.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            seed, kind, validators, expectation, *rest = line.split()
            fault_ms = int(rest[0].removeprefix("fault_ms=")) if rest else 5000
            cases.append((int(seed), kind, int(validators), expectation, fault_ms))
    return cases


def test_fixed_seeds_cover_every_fault_kind_at_both_sizes() -> None:
    """The fixed set runs each fault kind with 4 and with 7 validators."""
    covered = {scenario_for(seed) for seed in FIXED_SEEDS}
    assert covered == {(kind, size) for kind in FAULT_KINDS for size in (4, 7)}


@pytest.mark.parametrize("seed", FIXED_SEEDS)
def test_fixed_seed_keeps_safety_and_liveness(seed: int) -> None:
    """This seed's faults never make honest replicas disagree, and they recover after."""
    result = run_seed(seed)
    assert result.blocks > 0


@pytest.mark.parametrize("seed", FRESH_SEEDS, ids=lambda seed: "fresh-%d" % seed)
def test_fresh_seed_keeps_safety_and_liveness(seed: int) -> None:
    """A seed never run before holds the same invariants (printed so a failure can be replayed)."""
    print("fresh seed %d" % seed)
    run_seed(seed)


@pytest.mark.parametrize("case", regression_cases(), ids=lambda case: "%d-%s-%d-%s-%d" % case)
def test_regression_seed(case: tuple[int, str, int, str, int]) -> None:
    """A kept seed still behaves as recorded: passes, or catches its broken variant."""
    seed, kind, validators, expectation, fault_ms = case
    options = {"kind": kind, "validators": validators, "fault_ms": fault_ms}
    if expectation == "pass":
        run_seed(seed, **options)
        return
    variant = expectation.removeprefix("caught:")
    with pytest.raises(SimulationFailure):
        run_seed(seed, replica_class=VARIANTS[variant], variant=variant, **options)


def test_a_seed_replays_exactly() -> None:
    """Two runs of one seed produce the same chain, views and fault counts."""
    first, second = Simulation(9, kind="mixed", validators=7), Simulation(9, kind="mixed", validators=7)
    assert first.run() == second.run()
    chain = lambda simulation: [  # noqa: E731
        [block.hash for block, _ in node.ledger.blocks] for node in simulation.nodes
    ]
    assert chain(first) == chain(second)


def test_validator_change_scenario_changes_the_set() -> None:
    """The validator_change kind really adds and removes validators (applied from h+2)."""
    simulation = Simulation(8, kind="validator_change", validators=4)
    simulation.run()
    ledger = simulation.nodes[0].ledger
    genesis_set = set(ledger.validator_set(1).validators)
    latest = set(ledger.validator_set(ledger.committed_height()).validators)
    assert latest != genesis_set
    assert any(isinstance(tx, dict) for block, _ in ledger.blocks for tx in block.txs)


def test_failure_names_its_seed_and_replay_command() -> None:
    """A failing run says which seed failed and gives the one-line command to replay it."""
    with pytest.raises(SimulationFailure) as failure:
        run_seed(0, kind="equivocating_leader", validators=4, replica_class=VARIANTS["quorum_2f"], variant="quorum_2f")
    text = str(failure.value)
    assert text.startswith("seed 0 (equivocating_leader, 4 validators, variant quorum_2f)")
    assert "replay: python scripts/simulate.py --seed 0 --kind equivocating_leader --validators 4 --variant quorum_2f" in text


TEETH = [
    ("no_prepared_certificate_rule", "adaptive_partition"),
    ("quorum_2f", "equivocating_leader"),
    ("unchecked_vote_signatures", "forger"),
]


@pytest.mark.parametrize("variant,kind", TEETH)
@pytest.mark.parametrize("validators", [4, 7])
def test_simulator_catches_broken_replica(variant: str, kind: str, validators: int) -> None:
    """A replica missing one safety rule breaks an invariant within the first 16 seeds of
    the fault kind that attacks that rule, and the real replica passes that same seed."""
    for seed in range(16):
        try:
            run_seed(seed, kind=kind, validators=validators, replica_class=VARIANTS[variant], variant=variant)
        except SimulationFailure as failure:
            assert "seed %d" % seed in str(failure)
            run_seed(seed, kind=kind, validators=validators, replica_class=Replica)
            return
    pytest.fail("the %s replica survived 16 seeds of %s with %d validators" % (variant, kind, validators))
