#!/usr/bin/env python3
"""Run the deterministic cluster simulator over many seeds (longer campaigns than the suite).

    python scripts/simulate.py --seeds 1000                 # seeds 1..1000, every fault kind
    python scripts/simulate.py --seed 42 --kind crash --validators 7   # replay one run
    python scripts/simulate.py --seeds 50 --variant quorum_2f           # watch a broken replica get caught

Reports per run and in total: simulated time, blocks committed, view changes and faults
injected. Exits non-zero if any seed fails; each failure prints its one-line replay command.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from consensus.replica import Replica  # noqa: E402
from simulation.broken import VARIANTS  # noqa: E402
from simulation.cluster import FAULT_KINDS, Simulation, SimulationFailure  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, help="run this one seed")
    parser.add_argument("--seeds", type=int, default=100, help="how many seeds to run")
    parser.add_argument("--start", type=int, default=1, help="first seed of a campaign")
    parser.add_argument("--kind", choices=FAULT_KINDS, help="fault kind (default: chosen by the seed)")
    parser.add_argument("--validators", type=int, choices=(4, 7), help="cluster size (default: by the seed)")
    parser.add_argument("--variant", choices=sorted(VARIANTS), help="run a deliberately broken replica")
    parser.add_argument("--fault-ms", type=int, default=5000, help="simulated time with faults")
    parser.add_argument("--healthy-ms", type=int, default=8000, help="simulated time after faults heal")
    parser.add_argument("--quiet", action="store_true", help="print failures and the summary only")
    args = parser.parse_args()

    seeds = [args.seed] if args.seed is not None else list(range(args.start, args.start + args.seeds))
    replica_class = VARIANTS[args.variant] if args.variant else Replica
    totals = {"simulated_ms": 0, "blocks": 0, "view_changes": 0, "evidence": 0}
    faults: dict[str, int] = {}
    failures: list[str] = []
    started = time.perf_counter()
    for seed in seeds:
        simulation = Simulation(
            seed,
            kind=args.kind,
            validators=args.validators,
            replica_class=replica_class,
            variant=args.variant,
            fault_ms=args.fault_ms,
            healthy_ms=args.healthy_ms,
        )
        try:
            result = simulation.run()
        except SimulationFailure as failure:
            failures.append(str(failure))
            print("FAIL " + str(failure), flush=True)
            continue
        totals["simulated_ms"] += result.simulated_ms
        totals["blocks"] += result.blocks
        totals["view_changes"] += result.view_changes
        totals["evidence"] += result.evidence
        for name, count in result.faults.items():
            faults[name] = faults.get(name, 0) + count
        if not args.quiet:
            print(
                "seed %d %-19s n=%d  %6d ms simulated  %4d blocks  %4d view changes  %3d evidence  faults %s"
                % (
                    seed,
                    result.kind,
                    result.validators,
                    result.simulated_ms,
                    result.blocks,
                    result.view_changes,
                    result.evidence,
                    ", ".join("%s=%d" % item for item in result.faults.items()) or "none",
                ),
                flush=True,
            )
    elapsed = time.perf_counter() - started
    print(
        "\n%d seeds, %d failed, in %.1f s wall: %.1f s simulated, %d blocks committed, "
        "%d view changes, %d evidence records"
        % (
            len(seeds),
            len(failures),
            elapsed,
            totals["simulated_ms"] / 1000,
            totals["blocks"],
            totals["view_changes"],
            totals["evidence"],
        )
    )
    print("faults injected: " + (", ".join("%s=%d" % item for item in sorted(faults.items())) or "none"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
