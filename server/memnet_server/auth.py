"""API keys: who may read or write which banks.

The keys file (JSON, or TOML when its name ends in ``.toml``) lists keys::

    {"keys": [
      {"name": "ingest", "key": "s3cret", "banks": ["*"], "rights": "write"},
      {"name": "reader", "key_sha256": "<hex>", "banks": ["support-*"], "rights": "read"}
    ]}

``banks`` holds bank names or shell-style patterns (``*`` = every bank);
``rights`` is ``read`` (Get/List/Count/Query), ``write`` (read plus create,
write, delete) or ``admin`` (write plus loading and unloading models and
reindexing banks). A key may be given in clear (``key``) or as the hex SHA-256 of
the key (``key_sha256``). Clients send ``authorization: Bearer <key>``. Keys are
compared as SHA-256 digests with ``hmac.compare_digest`` and never logged.
"""

from __future__ import annotations

import contextvars
import fnmatch
import hashlib
import hmac
import json
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from memnet.errors import InvalidArgument, PermissionDenied, Unauthenticated


class Right(StrEnum):
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"

    @property
    def level(self) -> int:
        return _LEVELS[self]


_LEVELS = {Right.READ: 0, Right.WRITE: 1, Right.ADMIN: 2}


@dataclass(frozen=True)
class Principal:
    """The holder of one API key."""

    name: str
    bank_patterns: tuple[str, ...]
    right: Right

    def may_access(self, bank: str) -> bool:
        return any(fnmatch.fnmatchcase(bank, pattern) for pattern in self.bank_patterns)

    def check(self, bank: str, right: Right) -> None:
        """Raise PermissionDenied unless this key may ``right`` the bank."""
        if not self.may_access(bank):
            raise PermissionDenied(
                f"API key {self.name!r} may not access bank {bank!r}", field="bank"
            )
        if self.right.level < right.level:
            raise PermissionDenied(
                f"API key {self.name!r} has the {self.right.value} right; this call on bank "
                f"{bank!r} needs {right.value}",
                field="bank",
            )

    def check_right(self, right: Right) -> None:
        """Raise PermissionDenied unless this key has ``right`` (calls that name no bank)."""
        if self.right.level < right.level:
            raise PermissionDenied(
                f"API key {self.name!r} has the {self.right.value} right; this call needs "
                f"{right.value}",
                field="authorization",
            )


CURRENT_PRINCIPAL: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "memnet_principal", default=None
)


def visible(bank: str) -> bool:
    """Whether the caller of the current RPC may see ``bank`` (True with auth off)."""
    principal = CURRENT_PRINCIPAL.get()
    return principal is None or principal.may_access(bank)


class KeyRing:
    """The loaded keys file: SHA-256 digests of keys → principals."""

    def __init__(self, entries: Sequence[tuple[bytes, Principal]]) -> None:
        if not entries:
            raise InvalidArgument("the API keys file lists no keys", field="api_keys_file")
        self._entries = list(entries)

    @classmethod
    def load(cls, path: Path) -> KeyRing:
        try:
            raw = path.read_bytes()
            document = tomllib.loads(raw.decode()) if path.suffix == ".toml" else json.loads(raw)
        except (OSError, ValueError) as error:
            raise InvalidArgument(
                f"cannot read API keys file {path}: {error}", field="api_keys_file"
            ) from error
        keys = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(keys, list):
            raise InvalidArgument(
                f"API keys file {path} must hold a list 'keys'", field="api_keys_file"
            )
        return cls([_entry(item, index) for index, item in enumerate(keys)])

    def authenticate(self, metadata: Sequence[tuple[str, str | bytes]]) -> Principal:
        """The principal of the request's ``authorization: Bearer <key>``."""
        header = next((value for name, value in metadata if name == "authorization"), None)
        if header is None:
            raise Unauthenticated(
                "missing 'authorization: Bearer <API key>' metadata", field="authorization"
            )
        text = header.decode() if isinstance(header, bytes) else header
        scheme, _, key = text.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise Unauthenticated(
                "authorization metadata must be 'Bearer <API key>'", field="authorization"
            )
        digest = hashlib.sha256(key.strip().encode()).digest()
        found: Principal | None = None
        for stored, principal in self._entries:
            if hmac.compare_digest(stored, digest):
                found = principal
        if found is None:
            raise Unauthenticated("unknown API key", field="authorization")
        return found


def _entry(item: object, index: int) -> tuple[bytes, Principal]:
    where = f"keys[{index}]"
    if not isinstance(item, dict):
        raise InvalidArgument(f"{where} must be an object", field="api_keys_file")
    if "key" in item:
        digest = hashlib.sha256(str(item["key"]).encode()).digest()
    elif "key_sha256" in item:
        try:
            digest = bytes.fromhex(str(item["key_sha256"]))
        except ValueError as error:
            raise InvalidArgument(
                f"{where}.key_sha256 is not hex", field="api_keys_file"
            ) from error
        if len(digest) != 32:
            raise InvalidArgument(
                f"{where}.key_sha256 must be 64 hex digits", field="api_keys_file"
            )
    else:
        raise InvalidArgument(f"{where} needs 'key' or 'key_sha256'", field="api_keys_file")
    banks = item.get("banks", [])
    if not isinstance(banks, list) or not banks or not all(isinstance(b, str) for b in banks):
        raise InvalidArgument(
            f"{where}.banks must be a non-empty list of names or patterns", field="api_keys_file"
        )
    try:
        right = Right(item.get("rights", "read"))
    except ValueError as error:
        raise InvalidArgument(
            f"{where}.rights must be 'read', 'write' or 'admin'", field="api_keys_file"
        ) from error
    name = str(item.get("name", where))
    return digest, Principal(name=name, bank_patterns=tuple(banks), right=right)
