"""Key files: a JSON object with the Ed25519 seed, written with mode 0600."""

from __future__ import annotations

import json
import os
from pathlib import Path

from node.errors import NodeSetupError
from primitives.crypto import SigningKey, is_hex

KEY_FILE_TYPE = "yuxi-ed25519-v1"


def write_key_file(path: Path, key: SigningKey, *, overwrite: bool = False) -> None:
    """Write `key` to `path` readable by its owner only; refuse to clobber an existing key."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise NodeSetupError("key file %s already exists; refusing to overwrite it" % path)
    path.parent.mkdir(parents=True, exist_ok=True)
    content = json.dumps(
        {"type": KEY_FILE_TYPE, "public_key": key.public_key, "seed": key.seed.hex()}, indent=2
    )
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    descriptor = os.open(path, flags, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(content + "\n")
    os.chmod(path, 0o600)  # O_CREAT's mode does not apply when the file already existed


def load_key_file(path: Path) -> SigningKey:
    """Read a key file, with a one-line error for every way it can be wrong."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise NodeSetupError(
            "key file %s does not exist (create one with `yuxi keygen --out %s`)" % (path, path)
        ) from None
    except OSError as exc:
        raise NodeSetupError("cannot read key file %s: %s" % (path, exc.strerror)) from None
    try:
        content = json.loads(text)
    except ValueError as exc:
        raise NodeSetupError("key file %s is not valid JSON: %s" % (path, exc)) from None
    if not isinstance(content, dict) or content.get("type") != KEY_FILE_TYPE:
        raise NodeSetupError(
            "key file %s is not a Yuxi key file (type %r expected)" % (path, KEY_FILE_TYPE)
        )
    seed = content.get("seed")
    if not is_hex(seed, 32):
        raise NodeSetupError("key file %s has no valid seed (64 lowercase hex characters)" % path)
    key = SigningKey(bytes.fromhex(str(seed)))
    if content.get("public_key") not in (None, key.public_key):
        raise NodeSetupError("key file %s: public_key does not match its seed" % path)
    return key
