"""Which model version a bank's keys belong to, and finding that version to serve it.

A bank records, at creation (and at each reindex), the exact version whose encoders
wrote its keys: ``BankConfig.model`` (the name), ``model_version`` and
``model_fingerprint`` (the SHA-256 of the checkpoint file). Every write and query of
the bank runs that version and no other; a bank whose version is not loaded, or
whose version number now holds another checkpoint, is refused with
FAILED_PRECONDITION rather than served by weights that did not write its keys.
Banks from before versions were recorded (no ``model_version``) use the latest
ready version of their model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from memnet.errors import FailedPrecondition, NotFound
from memnet.serving.repository import InUse, ModelRef, ModelVersion
from memnet.store.interface import MemoryBank
from memnet.store.types import BankConfig


class ModelCatalog(Protocol):
    """The models a server can attach to banks (``memnet.serving.repository.ModelRepository``)."""

    @property
    def default_name(self) -> str: ...

    def get(self, ref: str | ModelRef | None = None) -> ModelVersion: ...

    def versions(self, name: str | None = None) -> list[ModelVersion]: ...

    def latest(self) -> list[ModelVersion]: ...

    def refresh(self, *, only: str | None = None) -> list[ModelVersion]: ...

    def unload(self, name: str, version: int, *, in_use: InUse) -> None: ...


def version_of(catalog: ModelCatalog, config: BankConfig, *, default_model: str) -> ModelVersion:
    """The loaded version whose keys ``config``'s bank holds; FAILED_PRECONDITION naming
    what is missing when it is not loaded or its checkpoint changed."""
    name = config.model or default_model
    ref = ModelRef(name, config.model_version)
    try:
        entry = catalog.get(ref)
    except (NotFound, FailedPrecondition) as error:
        raise FailedPrecondition(
            f"bank {config.name!r} uses model {ref}, which this server does not serve "
            f"({error}): load it, or reindex the bank with a model that is loaded",
            field="bank",
        ) from error
    wanted = config.model_fingerprint
    if wanted and entry.fingerprint != wanted:
        raise FailedPrecondition(
            f"bank {config.name!r} was encoded with {ref} (checkpoint sha256 {wanted[:12]}…) "
            f"but {ref} is now checkpoint {entry.fingerprint[:12]}…: reindex the bank "
            f"(memnet banks reindex {config.name} --model {ref})",
            field="bank",
        )
    return entry


def banks_using(banks: Sequence[MemoryBank], name: str, version: int) -> list[str]:
    """Names of the banks whose keys version ``name@version`` wrote."""
    return sorted(
        bank.name
        for bank in banks
        if bank.config.model == name and bank.config.model_version == version
    )


def describe(config: BankConfig, default_model: str) -> str:
    """NAME@VERSION of a bank's keys (NAME alone for banks without a recorded version)."""
    name = config.model or default_model
    return str(ModelRef(name, config.model_version))
