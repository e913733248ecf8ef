"""``kernelc explain``: the derivation shown before anything is computed (docs/explain_example.md).

Per layer: the general recursion, the reduced form actually used, the plan's statements exactly
as the generated code runs them (after the rewrite passes), the values of the constants, the
storage layout; then the identity decisions with their reasons; then, for a Gram matrix of
N inputs, the predicted FLOPs and memory of the whole matrix and of one tile — opt_einsum style.
"""
from __future__ import annotations

import numbers
import re
from typing import Callable, Dict, Optional

from .compiler.derive import Derivation
from .ir.latex import latex_of_formula, latex_of_text, split_annotation
from .errors import ExplainError, KernelcError
from .rules.formulas import to_text

#: Markdown's ASCII punctuation that can start markup inside a line of prose: ``[t,t'](q)`` is
#: a link, ``*``/``_`` emphasis, ``$`` math in Jupyter, ``|`` a table cell, ``<`` HTML
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>$|~])")


def markdown_escape(text: str) -> str:
    """Prose for a Markdown line: every character that could start markup is backslash-escaped
    (CommonMark allows it before any ASCII punctuation), so the text renders as written."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def formula_line(formula: str, style: str) -> str:
    """A plan formula (kernelc's Unicode notation) in ``style``: LaTeX (``$…$`` in Markdown)
    with its trailing annotation, e.g. ``(R)``, kept as text."""
    if style == "unicode":
        return formula
    body, note = split_annotation(formula)
    tex = latex_of_formula(body)
    if style == "markdown":
        return f"${tex}$" + (" " + markdown_escape(note) if note else "")
    return tex + ("   " + note if note else "")


def values_line(values: Dict[str, float], style: str) -> str:
    """The constants of a layer (``σ_w² = 2, σ_b² = 0.0025, |S| = 9``) in ``style``."""
    if style == "unicode":
        return ", ".join(f"{k} = {v:g}" for k, v in values.items())
    tex = r",\quad ".join(f"{latex_of_text(k)} = {v:g}" for k, v in values.items())
    return f"${tex}$" if style == "markdown" else tex


def covariance_definition(style: str) -> str:
    """What Λ (the covariance in E_Λ[φ(u)φ(v)]) and k11, k12, k22 are: said at the first
    nonlinearity that uses them."""
    if style == "unicode":
        return ("Λ = [[k11, k12], [k12, k22]] is the covariance of the Gaussian pre-activations "
                "(u, v) at (x, g) and (x', g'): k11 = K(x,x)[g,g], k12 = K(x,x')[g,g'], "
                "k22 = K(x',x')[g',g']")
    matrix = (r"\Lambda = \left(\genfrac{}{}{0}{}{k_{11}\;\;k_{12}}{k_{12}\;\;k_{22}}\right)")
    entries = (r"k_{11} = K(x,x)_{g,g},\quad k_{12} = K(x,x')_{g,g'},\quad "
               r"k_{22} = K(x',x')_{g',g'}")
    words = "is the covariance of the Gaussian pre-activations"
    if style == "markdown":
        return (f"${matrix}$ {words} $(u, v)$ at $(x, g)$ and $(x', g')$: ${entries}$")
    return rf"{matrix},\quad {entries}   ({words} (u, v) at (x, g) and (x', g'))"


class LayerFormulas(dict):
    """Per layer name: ``{"kind", "layout", "sympy", "nngp", "ntk", "reduced", "values",
    "notes"}`` (the formulas as text in one style, and as sympy objects). Displays itself in a
    notebook: a Markdown list and LaTeX equations, one per formula (from the sympy objects,
    whatever style the text was asked in)."""

    def __init__(self, entries, der: Derivation):
        super().__init__(entries)
        self._derivation = der

    def _repr_markdown_(self) -> str:
        md = layer_formulas(self._derivation, "markdown")
        lines = []
        for name, entry in md.items():
            lines.append(f"- **{markdown_escape(name)}** ({markdown_escape(entry['kind'])})")
            for label in ("nngp", "ntk"):
                if entry[label]:
                    lines.append(f"    - {label.upper()}: {entry[label]}")
            lines += [f"    - used: {r}" for r in entry["reduced"]]
        return "\n".join(lines)

    def _repr_latex_(self) -> str:
        return "\n".join(f"$${tex}$$" for tex in formula_equations(self._derivation))


def layer_label(name: str) -> str:
    """A layer's name as upright LaTeX text (``group_pool1`` -> ``\\mathrm{group\\_pool1}``)."""
    return r"\mathrm{" + re.sub(r"[^A-Za-z0-9_]", "", name).replace("_", r"\_") + "}"


def formula_equations(der: Derivation):
    """Each layer's NNGP and NTK recursion as one LaTeX equation, labelled with the layer."""
    for name, entry in layer_formulas(der, "latex").items():
        for label in ("nngp", "ntk"):
            if entry[label]:
                yield rf"{layer_label(name)}\ \mathrm{{{label.upper()}}}:\quad {entry[label]}"


def layer_formulas(der: Derivation, style: str = "unicode") -> "LayerFormulas":
    if style not in ("unicode", "latex", "markdown"):
        raise ExplainError(f"style must be 'unicode', 'latex' or 'markdown', got {style!r}")
    out = {}
    for nd in der.nodes:
        f = nd.formulas
        if f is None:
            continue
        entry = {"kind": nd.kind, "layout": nd.layout.kind, "sympy": f,
                 "nngp": to_text(f.nngp, style) if f.nngp is not None else None,
                 "ntk": to_text(f.ntk, style) if f.ntk is not None else None,
                 "reduced": [], "values": dict(f.values), "notes": list(f.notes)}
        for r in f.reduced:
            if hasattr(r, "emit_jax"):  # a nonlinearity's KernelMap: its K⁺ and K̇ maps
                entry["reduced"] += _map_text(r, style)
            else:
                entry["reduced"].append(to_text(r, style))
        out[nd.name] = entry
    return LayerFormulas(out, der)


def _map_text(kmap, style):
    if style in ("latex", "markdown"):
        k, kdot = kmap.latex()
        wrap = (lambda t: f"${t}$") if style == "markdown" else (lambda t: t)
        return [wrap(f"K^{{+}} = {k}"), wrap(rf"\dot{{K}} = {kdot}")]
    if kmap.nngp is None:
        return [f"K⁺ = E[φ(u)φ(v)], K̇ = E[φ'(u)φ'(v)] by {kmap.method}"]
    return [f"K⁺ = {to_text(kmap.nngp)}", f"K̇ = {to_text(kmap.ntk_dot)}"]


def _statements(op, md: bool):
    """The op's statements as they run (the same objects the code generator prints)."""
    pre = "    - `" if md else "          "
    end = "`" if md else ""
    out = []
    for tag, statements in (("", op.lines), ("[NTK] ", op.ntk_lines)):
        for s in statements:
            first, *more = s.source().split("\n")
            if md:  # one code span per statement: a call split for reading is joined again
                calls = [first] + [m.split("  # ")[0].strip() for m in more]
                if first.startswith("#") and more:  # a leading comment is its own item
                    out.append(pre + tag + first + end)
                    calls = calls[1:]
                out.append(pre + tag + " ".join(calls).replace("( ", "(") + end)
            else:
                out.append(pre + tag + first)
                out += [" " * len(pre + tag) + m for m in more]
    return out


def _fmt_count(n: float) -> str:
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f}"


