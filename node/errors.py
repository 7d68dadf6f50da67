"""Errors an operator sees as one clear line (bad config, key, genesis, port in use)."""

from __future__ import annotations


class NodeSetupError(Exception):
    """A problem with the node's files or environment that stops it from starting."""
