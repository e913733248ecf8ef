"""A generated module -> a standalone one (``kernelc compile --standalone``).

A generated module imports its helpers from :mod:`kernelc.runtime`. Its standalone twin inlines
them instead: each ``from kernelc.runtime.X import a, b`` is replaced by the source of ``a``, ``b``
and everything they reach (functions, classes, constants of the runtime modules, followed through
the runtime's own ``from kernelc.runtime...`` imports), in the runtime's module order and each
module's source order, under the union of the library imports those modules make. The result
needs only jax and numpy; it is deterministic, and holds only the helpers the network uses.
"""
from __future__ import annotations

import ast
import importlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, List, Tuple

from ..runtime import HELPER_MODULES, RUNTIME_VERSION

#: Every runtime module, dependencies first (top-level statements run in this order: a default
#: argument such as ``max_tile=MAX_TILE`` needs its constant defined above it).
#: (runtime.store: the driver's on-disk Gram matrices, kernel_fn(out=...); generated code does
#: not import it itself)
RUNTIME_MODULES = ("kernelc.runtime", "kernelc.runtime.errors", "kernelc.runtime.harmonic",
                   "kernelc.runtime.store") + HELPER_MODULES
_RUNTIME = "kernelc.runtime"


@dataclass(frozen=True)
class Definition:
    """One top-level statement of a runtime module that binds ``names``."""

    module: str
    order: int
    names: Tuple[str, ...]
    source: str
    uses: frozenset


def _is_runtime(module) -> bool:
    return bool(module) and (module == _RUNTIME or module.startswith(_RUNTIME + "."))


def _bound_names(stmt) -> List[str]:
    """The module-level names a statement defines (a try/except binds what either branch does)."""
    if isinstance(stmt, (ast.FunctionDef, ast.ClassDef)):
        return [stmt.name]
    if isinstance(stmt, ast.Assign):
        return [n.id for t in stmt.targets for n in ast.walk(t) if isinstance(n, ast.Name)]
    if isinstance(stmt, ast.Try):
        body = stmt.body + [s for h in stmt.handlers for s in h.body] + stmt.orelse
        names = []
        for inner in body:
            if isinstance(inner, ast.ImportFrom):
                names += [a.asname or a.name for a in inner.names]
            else:
                names += _bound_names(inner)
        return list(dict.fromkeys(names))
    return []


def _segment(lines: List[str], stmt) -> str:
    """The statement's source with its decorators and the comment lines right above it."""
    start = min([d.lineno for d in getattr(stmt, "decorator_list", [])] + [stmt.lineno]) - 1
    while start > 0 and lines[start - 1].lstrip().startswith("#"):
        start -= 1
    return "".join(lines[start:stmt.end_lineno]).rstrip() + "\n"


@lru_cache(maxsize=None)
def runtime_table() -> Tuple[Dict[str, Definition], Tuple[str, ...]]:
    """(name -> Definition over all runtime modules, the library import lines they make).

    Names are unique across the runtime (``tests/runtime/test_package.py`` checks it), so a
    standalone module can hold them side by side."""
    table: Dict[str, Definition] = {}
    imports: List[str] = []
    for index, module_name in enumerate(RUNTIME_MODULES):
        module = importlib.import_module(module_name)
        text = module.__loader__.get_source(module_name)
        lines = text.splitlines(keepends=True)
        for order, stmt in enumerate(ast.parse(text).body):
            if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                if not (isinstance(stmt, ast.ImportFrom) and _is_runtime(stmt.module)):
                    imports.append(ast.unparse(stmt))
                continue
            names = tuple(n for n in _bound_names(stmt) if n != "__all__")
            if not names:
                continue  # the docstring and __all__
            uses = frozenset(n.id for n in ast.walk(stmt) if isinstance(n, ast.Name)) - set(names)
            definition = Definition(module_name, index * 10_000 + order, names,
                                    _segment(lines, stmt), uses)
            for name in names:
                table[name] = definition
    return table, tuple(dict.fromkeys(imports))


def _closure(wanted) -> List[Definition]:
    """The definitions of ``wanted`` and of every runtime name they use, in runtime order."""
    table, _ = runtime_table()
    seen: Dict[int, Definition] = {}
    stack = [table[name] for name in wanted]
    while stack:
        definition = stack.pop()
        if definition.order in seen:
            continue
        seen[definition.order] = definition
        stack.extend(table[name] for name in definition.uses if name in table)
    return [seen[k] for k in sorted(seen)]


def standalone_module(source: str) -> str:
    """``source`` (a module from :func:`kernelc.codegen.emit.emit_module`) with its runtime
    imports replaced by the inlined helpers; runs with jax and numpy only."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    wanted, drop, library = [], set(), []
    for stmt in tree.body:
        if isinstance(stmt, ast.ImportFrom) and _is_runtime(stmt.module):
            wanted += [a.name for a in stmt.names]
            drop.update(range(stmt.lineno - 1, stmt.end_lineno))
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            library.append(ast.unparse(stmt))
            drop.update(range(stmt.lineno - 1, stmt.end_lineno))
    doc = tree.body[0]
    definitions = _closure(wanted)
    _, runtime_imports = runtime_table()
    needed = set().union(*(d.uses for d in definitions)) if definitions else set()
    kept_imports = [line for line in runtime_imports if _import_binds(line) & needed]
    out = ["".join(lines[:doc.end_lineno]).rstrip().removesuffix('"""').rstrip()
           + "\n\nStandalone: the kernelc runtime helpers this network uses are inlined below "
           f"(runtime version {RUNTIME_VERSION}),\nso this module needs only jax and numpy.\n"
           '"""\n']
    out.append("\n".join(dict.fromkeys(_import_order(kept_imports + library))) + "\n")
    out.append(f"\n# -- kernelc runtime helpers (version {RUNTIME_VERSION}), inlined "
               + "-" * 40 + "\n")
    current = None
    for definition in definitions:
        if definition.module != current:
            current = definition.module
            out.append(f"\n# -- {current}\n")
        out.append("\n" + definition.source + "\n")
    rest = "".join(line for i, line in enumerate(lines) if i >= doc.end_lineno and i not in drop)
    out.append("\n" + rest.lstrip("\n"))
    return "".join(out).replace("\n\n\n\n", "\n\n\n")


def _import_binds(line: str) -> set:
    """The names an import line binds (``import jax.numpy as jnp`` -> {'jnp'})."""
    stmt = ast.parse(line).body[0]
    return {(a.asname or a.name).split(".")[0] for a in stmt.names}


def _import_order(lines: List[str]) -> List[str]:
    """Standard library first, then numpy, then jax (as the runtime modules write them)."""
    def rank(line: str):
        top = line.split()[1].split(".")[0]
        return (1 if top == "numpy" else 2 if top == "jax" else 0, line)
    return sorted(lines, key=rank)
