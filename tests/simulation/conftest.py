"""Print the fresh simulator seeds of this run in the terminal summary, for replaying."""

from __future__ import annotations

from simulation_seeds import FRESH_SEEDS


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # type: ignore[no-untyped-def]
    terminalreporter.write_sep("-", "fresh simulator seeds of this run")
    terminalreporter.write_line("YUXI_FRESH_SEEDS=" + ",".join(str(seed) for seed in FRESH_SEEDS))
