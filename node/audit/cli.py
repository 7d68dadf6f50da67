"""`yuxi audit ...`: replay, verify-proof, export (attached to the node's click group).

Exit status: 0 when everything checks, 1 at the first mismatch (the chain or a
proof is wrong), 2 when the chain or a file cannot be read.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from node.audit.errors import AuditError, SourceError

EXIT_MISMATCH = 1
EXIT_UNREADABLE = 2


def _open_source(home: Path | None, from_url: str | None) -> tuple[Any, str]:
    from node.audit.sources import HomeSource, RpcSource

    if (home is None) == (from_url is None):
        raise click.UsageError("give exactly one of --home DIR or --from URL")
    if home is not None:
        return HomeSource(home), "home %s" % home
    return RpcSource(str(from_url)), str(from_url)


def _read_json_file(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise SourceError("cannot read %s: %s" % (path, exc)) from None


def _resolve_genesis(source: Any, genesis_file: Path | None) -> tuple[dict[str, Any], bool]:
    """The genesis to check against: the auditor's own file when given (and the
    source's must then match it), else the one the source serves."""
    from node.audit.replay import genesis_hash_of

    if genesis_file is None:
        return source.genesis(), False
    pinned = _read_json_file(genesis_file)
    if not isinstance(pinned, dict):
        raise SourceError("%s is not a JSON object" % genesis_file)
    try:
        served = source.genesis()
    except SourceError:
        served = None
    if served is not None and genesis_hash_of(served) != genesis_hash_of(pinned):
        raise AuditError(
            0,
            "the source's genesis hashes to %s, yours to %s: another chain"
            % (genesis_hash_of(served), genesis_hash_of(pinned)),
            check="genesis",
        )
    return pinned, True


def run_replay(
    *,
    home: Path | None,
    from_url: str | None,
    genesis_file: Path | None,
    workers: int | None,
    observers: list[Any],
    progress: bool,
) -> dict[str, Any]:
    """Replay and build the summary; raises AuditError / SourceError."""
    from node.audit.replay import genesis_hash_of, replay_chain
    from node.audit.report import ChainReport, build_summary
    from node.audit.signatures import SignatureChecker, measure_verify_rate

    source, source_name = _open_source(home, from_url)
    try:
        genesis_obj, pinned = _resolve_genesis(source, genesis_file)
        target = source.height()
        verify_rate = measure_verify_rate()
        report = ChainReport()
        with SignatureChecker(workers) as checker:
            if progress:
                chain = _replay_with_progress(
                    genesis_obj, source, target, checker, [report, *observers]
                )
            else:
                chain = replay_chain(
                    genesis_obj,
                    source.blocks(target),
                    checker=checker,
                    expected_height=target,
                    observers=[report, *observers],
                )
            return build_summary(
                chain,
                report,
                source=source_name,
                genesis_hash=genesis_hash_of(genesis_obj),
                genesis_pinned=pinned,
                verify_rate=verify_rate,
                workers=checker.workers,
            )
    finally:
        source.close()


