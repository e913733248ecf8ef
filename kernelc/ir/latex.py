"""LaTeX of kernelc's formulas: the Unicode names the rules give symbols (``σ_w²``, ``K̃⁺``,
``t'+ρ(q)y``, ``|S_G|``) and the plan's one-line formulas, as plain-ASCII LaTeX that compiles
(tests/test_notebooks.py compiles every formula with matplotlib's mathtext).

sympy's own printer reads a symbol name as ``base_sub^sup`` and would print ``σ_w²`` as
``σ_{w²}`` (the superscript inside the subscript) and keep the Unicode letters;
:func:`latex_of_text` translates the notation instead: Greek letters and operators become
commands, Unicode super-scripts and combining accents become ``^{…}`` and ``\\tilde{…}``,
a subscript is one run of letters and digits (``Y_ℓm`` -> ``Y_{\\ell m}``), a letter with
digits is subscripted (``K0`` -> ``K_{0}``, ``k12`` -> ``k_{12}``), and words of three or more
letters or in capitals are upright (``mean`` -> ``\\mathrm{mean}``, ``SO(3)``); two small letters
are a product (``gh``, ``dq``).

A plan formula ends with what it depends on, in words (``(R)``, ``(R: grid quadrature)``,
``(per group index)``): :func:`split_annotation` keeps that as text.
"""
from __future__ import annotations

import functools
import re

from sympy.printing.latex import LatexPrinter

GREEK = {"α": r"\alpha", "β": r"\beta", "γ": r"\gamma", "δ": r"\delta", "ε": r"\epsilon",
         "θ": r"\theta", "κ": r"\kappa", "λ": r"\lambda", "μ": r"\mu", "ν": r"\nu", "ξ": r"\xi",
         "π": r"\pi", "ρ": r"\rho", "σ": r"\sigma", "τ": r"\tau", "φ": r"\varphi", "χ": r"\chi",
         "ψ": r"\psi", "ω": r"\omega", "Γ": r"\Gamma", "Δ": r"\Delta", "Θ": r"\Theta",
         "Λ": r"\Lambda", "Ξ": r"\Xi", "Π": r"\Pi", "Φ": r"\Phi", "Ψ": r"\Psi", "Ω": r"\Omega",
         "ℓ": r"\ell"}
OPERATORS = {"Σ": r"\sum", "∑": r"\sum", "∫": r"\int", "·": r"\cdot", "⊙": r"\odot",
             "∈": r"\in", "∂": r"\partial", "∞": r"\infty", "×": r"\times", "−": "-",
             "≤": r"\leq", "≥": r"\geq", "→": r"\to", "⋉": r"\ltimes", "≈": r"\approx",
             "⊗": r"\otimes", "√": r"\sqrt"}
SUPERSCRIPTS = {"⁺": "+", "⁻": "-", "⁰": "0", "¹": "1", "²": "2", "³": "3", "⁴": "4", "ᵀ": "T"}
ACCENTS = {"\u0303": r"\tilde", "\u0307": r"\dot", "\u0302": r"\hat", "\u0304": r"\bar"}
#: ASCII words with a LaTeX command of their own
FUNCTIONS = {"exp", "log", "sin", "cos", "tan", "max", "min", "det"}

_WORD = re.compile(r"[A-Za-z]{2,}(?:_[A-Za-z]{2,})+|[A-Za-z]+")  # leaky_relu: one word; n_in: not


def _is_name_char(c: str) -> bool:
    """A character a subscript run may hold: ASCII letters and digits, Greek letters, ℓ."""
    return (c.isascii() and c.isalnum()) or c in GREEK


def _script(text: str, i: int):
    """The LaTeX of the sub- or superscript argument starting at ``text[i]`` (``{…}`` or a run
    of letters and digits) and the index after it."""
    if i < len(text) and text[i] == "{":
        depth, j = 1, i + 1
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        return latex_of_text(text[i + 1:j - 1]), j
    j = i
    while j < len(text) and _is_name_char(text[j]):
        j += 1
    if j == i:  # a single other character, e.g. "^+"
        j = i + 1
    # character by character: a subscript run is a list of indices (δ_ℓ0 is δ_{ℓ0}, not δ_{ℓ_0})
    return _join([latex_of_text(c) for c in text[i:j]]), j


def _join(parts) -> str:
    """Concatenate, with a space where a command would run into a letter (``\\ell m``)."""
    out = ""
    for part in parts:
        if out and part and re.search(r"\\[A-Za-z]+$", out) and (part[0].isalpha()):
            out += " "
        out += part
    return out


