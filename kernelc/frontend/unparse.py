"""AST -> spec text: a canonical pretty printer, the inverse of :func:`parse_spec`.

``parse_spec(unparse(spec))`` equals ``spec`` up to source spans. The text is canonical, not the
user's: comments are gone, constants are already folded into the values that use them (the
``let`` lines are kept, with their numeric values), numbers are written as Python writes them
(``repr`` of a float round-trips exactly), lists and tuples both print as ``[...]`` (the AST does
not distinguish them), and ``phi(...)`` prints its sympy expression in the spec's expression
syntax (``x/(exp(-x) + 1)`` for ``x * sigmoid(x)``).
"""
from __future__ import annotations

import re
from typing import Any, List

import sympy
from sympy.printing.str import StrPrinter

from .ast import Argument, Branches, GroupDecl, Layer, Repeat, Spec, Word

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class _SpecExprPrinter(StrPrinter):
    """sympy's str printer, with the names the spec language uses for constants and functions."""

    def _print_Exp1(self, expr):
        return "e"

    def _print_Abs(self, expr):
        return f"abs({self._print(expr.args[0])})"

    def _print_Max(self, expr):
        return "max(" + ", ".join(self._print(a) for a in expr.args) + ")"

    def _print_Min(self, expr):
        return "min(" + ", ".join(self._print(a) for a in expr.args) + ")"

    def _print_Float(self, expr):
        # numbers in a spec are doubles; repr() is the shortest text that reads back the same
        text = repr(float(expr))
        return f"({text})" if text.startswith("-") else text


def unparse_expr(expr: sympy.Expr) -> str:
    """A sympy expression (in ``x``) as spec expression text."""
    return _SpecExprPrinter().doprint(expr)


def unparse_value(value: Any) -> str:
    """A hyperparameter value as spec text."""
    if isinstance(value, Word):
        return value.name
    if isinstance(value, bool):  # never produced by the parser; refuse rather than print 'True'
        raise TypeError("booleans have no spec syntax")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(unparse_value(v) for v in value) + "]"
    if isinstance(value, sympy.Basic):
        return unparse_expr(value)
    raise TypeError(f"cannot write a {type(value).__name__} as spec text")


def _argument(arg: Argument) -> str:
    text = unparse_value(arg.value)
    return text if arg.name is None else f"{arg.name}={text}"


def _matrix(m) -> str:
    return "[" + ", ".join("[" + ", ".join(str(v) for v in row) + "]" for row in m) + "]"


def unparse_group(decl: GroupDecl) -> str:
    if decl.generators is None:
        return f"group {decl.name}"
    if not decl.generators:
        return f"group {decl.name} = trivial {decl.dim}"
    lattice = "hexagonal " if decl.lattice == "hexagonal" else ""
    return (f"group {decl.name} = {lattice}generators "
            + ", ".join(_matrix(g) for g in decl.generators))


def _statements(body, indent: str) -> List[str]:
    lines: List[str] = []
    for st in body:
        if isinstance(st, Layer):
            args = ", ".join(_argument(a) for a in st.args)
            lines.append(indent + st.kind + (f"({args})" if st.args else ""))
        elif isinstance(st, Repeat):
            lines.append(f"{indent}repeat {st.count} {{")
            lines += _statements(st.body, indent + "  ")
            lines.append(indent + "}")
        elif isinstance(st, Branches):
            keyword = "residual" if st.combine == "sum" else "concat"
            if st.combine == "sum" and len(st.branches) == 2 and st.branches[1] == ():
                # residual { body }: the body plus the identity shortcut
                lines.append(f"{indent}{keyword} {{")
                lines += _statements(st.branches[0], indent + "  ")
                lines.append(indent + "}")
                continue
            lines.append(f"{indent}{keyword} {{")
            for branch in st.branches:
                lines.append(f"{indent}  branch {{")
                lines += _statements(branch, indent + "    ")
                lines.append(f"{indent}  }}")
            lines.append(indent + "}")
        else:
            raise TypeError(f"not a statement: {st!r}")
    return lines


def unparse(spec: Spec) -> str:
    """The canonical spec text of ``spec``."""
    lines = []
    if spec.name and _NAME.match(spec.name):
        lines.append(f"network {spec.name}")
    lines.append(unparse_group(spec.group))
    shape = " x ".join(str(n) for n in spec.input.shape)
    if spec.input.domain == "sphere":
        shape = f"sphere bandlimit {spec.input.bandlimit}"
    lines.append(f"input {shape} channels {spec.input.channels}")
    lines.append(f"parameterization {spec.parameterization}")
    for name, value in spec.constants:
        lines.append(f"let {name} = {unparse_value(value)}")
    lines.append("")
    lines += _statements(spec.body, "")
    return "\n".join(lines) + "\n"


__all__ = ["unparse", "unparse_expr", "unparse_group", "unparse_value"]