def _replay_with_progress(
    genesis_obj: Any, source: Any, target: int, checker: Any, observers: list[Any]
) -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from node.audit.replay import replay_chain

    columns = (
        TextColumn("replaying"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("blocks {task.fields[txs]} txs"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task("replay", total=max(target, 1), txs=0)

        def on_progress(height: int, txs: int) -> None:
            if height % 16 == 0 or height == target:
                bar.update(task, completed=height, txs=txs)

        return replay_chain(
            genesis_obj,
            source.blocks(target),
            checker=checker,
            expected_height=target,
            observers=observers,
            on_progress=on_progress,
        )


def _fail(error: Exception, as_json: bool, code: int) -> None:
    if as_json:
        detail = error.to_dict() if isinstance(error, AuditError) else {"message": str(error)}
        click.echo(json.dumps({"ok": False, "error": detail}, indent=2))
    else:
        label = "MISMATCH" if isinstance(error, AuditError) else "cannot read the chain"
        click.echo("%s: %s" % (label, error), err=True)
    sys.exit(code)


@click.group(name="audit")
def audit_group() -> None:
    """Check the chain, state proofs and provenance without trusting any node."""


def _chain_source_options(command: Callable[..., None]) -> Callable[..., None]:
    """The options naming where the chain comes from, shared by replay and export."""
    for option in reversed(
        [
            click.option(
                "--home",
                "home",
                type=click.Path(path_type=Path, file_okay=False),
                help="a node's home directory",
            ),
            click.option(
                "--from",
                "from_url",
                metavar="URL",
                help="RPC address of any node, e.g. http://127.0.0.1:8600",
            ),
            click.option(
                "--genesis",
                "genesis_file",
                type=click.Path(path_type=Path, dir_okay=False),
                help="the chain's genesis file (pins the chain; otherwise the source's is used)",
            ),
            click.option(
                "--workers",
                type=int,
                default=None,
                help="signature-check processes (default: one per core)",
            ),
        ]
    ):
        command = option(command)
    return command


@audit_group.command(name="replay")
@_chain_source_options
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
def replay_command(
    home: Path | None,
    from_url: str | None,
    genesis_file: Path | None,
    as_json: bool,
    workers: int | None,
) -> None:
    """Re-execute the chain from genesis and check every signature, certificate and root."""
    progress = sys.stdout.isatty() and not as_json
    try:
        summary = run_replay(
            home=home,
            from_url=from_url,
            genesis_file=genesis_file,
            workers=workers,
            observers=[],
            progress=progress,
        )
    except AuditError as exc:
        _fail(exc, as_json, EXIT_MISMATCH)
        return
    except SourceError as exc:
        _fail(exc, as_json, EXIT_UNREADABLE)
        return
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        from rich.console import Console

        from node.audit.report import render_text

        render_text(summary, Console())


@audit_group.command(name="export")
@_chain_source_options
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="the SQLite file to write (replaced if it exists)",
)
def export_command(
    from_url: str | None,
    home: Path | None,
    genesis_file: Path | None,
    out: Path,
    workers: int | None,
) -> None:
    """Replay the chain and write blocks, transactions, results, token ownership history
    and sanctions into an SQLite database (only verified blocks are written)."""
    from node.audit.export import SqliteExporter

    exporter = SqliteExporter(out)
    try:
        summary = run_replay(
            home=home,
            from_url=from_url,
            genesis_file=genesis_file,
            workers=workers,
            observers=[exporter],
            progress=sys.stdout.isatty(),
        )
    except AuditError as exc:
        exporter.abort()
        _fail(exc, False, EXIT_MISMATCH)
        return
    except SourceError as exc:
        exporter.abort()
        _fail(exc, False, EXIT_UNREADABLE)
        return
    exporter.finish(
        {
            key: summary[key]
            for key in (
                "chain_id",
                "genesis_hash",
                "height",
                "head_hash",
                "state_root",
                "source",
                "transactions",
            )
        }
    )
    click.echo(
        "exported %d blocks, %d transactions to %s (state root %s)"
        % (summary["blocks"], summary["transactions"], out, summary["state_root"])
    )


@audit_group.command(name="verify-proof")
@click.argument("proof_file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--genesis",
    "genesis_file",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="the chain's genesis file",
)
@click.option(
    "--validators",
    "validators_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="JSON list of the validator keys in force at the proof's height, when the set "
    "changed since genesis",
)
@click.option("--json", "as_json", is_flag=True, help="print the outcome as JSON")
def verify_proof_command(
    proof_file: Path, genesis_file: Path, validators_file: Path | None, as_json: bool
) -> None:
    """Check a saved proof (GET /v1/proofs/...) offline: certificate, header hash, state proof."""
    from contracts.genesis import GenesisError, load_genesis
    from node.audit.proofs import ProofError, verify_proof_document

    try:
        document = _read_json_file(proof_file)
        genesis_obj = _read_json_file(genesis_file)
        try:
            genesis = load_genesis(genesis_obj)
        except GenesisError as exc:
            raise SourceError("%s: %s" % (genesis_file, exc)) from None
        validators = None
        if validators_file is not None:
            listed = _read_json_file(validators_file)
            if not isinstance(listed, list):
                raise SourceError("%s must hold a JSON list of validator keys" % validators_file)
            validators = [item["pubkey"] if isinstance(item, dict) else item for item in listed]
    except SourceError as exc:
        _fail(exc, as_json, EXIT_UNREADABLE)
        return
    try:
        outcome = verify_proof_document(document, genesis, validators)
    except ProofError as exc:
        if as_json:
            click.echo(json.dumps({"ok": False, "error": {"message": str(exc)}}, indent=2))
        else:
            click.echo("INVALID PROOF: %s" % exc, err=True)
        sys.exit(EXIT_MISMATCH)
    if as_json:
        click.echo(json.dumps(outcome, indent=2))
        return
    state = "present" if outcome["present"] else "absent"
    click.echo(
        "proof valid: %s is %s at height %d (block %s, state root %s, signed by %d validators)"
        % (
            outcome["key"],
            state,
            outcome["height"],
            outcome["hash"],
            outcome["state_root"],
            len(outcome["signers"]),
        )
    )
    if outcome["present"]:
        click.echo(json.dumps(outcome["value"], indent=2, sort_keys=True))