@functools.lru_cache(maxsize=4096)
def latex_of_text(text: str) -> str:
    """Plain-ASCII LaTeX of a name or a one-line formula in kernelc's Unicode notation.

    ``σ_w²/|S| Σ_{y∈S} K0[t+y, t'+ρ(q)y]`` -> ``\\sigma_{w}^{2}/|S| \\sum_{y \\in S}
    K_{0}[t+y, t'+\\rho(q)y]``; ``K̃⁺[t,t'](q)`` -> ``\\tilde{K}^{+}[t,t']{}(q)`` (the empty group
    keeps ``](`` from reading as a Markdown link where a renderer does not know math).
    """
    parts, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if i + 1 < n and text[i + 1] in ACCENTS:
            parts.append(f"{ACCENTS[text[i + 1]]}{{{latex_of_text(c)}}}")
            i += 2
        elif c in SUPERSCRIPTS:
            sup = ""
            while i < n and text[i] in SUPERSCRIPTS:
                sup += SUPERSCRIPTS[text[i]]
                i += 1
            if i < n and text[i] == "^":  # K̂⁺^ℓ: one superscript, not a double one
                more, i = _script(text, i + 1)
                sup = _join([sup, more])
            parts.append("^{" + sup + "}")
        elif c in "_^":
            arg, i = _script(text, i + 1)
            while c == "_" and i < n and text[i] == "_":  # E_Λ_b: one subscript Λ,b
                more, i = _script(text, i + 1)
                arg += "," + more
            parts.append(c + "{" + arg + "}")
        elif c == "E" and i + 1 < n and text[i + 1] in "[_" and (i == 0 or not text[i - 1].isalnum()):
            parts.append(r"\mathbb{E}")  # the Gaussian expectation
            i += 1
        elif _WORD.match(text, i):
            word = _WORD.match(text, i).group()
            i += len(word)
            digits = re.match(r"\d+", text[i:])
            if len(word) == 1 and digits and not re.match(r"[\d.]", text[i + len(digits.group()):] or " "):
                parts.append(f"{word}_{{{digits.group()}}}")  # K0, k12
                i += len(digits.group())
            elif word in FUNCTIONS:
                parts.append("\\" + word)
            elif len(word) >= 3 or (len(word) == 2 and word.isupper()):  # mean; SO(3); not gh
                parts.append(r"\mathrm{" + word.replace("_", r"\_") + "}")
            else:
                parts.append(word)
        elif c in GREEK:
            parts.append(GREEK[c])
            i += 1
            digits = re.match(r"\d+", text[i:])
            if digits and (i < 2 or not _is_name_char(text[i - 2])):  # Θ0 -> Θ_{0}
                parts.append(f"_{{{digits.group()}}}")
                i += len(digits.group())
        elif c in OPERATORS:
            op = OPERATORS[c]
            parts.append(op if not op.startswith("\\") else f" {op} " if c in "·⊙∈×≤≥→≈⊗" else op)
            i += 1
        elif c == "]" and i + 1 < n and text[i + 1] == "(":
            parts.append("]{}")
            i += 1
        elif c in "#$%&":
            parts.append("\\" + c)
            i += 1
        elif not c.isascii():
            raise ValueError(f"no LaTeX for {c!r} (U+{ord(c):04X}) in {text!r}: add it to "
                             "kernelc.ir.latex")
        else:
            parts.append(c)
            i += 1
    return re.sub(r" {2,}", " ", _join(parts)).strip()


_ANNOTATION = re.compile(r"^(?P<formula>.*?\S)\s+(?P<note>\((?:[A-Z](?::[^()]*(?:\([^()]*\)[^()]*)*)?"
                         r"|[^()]* [^()]*)\))$")


def split_annotation(formula: str):
    """``(formula, annotation)``: a trailing parenthesised remark in words (``(R)``, ``(R: SO(3)
    FFT, …)``, ``(per group index)``) apart from the formula, or ``(formula, "")``."""
    m = _ANNOTATION.match(formula)
    return (m["formula"], m["note"]) if m else (formula, "")


def latex_of_formula(formula: str) -> str:
    """LaTeX of a plan formula without its annotation: statements separated by two spaces
    after a comma (``K⁺ = …,  Θ⁺ = …``) are separated by ``,\\quad``."""
    return r",\quad ".join(latex_of_text(part) for part in formula.split(",  "))


class KernelcLatexPrinter(LatexPrinter):
    """sympy's LaTeX printer with kernelc's symbol and function names translated by
    :func:`latex_of_text`."""

    def _print_Symbol(self, expr, style="plain"):
        return latex_of_text(expr.name)

    def _hprint_Function(self, func: str) -> str:
        if func.isascii() and "_" not in func:
            return super()._hprint_Function(func)
        return latex_of_text(func)


def latex(expr) -> str:
    """Plain-ASCII LaTeX of a sympy formula of kernelc's rules."""
    return KernelcLatexPrinter().doprint(expr)
