"""Sympy building blocks for the recursion formulas that ``explain`` shows.

Kernels are ``IndexedBase`` objects (K, Θ, K̃); positions are symbols whose names read like the
maths (``g·y``, ``t'+ρ(q)y``); a filter sum is :class:`SumOver`, a sympy function that prints as
``Σ_{y∈S} ...`` in the terminal and ``\\sum_{y \\in S} ...`` in LaTeX.
"""
from __future__ import annotations

import sympy
from sympy.printing.pretty.stringpict import prettyForm

from ..ir.latex import latex


class SumOver(sympy.Function):
    """SumOver(body, index, domain): Σ_{index ∈ domain} body."""

    nargs = 3

    def _sympystr(self, printer):
        body, index, domain = self.args
        return f"Σ_{{{printer._print(index)}∈{printer._print(domain)}}} {printer._print(body)}"

    def _latex(self, printer):
        body, index, domain = self.args
        return rf"\sum_{{{printer._print(index)} \in {printer._print(domain)}}} {printer._print(body)}"

    def _pretty(self, printer):
        return prettyForm(self._sympystr(sympy.printing.str.StrPrinter()))


class MeanOver(SumOver):
    """MeanOver(body, indices, domain): mean over the domain."""

    def _sympystr(self, printer):
        body, index, domain = self.args
        return f"mean_{{{printer._print(index)}∈{printer._print(domain)}}} {printer._print(body)}"

    def _latex(self, printer):
        body, index, domain = self.args
        return (rf"\frac{{1}}{{|{printer._print(domain)}|^2}}\sum_{{{printer._print(index)} "
                rf"\in {printer._print(domain)}}} {printer._print(body)}")


def S(name: str) -> sympy.Symbol:
    return sympy.Symbol(name)


K = sympy.IndexedBase("K")
K_NEW = sympy.IndexedBase("K⁺")
THETA = sympy.IndexedBase("Θ")
THETA_NEW = sympy.IndexedBase("Θ⁺")
K0 = sympy.IndexedBase("K0")
KT = sympy.IndexedBase("K̃")
KT_NEW = sympy.IndexedBase("K̃⁺")
KDOT = sympy.IndexedBase("K̇")
SW2, SB2 = sympy.Symbol("σ_w²"), sympy.Symbol("σ_b²")
g, gp = S("g"), S("g'")


def size(domain: str) -> sympy.Symbol:
    return sympy.Symbol(f"|{domain}|")


def to_text(expr, style: str = "unicode") -> str:
    """A formula as one line of unicode text, LaTeX, or Markdown (LaTeX between dollars); the
    LaTeX is plain ASCII (:func:`kernelc.ir.latex.latex`: ``σ_w²`` -> ``\\sigma_{w}^{2}``)."""
    if isinstance(expr, sympy.Equality):
        return f"{to_text(expr.lhs, style)} = {to_text(expr.rhs, style)}".replace("$ = $", " = ")
    if style == "latex":
        return latex(expr)
    if style == "markdown":
        return f"${latex(expr)}$"
    return sympy.sstr(expr).replace("**", "^").replace("*", "·")
