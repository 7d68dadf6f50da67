"""The `yuxi` command line (PROTOCOL §8): keygen, genesis, node run, testnet, audit."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from node.errors import NodeSetupError
from node.keys import load_key_file, write_key_file
from primitives.crypto import SigningKey, is_account_id


def _fail(message: str) -> None:
    click.echo("error: %s" % message, err=True)
    sys.exit(1)


@click.group()
def main() -> None:
    """Yuxi: a permissioned BFT ledger for digital collectibles."""


@main.command()
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Key file to write (mode 0600).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def keygen(out_path: Path, force: bool) -> None:
    """Write a new Ed25519 key file and print its public key."""
    try:
        key = SigningKey.generate()
        write_key_file(out_path, key, overwrite=force)
    except NodeSetupError as exc:
        _fail(str(exc))
    click.echo(key.public_key)


def _pubkey_of(value: str) -> str:
    """A public key given as hex or as a key file path."""
    if is_account_id(value):
        return value
    path = Path(value)
    if path.exists():
        return load_key_file(path).public_key
    raise NodeSetupError(
        "%r is neither a public key (64 lowercase hex) nor an existing key file" % value
    )


@main.command()
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Genesis file to write.",
)
@click.option("--dev", is_flag=True, help="The development chain of PROTOCOL §8 (well-known keys).")
@click.option(
    "--validators",
    "validator_count",
    default=4,
    show_default=True,
    help="With --dev: how many validators.",
)
@click.option(
    "--base-port",
    default=8600,
    show_default=True,
    help="With --dev: RPC of validator i on P+i, peers on P+100+i.",
)
@click.option("--chain-id", default=None, help="Chain id (required without --dev).")
@click.option(
    "--validator",
    "validator_specs",
    multiple=True,
    help="PUBKEY_OR_KEYFILE,NAME,HOST:PORT (peer endpoint); repeat per validator.",
)
@click.option(
    "--role",
    "role_specs",
    multiple=True,
    help="ROLE=PUBKEY_OR_KEYFILE with ROLE one of governor, kyc_authority, issuer, compliance; repeat.",
)
@click.option("--param", "param_specs", multiple=True, help="NAME=INTEGER chain parameter; repeat.")
@click.option(
    "--genesis-time",
    "genesis_time_ms",
    type=int,
    default=None,
    help="Milliseconds since the epoch (default: now).",
)
def genesis(
    out_path: Path,
    dev: bool,
    validator_count: int,
    base_port: int,
    chain_id: str | None,
    validator_specs: tuple[str, ...],
    role_specs: tuple[str, ...],
    param_specs: tuple[str, ...],
    genesis_time_ms: int | None,
) -> None:
    """Write a genesis file from validator and role keys (or the development chain with --dev)."""
    from contracts.genesis import GenesisError, devnet_genesis, load_genesis

    genesis_time_ms = (
        genesis_time_ms if genesis_time_ms is not None else time.time_ns() // 1_000_000
    )
    try:
        if dev:
            obj = devnet_genesis(validator_count, genesis_time_ms, base_port)
        else:
            if not chain_id:
                raise NodeSetupError("--chain-id is required (or use --dev)")
            if not validator_specs:
                raise NodeSetupError(
                    "at least one --validator PUBKEY_OR_KEYFILE,NAME,HOST:PORT is needed"
                )
            validators = []
            for spec in validator_specs:
                parts = spec.split(",")
                if len(parts) != 3:
                    raise NodeSetupError(
                        "--validator %r: expected PUBKEY_OR_KEYFILE,NAME,HOST:PORT" % spec
                    )
                validators.append(
                    {"pubkey": _pubkey_of(parts[0]), "name": parts[1], "endpoint": parts[2]}
                )
            roles: dict[str, list[str]] = {}
            for spec in role_specs:
                role, _, who = spec.partition("=")
                if not who:
                    raise NodeSetupError("--role %r: expected ROLE=PUBKEY_OR_KEYFILE" % spec)
                roles.setdefault(_pubkey_of(who), []).append(role)
            params: dict[str, int] = {}
            for spec in param_specs:
                name, _, value = spec.partition("=")
                if not value.isdigit():
                    raise NodeSetupError("--param %r: expected NAME=INTEGER" % spec)
                params[name] = int(value)
            obj = {
                "chain_id": chain_id,
                "genesis_time": genesis_time_ms,
                "dev": False,
                "params": params,
                "validators": validators,
                "accounts": [
                    {"account": account, "roles": sorted(set(r))} for account, r in roles.items()
                ],
            }
        checked = load_genesis(obj)
    except (NodeSetupError, GenesisError) as exc:
        _fail(str(exc))
    if out_path.exists():
        _fail("%s already exists; refusing to overwrite a genesis file" % out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    click.echo("wrote %s (chain %s, genesis hash %s)" % (out_path, checked.chain_id, checked.hash))


@main.group()
def node() -> None:
    """Run a validator or a follower."""


@node.command(name="run")
@click.option(
    "--home",
    required=True,
    type=click.Path(path_type=Path),
    help="Node home: config.toml, key, genesis, data.",
)
def node_run(home: Path) -> None:
    """Run one validator (or a non-voting follower) from HOME's config, key and genesis."""
    from node.runner import run_node

    try:
        run_node(home)
    except NodeSetupError as exc:
        _fail(str(exc))


@main.command()
@click.option(
    "--validators", "validator_count", default=4, show_default=True, type=click.IntRange(1, 64)
)
@click.option(
    "--dir",
    "directory",
    default=Path("yuxi-testnet"),
    show_default=True,
    type=click.Path(path_type=Path),
)
@click.option("--base-port", default=8600, show_default=True, type=click.IntRange(1024, 65000))
def testnet(validator_count: int, directory: Path, base_port: int) -> None:
    """A local development chain of N validator processes (resumes when run again)."""
    from node.testnet import run_testnet

    try:
        sys.exit(run_testnet(validator_count, directory, base_port))
    except NodeSetupError as exc:
        _fail(str(exc))


def _attach_audit() -> None:
    from node.audit.cli import audit_group

    main.add_command(audit_group, name="audit")


_attach_audit()

if __name__ == "__main__":
    main()
