"""Deterministic whole-cluster simulation of the consensus replica (a test harness).

Everything here is drawn from one seed through random.Random, so any run replays
exactly. It lives outside consensus/ because it needs seeded randomness.
"""
