"""The Yuxi node: every piece of IO (storage, peer links, RPC, driver, command line)."""
