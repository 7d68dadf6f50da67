"""The Yuxi node: every piece of IO (storage, peer links, RPC, driver, command line).

Modules, from the bottom up:
- config, keys, errors, clock: the home directory (config.toml, key file), one-line setup errors,
  the node clock (with the development offset).
- storage: LevelDB, one synced batch per committed block; tree_buffer (the tree's unwritten
  nodes); record_log (append-only files: the safety journal, pending_log's pending txs).
- mempool: PROTOCOL §2 admission, nonce ordering, bounds; SignatureCache (one check per tx).
- application: NodeApplication, the consensus.application.Application over storage + contracts.
- peers, gossip: authenticated validator links (WebSockets) and batched transaction gossip.
- driver: ReplicaDriver, the one task that owns the PBFT replica and carries out its effects.
- service, rpc, rpc_support, metrics: the PROTOCOL §6 RPC (make_rpc_app) and Prometheus metrics.
- follower: the non-voting follower that verifies and re-executes every block.
- runner: the composition root of `yuxi node run`; testnet: the supervised local chain; cli: `yuxi`.
"""
