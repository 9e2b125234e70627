"""Generate ``client/memnet_client/aio.py`` (``AsyncMemnetClient``) from ``client.py``.

    .venv/bin/python scripts/gen_async_client.py          # rewrite aio.py
    .venv/bin/python scripts/gen_async_client.py --check  # exit 1 when aio.py is stale

``client.py`` is the one source of the SDK's methods; ``tests/client/test_client_codegen.py``
fails when the committed ``aio.py`` is not what this script makes of it.

Why generate rather than share one definition at run time: the two clients differ
only in ``async``/``await`` and in their transport (``grpc`` vs ``grpc.aio``
channels), and a generated file keeps both clients plain Python, every method with
its real signature and docstring, which mypy, IDEs, ``help()`` and tracebacks read
as written. The alternatives weighed were a sans-IO core (each method a generator
yielding its calls, driven by a sync and an async driver) and decorators that make
both kinds of method from one definition. Both need ``ParamSpec``/``Concatenate``
typing before mypy and IDEs see the signatures of methods built at run time, put a
driver frame in every traceback, and need a second protocol for ``list`` (an
iterator that makes calls as it advances). The price of generating, a build step,
is paid by the currency test. What the methods share beyond their shape lives in
plain modules both clients import: argument checks (``_checks``), options
(``options``), requests (``_requests``), conversions (``_convert``) and the call
policy with retries and failover (``_call``).

The whole transformation, on the syntax tree:

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
   Iterating over such a call (``for``, a comprehension) becomes ``async for`` and
   counts as awaiting; any other use of it (``sorted(self.list(b))``) is refused
   with an error, since it cannot work on an async iterator.
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


def _self_method(node: ast.AST | None) -> str | None:
    """``m`` for a call ``self.m(...)``, else None."""
    if not isinstance(node, ast.Call):
        return None
    func = node.func
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        return func.attr if func.value.id == "self" else None
    return None


def _iterated(node: ast.AST) -> ast.expr | None:
    """What ``node`` iterates over or delegates to: ``for``, comprehension, ``yield from``."""
    if isinstance(node, ast.For | ast.comprehension):
        return node.iter
    if isinstance(node, ast.YieldFrom):
        return node.value
    return None


class Kinds:
    """What each method of the class becomes (rule 3), found by iterating to a fixed point.

    ``coroutines``: plain methods that await (``async def``, their calls awaited);
    ``generators``: generator methods that await (async generators);
    ``returners``: plain methods that return an async iterator without awaiting
    (a ``def`` that returns ``self.g(...)``, like ``list``).
    """

    def __init__(self, methods: dict[str, ast.FunctionDef]) -> None:
        self.coroutines = set(ALWAYS_ASYNC) & set(methods)
        self.generators: set[str] = set()
        self.returners: set[str] = set()
        changed = True
        while changed:
            changed = False
            for name, function in methods.items():
                if name in self.coroutines | self.generators | self.returners:
                    continue
                if self._awaits(function):
                    (self.generators if _is_generator(function) else self.coroutines).add(name)
                    changed = True
                elif not _is_generator(function) and any(
                    isinstance(node, ast.Return) and self.async_iterator(node.value)
                    for node in ast.walk(function)
                ):
                    self.returners.add(name)
                    changed = True

    def async_iterator(self, node: ast.AST | None) -> bool:
        """Whether ``node`` is a call ``self.m(...)`` that returns an async iterator."""
        return _self_method(node) in self.generators | self.returners

    def _awaits(self, function: ast.FunctionDef) -> bool:
        for node in ast.walk(function):
            if isinstance(node, ast.Call) and (
                ast.unparse(node.func) in AWAITED_CALLS or _self_method(node) in self.coroutines
            ):
                return True
            if self.async_iterator(_iterated(node)):
                return True
        return False

    def check_uses(self, methods: dict[str, ast.FunctionDef]) -> None:
        """Refuse a use of an async iterator that rule 3 cannot convert (e.g. ``sorted(it)``)."""
        for name, function in methods.items():
            convertible = {
                id(inner)
                for node in ast.walk(function)
                for inner in (_iterated(node), node.value if isinstance(node, ast.Return) else None)
                if inner is not None
            }
            for node in ast.walk(function):
                if self.async_iterator(node) and id(node) not in convertible:
                    raise ValueError(
                        f"{name}: {ast.unparse(node)} is an async iterator in the async client; "
                        "only return it, iterate it with for, or yield from it"
                    )


class _ToAsync(ast.NodeTransformer):
    """Rules 1-3 over one module, given what each method of the class becomes."""

    def __init__(self, kinds: Kinds) -> None:
        self.kinds = kinds
        self._in_async_generator = False

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
        if _self_method(node) in self.kinds.coroutines:
            return ast.Await(node)
        return node

    def visit_For(self, node: ast.For) -> ast.stmt:
        asynchronous = self.kinds.async_iterator(node.iter)
        self.generic_visit(node)
        if not asynchronous:
            return node
        return ast.AsyncFor(**{field: getattr(node, field) for field in node._fields})

    def visit_comprehension(self, node: ast.comprehension) -> ast.comprehension:
        node.is_async = int(self.kinds.async_iterator(node.iter))
        self.generic_visit(node)
        return node

    def visit_Expr(self, node: ast.Expr) -> ast.stmt:
        """``yield from xs`` → ``for item in xs: yield item`` (async generators cannot delegate)."""
        if not self._in_async_generator or not isinstance(node.value, ast.YieldFrom):
            return self.generic_visit(node)  # type: ignore[return-value]
        loop = ast.For(
            target=ast.Name("item", ast.Store()),
            iter=node.value.value,
            body=[ast.Expr(ast.Yield(ast.Name("item", ast.Load())))],
            orelse=[],
        )
        return self.visit_For(loop)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.stmt:
        name = node.name
        outer, self._in_async_generator = self._in_async_generator, name in self.kinds.generators
        self.generic_visit(node)
        self._in_async_generator = outer
        node.name = RENAMES.get(name, name)
        if name not in self.kinds.coroutines | self.kinds.generators:
            return node
        return ast.AsyncFunctionDef(**{field: getattr(node, field) for field in node._fields})


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
    kinds = Kinds(methods)
    kinds.check_uses(methods)
    tree = _ToAsync(kinds).visit(tree)
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
