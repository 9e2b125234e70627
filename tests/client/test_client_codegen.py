"""``aio.py`` is generated from ``client.py``: the committed file is current, and both
clients offer the same methods, parameters and docstrings."""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path
from types import ModuleType

import pytest

from memnet_client import AsyncMemnetClient, MemnetClient

GENERATOR = Path(__file__).resolve().parents[2] / "scripts" / "gen_async_client.py"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_async_client", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_async_client_is_what_the_generator_makes_of_the_sync_one() -> None:
    generator = _generator()
    assert generator.TARGET.read_text() == generator.generate(), (
        "client/memnet_client/aio.py is stale: run .venv/bin/python scripts/gen_async_client.py"
    )


def _public_methods(cls: type) -> dict[str, object]:
    return {
        name: member
        for name, member in vars(cls).items()
        if callable(member) and not name.startswith("_")
    }


def test_both_clients_have_the_same_methods_signatures_and_docstrings() -> None:
    sync_methods, async_methods = _public_methods(MemnetClient), _public_methods(AsyncMemnetClient)
    assert sync_methods.keys() == async_methods.keys()
    assert {"query", "query_arrays", "write", "stream_write", "list", "close"} <= set(sync_methods)
    for name, sync_method in sync_methods.items():
        async_method = async_methods[name]
        sync_parameters = inspect.signature(sync_method).parameters  # type: ignore[arg-type]
        async_parameters = inspect.signature(async_method).parameters  # type: ignore[arg-type]
        assert [(p.name, p.kind, p.default) for p in sync_parameters.values()] == [
            (p.name, p.kind, p.default) for p in async_parameters.values()
        ], name
        assert inspect.getdoc(sync_method) == inspect.getdoc(async_method), name
        # ``list`` returns an async iterator; every other method is a coroutine.
        assert inspect.iscoroutinefunction(async_method) == (name != "list"), name
        assert not inspect.iscoroutinefunction(sync_method)


NEW_METHODS = '''
    def reindex_bank(self, name: str, *, timeout_s: float | None = None) -> Bank:
        """Re-encode every memory of the bank with its model's current weights."""
        request = bank_pb2.GetBankRequest(name=_checks.bank_name(name, field="name"))
        response = self._call("GetBank", request, timeout_s)
        return _convert.bank(response.bank)

    def texts(self, bank: str) -> Iterator[str]:
        for memory in self.list(bank):
            yield memory.text

    def ids(self, bank: str) -> builtins.list[str]:
        return [memory.id for memory in self.list(bank)]

    def reindex_all(self) -> None:
        for bank in self.list_banks():
            self.reindex_bank(bank.name)
'''


def test_methods_added_to_the_sync_client_are_generated_into_the_async_one() -> None:
    generator = _generator()
    generated = generator.generate(generator.SOURCE.read_text() + NEW_METHODS)
    assert generated != generator.TARGET.read_text()  # the currency test would now fail
    namespace: dict[str, object] = {}
    exec(compile(generated, "aio.py", "exec"), namespace)  # the output is valid Python
    client = namespace["AsyncMemnetClient"]
    for name in ("reindex_bank", "ids", "reindex_all"):
        assert inspect.iscoroutinefunction(getattr(client, name)), name
    assert inspect.isasyncgenfunction(client.texts)  # type: ignore[attr-defined]
    assert 'response = await self._call("GetBank", request, timeout_s)' in generated
    assert "async for memory in self.list(bank):" in generated
    assert "return [memory.id async for memory in self.list(bank)]" in generated
    assert "for bank in await self.list_banks():" in generated
    assert "await self.reindex_bank(bank.name)" in generated


def test_a_use_of_an_iterator_that_cannot_become_async_is_refused() -> None:
    generator = _generator()
    unconvertible = """
    def sorted_ids(self, bank: str) -> builtins.list[str]:
        return sorted(self.list(bank))
"""
    with pytest.raises(ValueError, match=r"sorted_ids: self.list\(bank\) is an async iterator"):
        generator.generate(generator.SOURCE.read_text() + unconvertible)
