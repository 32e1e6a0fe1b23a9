"""The master key and the keyed hashes (blind index) derived from it."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

log = logging.getLogger(__name__)

MASTER_KEY_BYTES = 32


class MasterKeyError(RuntimeError):
    """The master key is missing or malformed; the message says how to fix it."""


def generate_master_key() -> str:
    """A new master key, base64 of 32 random bytes."""
    return base64.b64encode(secrets.token_bytes(MASTER_KEY_BYTES)).decode()


def decode_master_key(text: str, *, origin: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise MasterKeyError(f"{origin} is not base64") from None
    if len(key) != MASTER_KEY_BYTES:
        raise MasterKeyError(f"{origin} must decode to {MASTER_KEY_BYTES} bytes, not {len(key)}")
    return key


def load_master_key(master_key: str | None, key_file: Path, *, create: bool) -> bytes:
    """The master key from ``CRM_MASTER_KEY``, else from ``key_file``.

    With ``create`` (the embedded default) a missing key file is generated and the log
    says so; otherwise a missing key is an error, because a server that invents a key
    nobody kept would make personal data unreadable after its next restart.
    """
    if master_key:
        return decode_master_key(master_key, origin="CRM_MASTER_KEY")
    if key_file.exists():
        return decode_master_key(key_file.read_text(), origin=f"key file {key_file}")
    if not create:
        raise MasterKeyError(
            f"no master key: set CRM_MASTER_KEY or create {key_file} "
            "(`crm keys generate` prints a new key)"
        )
    text = generate_master_key()
    write_key_file(key_file, text, replace=False)
    log.warning(
        "generated a new master key in %s; keep it safe and back it up: without it "
        "personal data cannot be read",
        key_file.resolve(),
    )
    return decode_master_key(text, origin=f"key file {key_file}")


def write_key_file(key_file: Path, text: str, *, replace: bool = True) -> None:
    """Write a master key readable by its owner only; a replacement goes to a new file
    first and is renamed over the old one, so no crash leaves half a key."""
    key_file.parent.mkdir(parents=True, exist_ok=True)
    target = key_file.with_name(key_file.name + ".new") if replace else key_file
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    if replace:
        target.replace(key_file)


def derive_key(master_key: bytes, purpose: str) -> bytes:
    """A sub-key for one purpose, so no key is used for two things."""
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=f"crm-core/{purpose}".encode()
    ).derive(master_key)


class HmacBlindIndex:
    """HMAC-SHA256 of ``kind:value`` under a key derived from the master key."""

    def __init__(self, master_key: bytes) -> None:
        self._key = derive_key(master_key, "blind-index/v1")

    def digest(self, kind: str, value: str) -> str:
        return hmac.new(self._key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()