def _fmt_bytes(n: float) -> str:
    for unit, scale in (("TiB", 2 ** 40), ("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f} B"


#: The sustained throughput of ``kernel_fn`` (FLOPs of the plan per second of wall time, NNGP
#: and NTK, float32) on the machine of record: 2 cores of an AMD EPYC CPU shared with other
#: jobs (load average 6.5-8), JAX 0.10.2 on CPU; the median over five specs of
#: ``python benchmarks/throughput.py`` (0.62-2.6 GFLOP/s, docs/performance.md). A rough figure:
#: the maps (erf, arccos) cost more than their FLOP count says and stencils less, a quiet or
#: another machine differs; ``calibrate=True`` (CLI ``--calibrate``) measures this machine.
REFERENCE_FLOPS_PER_SECOND = 1.28e9
REFERENCE_MACHINE = "2 cores of an AMD EPYC CPU (JAX on CPU)"


def format_seconds(seconds: float) -> str:
    """A duration as a person reads it: 42 ms, 3.1 s, 12 min, 5.2 h, 3.4 days."""
    for unit, scale in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= scale * (2 if unit == "days" else 1):
            return f"{seconds / scale:.1f} {unit}"
    return f"{seconds:.1f} s" if seconds >= 1 else f"{seconds * 1e3:.0f} ms"


def gram_pairs(n: int, symmetric: bool):
    """(cross pairs, self pairs) that ``kernel_fn`` computes for an N×N Gram matrix: pairs
    i < j under (S), else all i ≠ j; the N diagonal pairs come from the self pass."""
    return (n * (n - 1) // 2 if symmetric else n * (n - 1)), n


#: FLOPs a calibration run may cost at most (about 1-5 s on a 2-core CPU): the sample is one
#: tile of the full run, or fewer pairs when that tile would take longer
CALIBRATION_FLOPS = 5e9


def calibrate_kernel(kernel_fn, input_shape, max_pairs: int, dtype: str = "float32",
                     max_memory=None, symmetric: bool = True, repeats: int = 2) -> Dict[str, float]:
    """Time ``kernel_fn`` on this machine: m random inputs (standard normal, seed 0) with m the
    largest number (at least 2) whose Gram matrix has at most ``max_pairs`` pairs, so it runs
    as one tile. The first call compiles (its extra time over a compiled call is reported as
    the compile time); the best of ``repeats`` compiled calls gives the seconds per pair, the
    self pass counted as pairs: s = t / (cross pairs + m).

    Returns {"inputs", "pairs", "first_call_seconds", "compile_seconds", "seconds",
    "seconds_per_pair"}."""
    import time
    import warnings

    import numpy as np

    from .errors import KernelcWarning
    m = 2
    while sum(gram_pairs(m + 1, symmetric)) <= max_pairs and m < 4096:
        m += 1
    x = np.random.default_rng(0).normal(size=(m,) + tuple(input_shape))
    kwargs = dict(dtype=dtype, max_memory=max_memory, progress=False, symmetric=symmetric)
    times = []
    with warnings.catch_warnings():  # precision warnings about random inputs are not the user's
        warnings.simplefilter("ignore", KernelcWarning)
        for _ in range(1 + repeats):
            start = time.perf_counter()
            kernel_fn(x, **kwargs)
            times.append(time.perf_counter() - start)
    first, times = times[0], times[1:]
    cross, self_pairs = gram_pairs(m, symmetric)
    best = min(times)
    return {"inputs": m, "pairs": cross + self_pairs, "first_call_seconds": first,
            "compile_seconds": max(first - best, 0.0), "seconds": best,
            "seconds_per_pair": best / (cross + self_pairs)}


def pair_cost(der: Derivation) -> Dict[str, int]:
    """FLOPs and peak entries per pair of inputs (NNGP and NTK)."""
    flops = sum(op.flops * (2 if op.ntk_lines else 1) for nd in der.nodes for op in nd.ops)
    peak = max(op.entries for nd in der.nodes for op in nd.ops)
    return {"flops": flops, "peak_entries": peak}


def explain(der: Derivation, n: Optional[int] = None, style: str = "unicode",
            dtype: str = "float32", max_memory=None,
            plan_memory: Optional[Callable] = None,
            calibrate: Optional[Callable] = None) -> str:
    """The derivation as text: ``style`` "unicode" (the terminal), "latex" (formulas as
    plain-ASCII LaTeX, prose as text) or "markdown" (formulas as ``$LaTeX$``, prose escaped so
    that e.g. ``K̃[t,t'](q)`` is not read as a link).

    With ``n``: the cost of an N×N Gram matrix, FLOPs, memory and a wall-time estimate —
    total FLOPs / :data:`REFERENCE_FLOPS_PER_SECOND` (rough, another machine's figure), or, when
    ``calibrate(max_pairs)`` is given (:func:`calibrate_kernel` on the compiled network),
    measured here on min(one tile, :data:`CALIBRATION_FLOPS` worth of) pairs: seconds per
    pair × (tiles × tile pairs + N), compile time apart."""
    if style not in ("unicode", "latex", "markdown"):
        raise ExplainError(f"style must be 'unicode', 'latex' or 'markdown', got {style!r}")
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            # n = 0 or -5 gave a cost report of some other size, with no error
            raise ExplainError(f"n (CLI: --n N), the number of inputs of the Gram matrix, must "
                               f"be a whole number ≥ 1, got {n!r}")
        n = int(n)
        if str(dtype) not in ("float32", "float64"):
            from .runtime.driver import check_dtype
            try:
                dtype = check_dtype(dtype)
            except KernelcError as exc:
                raise ExplainError(exc.message) from None
    if calibrate is not None and (n is None or plan_memory is None):
        raise ExplainError("a time calibration needs the Gram matrix size n (CLI: --n N) and "
                           "the compiled network's memory plan")
    tg = der.typed
    md = style == "markdown"
    prose = markdown_escape if md else (lambda t: t)
    h = (lambda s: f"\n## {s}\n") if md else (lambda s: f"\n{s}\n" + "-" * len(s))
    lines = [f"# kernelc explain: {prose(tg.spec.name)}" if md
             else f"kernelc explain: {tg.spec.name}", "", prose(tg.summary())]
    lines.append(h("Identities"))
    for dec in der.decisions.values():
        lines.append(("- " if md else "  ") + prose(dec.line()))
    if der.rewrites:
        lines.append(h("Rewrites"))
        for name, (reason, count) in der.rewrites.items():
            lines.append(("- " if md else "  ") + prose(f"{name} (×{count}): {reason}"))
    lines.append(h("Layers"))
    formulas = layer_formulas(der, style)
    covariance_defined = False
    for nd in der.nodes:
        data = tg.node(nd.node)
        where = f"line {data.span.line}" if nd.kind != "input" else "input"
        head = f"{nd.name} ({where}): {data.out}; stored as {nd.layout.describe()}"
        lines.append(f"### {prose(head)}" if md else head)
        if nd.kind == "input":
            for op in nd.ops:
                lines.append(("    " if not md else "- ") + formula_line(op.formula, style))
                lines.extend(_statements(op, md))
            continue
        entry = formulas.get(nd.name)
        if entry is None:
            lines.append(("    " if not md else "- ") + "(passes its input on)")
            continue
        pre = "- " if md else "    "
        if entry["nngp"]:
            lines.append(pre + "NNGP: " + entry["nngp"])
            if not covariance_defined and "Λ" in str(entry["sympy"].nngp):
                lines.append(pre + "where " + covariance_definition(style))
                covariance_defined = True
        if entry["ntk"]:
            lines.append(pre + "NTK:  " + entry["ntk"])
        for r in entry["reduced"]:
            lines.append(pre + "used: " + r)
        for op in nd.ops:
            lines.append(pre + "plan: " + formula_line(op.formula, style))
            lines.extend(_statements(op, md))
        if entry["values"]:
            lines.append(pre + "with " + values_line(entry["values"], style))
        for note in entry["notes"]:
            lines.append(pre + "note: " + prose(note))
    if n is not None:
        lines.append(h(f"Cost for an N = {n} Gram matrix ({dtype})"))
        cost = pair_cost(der)
        sym = der.decisions["S"].applied
        pairs = n * (n - 1) // 2 if sym else n * n
        total = (pairs + n) * cost["flops"]
        pre = "- " if md else "  "
        lines.append(pre + f"pairs of inputs: {pairs:,} cross + {n} diagonal"
                     + (prose(" (S: i < j only)") if sym else ""))
        lines.append(pre + f"per pair: {_fmt_count(cost['flops'])}FLOP, widest layer "
                     f"{cost['peak_entries']:,} entries")
        lines.append(pre + f"whole Gram matrix: {_fmt_count(total)}FLOP")
        if plan_memory is not None:
            from .errors import MemoryBudgetError
            try:
                plan = plan_memory(n, None, dtype, max_memory, sym)
            except MemoryBudgetError as exc:
                lines.append(pre + prose(f"would be refused: {exc.message}"))
                return "\n".join(lines)
            tiles = -(-max(pairs, 1) // plan["tile_pairs"])
            lines.append(pre + f"memory per pair (peak): {_fmt_bytes(plan['bytes_per_pair'])}; "
                         f"results: {_fmt_bytes(plan['result_bytes'])}")
            lines.append(pre + f"tile: {plan['tile_pairs']:,} pairs = "
                         f"{_fmt_bytes(plan['tile_bytes'])}, "
                         f"{_fmt_count(plan['tile_pairs'] * cost['flops'])}FLOP; {tiles} tile(s) "
                         f"under a budget of {_fmt_bytes(plan['budget'])}")
            computed = gram_pairs(n, sym)
            if calibrate is not None:
                # the last tile is padded to the tile shape: it costs a whole tile
                run_pairs = -(-computed[0] // plan["tile_pairs"]) * plan["tile_pairs"] \
                    if computed[0] else 0
                sample = min(plan["tile_pairs"],
                             max(3, int(CALIBRATION_FLOPS // max(cost["flops"], 1))))
                cal = calibrate(sample)
                estimate = (run_pairs + computed[1]) * cal["seconds_per_pair"]
                lines.append(pre + prose(
                    f"time on this machine (calibrated): {format_seconds(estimate)} for the "
                    f"whole Gram matrix, compile time excluded; measured "
                    f"{cal['seconds_per_pair'] * 1e3:.3g} ms per pair on {cal['inputs']} random "
                    f"inputs ({cal['pairs']} pairs in one tile, the full run's tile holds "
                    f"{plan['tile_pairs']:,}; best compiled run {cal['seconds']:.3g} s); "
                    f"compiling took {cal['compile_seconds']:.1f} s here, and the full run "
                    f"compiles its own tile shape once more"))
        if calibrate is None:
            estimate = total / REFERENCE_FLOPS_PER_SECOND
            lines.append(pre + prose(
                f"time, rough: ~{format_seconds(estimate)} at "
                f"{REFERENCE_FLOPS_PER_SECOND / 1e9:g} GFLOP/s, the throughput measured on "
                f"{REFERENCE_MACHINE} (docs/performance.md), not measured here; "
                f"--calibrate (calibrate=True) times one tile here"))
    return "\n".join(lines)
