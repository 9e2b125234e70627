"""Generate ``client/memnet_client/aio.py`` (``AsyncMemnetClient``) from ``client.py``.

    .venv/bin/python scripts/gen_async_client.py          # rewrite aio.py
    .venv/bin/python scripts/gen_async_client.py --check  # exit 1 when aio.py is stale

``client.py`` is the one source of the SDK's methods (its module docstring says why
the async client is generated); ``tests/client/test_client_codegen.py`` fails when
the committed ``aio.py`` is not what this script makes of it. The whole
transformation, on the syntax tree:

1. Names: ``MemnetClient`` → ``AsyncMemnetClient``, ``open_channel`` →
   ``open_aio_channel``, ``close_channels`` → ``close_aio_channels``, ``Iterator`` →
   ``AsyncIterator``, ``__enter__`` / ``__exit__`` → ``__aenter__`` / ``__aexit__``
   (coroutines).
2. Transport calls are awaited: ``self._caller.call(...)`` → ``await
   self._caller.acall(...)``, ``close_channels(...)`` → ``await close_aio_channels(...)``.
3. A method that awaits becomes ``async def`` and its calls (``self.m(...)``) are
   awaited, repeated until nothing changes. A generator method that awaits becomes
   an async generator (``yield from xs`` → ``for item in xs: yield item``); calling
   one is not awaited, so a method that returns one stays a ``def`` (``list``).
4. The module docstring says the file is generated; the class docstring's first
   paragraph becomes ``CLASS_SUMMARY``.

ruff then applies its fixes (import order, the parentheses ``ast.unparse`` adds)
and formats the result, so it passes the lint as it is.
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "client" / "memnet_client" / "client.py"
TARGET = ROOT / "client" / "memnet_client" / "aio.py"

RENAMES = {
    "MemnetClient": "AsyncMemnetClient",
    "open_channel": "open_aio_channel",
    "Iterator": "AsyncIterator",
    "__enter__": "__aenter__",
    "__exit__": "__aexit__",
    "close_channels": "close_aio_channels",
}
AWAITED_CALLS = {
    "self._caller.call": "self._caller.acall",
    "close_channels": "close_aio_channels",
}
ALWAYS_ASYNC = {"__enter__", "__exit__"}
MODULE_DOCSTRING = """The asynchronous client over grpc.aio, ``AsyncMemnetClient``.

Generated from ``client.py`` by ``scripts/gen_async_client.py``: do not edit; change
``client.py`` and run the script. The methods are those of ``MemnetClient``, as
coroutines.
"""
CLASS_SUMMARY = """An asyncio client of memnet; ``async with`` it or ``await close()``.

    Create it inside a running event loop. Arguments, defaults, replicas, retries
    and errors are those of ``MemnetClient``; every method is a coroutine, and
    ``list`` returns an async iterator (``async for memory in client.list(bank)``)."""


def _is_generator(function: ast.FunctionDef) -> bool:
    return any(isinstance(node, ast.Yield | ast.YieldFrom) for node in ast.walk(function))


def _self_method(call: ast.Call) -> str | None:
    """``m`` for a call ``self.m(...)``, else None."""
    func = call.func
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        return func.attr if func.value.id == "self" else None
    return None


def _async_methods(methods: dict[str, ast.FunctionDef]) -> tuple[set[str], set[str]]:
    """(coroutines, async generators) among ``methods``: rule 3, to a fixed point."""
    coroutines = set(ALWAYS_ASYNC) & set(methods)
    generators: set[str] = set()
    changed = True
    while changed:
        changed = False
        for name, function in methods.items():
            if name in coroutines or name in generators:
                continue
            awaits = any(
                isinstance(node, ast.Call)
                and (ast.unparse(node.func) in AWAITED_CALLS or _self_method(node) in coroutines)
                for node in ast.walk(function)
            )
            if awaits:
                (generators if _is_generator(function) else coroutines).add(name)
                changed = True
    return coroutines, generators


class _ToAsync(ast.NodeTransformer):
    """Rules 1-3 over one module, given the coroutines and async generators of the class."""

    def __init__(self, coroutines: set[str], generators: set[str]) -> None:
        self.coroutines = coroutines
        self.generators = generators

    def visit_Name(self, node: ast.Name) -> ast.Name:
        node.id = RENAMES.get(node.id, node.id)
        return node

    def visit_alias(self, node: ast.alias) -> ast.alias:
        node.name = RENAMES.get(node.name, node.name)
        return node

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.ClassDef:
        self.generic_visit(node)
        node.name = RENAMES.get(node.name, node.name)
        docstring = ast.get_docstring(node, clean=False) or ""
        details = docstring.split("\n\n", 1)[1] if "\n\n" in docstring else ""
        node.body[0] = ast.Expr(ast.Constant(CLASS_SUMMARY + ("\n\n" + details if details else "")))
        return node

    def visit_Call(self, node: ast.Call) -> ast.expr:
        replacement = AWAITED_CALLS.get(ast.unparse(node.func))
        self.generic_visit(node)
        if replacement is not None:
            node.func = ast.parse(replacement, mode="eval").body
            return ast.Await(node)
        if _self_method(node) in self.coroutines:
            return ast.Await(node)
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.stmt:
        self.generic_visit(node)
        name = node.name
        node.name = RENAMES.get(name, name)
        if name not in self.coroutines and name not in self.generators:
            return node
        if name in self.generators:
            node.body = [_LoopYieldFrom().visit(statement) for statement in node.body]
        fields = {field: getattr(node, field) for field in node._fields}
        return ast.AsyncFunctionDef(**fields)


class _LoopYieldFrom(ast.NodeTransformer):
    """``yield from xs`` → ``for item in xs: yield item`` (async generators cannot delegate)."""

    def visit_Expr(self, node: ast.Expr) -> ast.stmt:
        if not isinstance(node.value, ast.YieldFrom):
            return node
        item = ast.Name("item", ast.Store())
        body: list[ast.stmt] = [ast.Expr(ast.Yield(ast.Name("item", ast.Load())))]
        return ast.For(target=item, iter=node.value.value, body=body, orelse=[])


def _ruff(arguments: list[str], text: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ruff", *arguments, "--stdin-filename", str(TARGET), "-"],
        input=text,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"ruff {' '.join(arguments)} failed: {done.stderr}")
    return done.stdout


def generate(source: str | None = None) -> str:
    """The text of ``aio.py`` for ``source`` (default: the text of ``client.py``)."""
    tree = ast.parse(SOURCE.read_text() if source is None else source)
    (client,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "MemnetClient"]
    methods = {n.name: n for n in client.body if isinstance(n, ast.FunctionDef)}
    coroutines, generators = _async_methods(methods)
    tree = _ToAsync(coroutines, generators).visit(tree)
    tree.body[0] = ast.Expr(ast.Constant(MODULE_DOCSTRING))
    ast.fix_missing_locations(tree)
    text = ast.unparse(tree) + "\n"
    text = _ruff(["check", "--fix", "--quiet", "--exit-zero"], text)
    return _ruff(["format", "--quiet"], text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if aio.py is not current")
    args = parser.parse_args(argv)
    text = generate()
    if args.check:
        current = TARGET.read_text() == text
        print(f"{TARGET.relative_to(ROOT)}: {'current' if current else 'STALE, regenerate'}")
        return 0 if current else 1
    TARGET.write_text(text)
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
