"""Prometheus metrics of one node, in a registry of its own (several nodes may share a process in tests)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "NodeMetrics"]


class NodeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.height = Gauge(
            "yuxi_height", "Height of the last committed block", registry=self.registry
        )
        self.view = Gauge(
            "yuxi_view", "Current consensus view at the current height", registry=self.registry
        )
        self.commits = Counter(
            "yuxi_commits", "Blocks committed by this node", registry=self.registry
        )
        self.committed_txs = Counter(
            "yuxi_committed_txs", "Transactions in committed blocks", registry=self.registry
        )
        self.view_changes = Counter(
            "yuxi_view_changes", "View changes seen by this node", registry=self.registry
        )
        self.mempool_size = Gauge(
            "yuxi_mempool_size", "Transactions waiting in the mempool", registry=self.registry
        )
        self.peer_count = Gauge(
            "yuxi_peer_count", "Validator links currently up", registry=self.registry
        )
        self.rpc_latency = Histogram(
            "yuxi_rpc_latency_seconds",
            "RPC request latency",
            ["route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        )
        self.rpc_errors = Counter(
            "yuxi_rpc_errors", "RPC answers with an error code", ["code"], registry=self.registry
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
