"""``kernelc explain``: the derivation shown before anything is computed (docs/explain_example.md).

Per layer: the general recursion, the reduced form actually used, the plan's statements exactly
as the generated code runs them (after the rewrite passes), the values of the constants, the
storage layout; then the identity decisions with their reasons; then, for a Gram matrix of
N inputs, the predicted FLOPs and memory of the whole matrix and of one tile — opt_einsum style.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional

from .compiler.derive import Derivation
from .rules.formulas import to_text


def layer_formulas(der: Derivation, style: str = "unicode") -> Dict[str, dict]:
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
    return out


def _map_text(kmap, style):
    if style in ("latex", "markdown"):
        k, kdot = kmap.latex()
        wrap = (lambda t: f"${t}$") if style == "markdown" else (lambda t: t)
        return [f"K⁺ = {wrap(k)}", f"K̇ = {wrap(kdot)}"]
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


def pair_cost(der: Derivation) -> Dict[str, int]:
    """FLOPs and peak entries per pair of inputs (NNGP and NTK)."""
    flops = sum(op.flops * (2 if op.ntk_lines else 1) for nd in der.nodes for op in nd.ops)
    peak = max(op.entries for nd in der.nodes for op in nd.ops)
    return {"flops": flops, "peak_entries": peak}


def explain(der: Derivation, n: Optional[int] = None, style: str = "unicode",
            dtype: str = "float32", max_memory=None,
            plan_memory: Optional[Callable] = None) -> str:
    tg = der.typed
    md = style == "markdown"
    h = (lambda s: f"\n## {s}\n") if md else (lambda s: f"\n{s}\n" + "-" * len(s))
    lines = [f"# kernelc explain: {tg.spec.name}" if md else f"kernelc explain: {tg.spec.name}",
             "", tg.summary()]
    lines.append(h("Identities"))
    for dec in der.decisions.values():
        lines.append(("- " if md else "  ") + dec.line())
    if der.rewrites:
        lines.append(h("Rewrites"))
        for name, (reason, count) in der.rewrites.items():
            lines.append(("- " if md else "  ") + f"{name} (×{count}): {reason}")
    lines.append(h("Layers"))
    formulas = layer_formulas(der, style)
    for nd in der.nodes:
        data = tg.node(nd.node)
        where = f"line {data.span.line}" if nd.kind != "input" else "input"
        head = f"{nd.name} ({where}): {data.out}; stored as {nd.layout.describe()}"
        lines.append(f"### {head}" if md else head)
        if nd.kind == "input":
            for op in nd.ops:
                lines.append(("    " if not md else "- ") + op.formula)
                lines.extend(_statements(op, md))
            continue
        entry = formulas.get(nd.name)
        if entry is None:
            lines.append(("    " if not md else "- ") + "(passes its input on)")
            continue
        pre = "- " if md else "    "
        if entry["nngp"]:
            lines.append(pre + "NNGP: " + entry["nngp"])
        if entry["ntk"]:
            lines.append(pre + "NTK:  " + entry["ntk"])
        for r in entry["reduced"]:
            lines.append(pre + "used: " + r)
        for op in nd.ops:
            lines.append(pre + "plan: " + op.formula)
            lines.extend(_statements(op, md))
        if entry["values"]:
            lines.append(pre + "with " + ", ".join(f"{k} = {v:g}" for k, v in entry["values"].items()))
        for note in entry["notes"]:
            lines.append(pre + "note: " + note)
    if n is not None:
        lines.append(h(f"Cost for an N = {n} Gram matrix ({dtype})"))
        cost = pair_cost(der)
        sym = der.decisions["S"].applied
        pairs = n * (n - 1) // 2 if sym else n * n
        total = (pairs + n) * cost["flops"]
        pre = "- " if md else "  "
        lines.append(pre + f"pairs of inputs: {pairs:,} cross + {n} diagonal"
                     + (" (S: i < j only)" if sym else ""))
        lines.append(pre + f"per pair: {_fmt_count(cost['flops'])}FLOP, widest layer "
                     f"{cost['peak_entries']:,} entries")
        lines.append(pre + f"whole Gram matrix: {_fmt_count(total)}FLOP")
        if plan_memory is not None:
            from .errors import MemoryBudgetError
            try:
                plan = plan_memory(n, None, dtype, max_memory, sym)
            except MemoryBudgetError as exc:
                lines.append(pre + f"would be refused: {exc.message}")
                return "\n".join(lines)
            tiles = -(-max(pairs, 1) // plan["tile_pairs"])
            lines.append(pre + f"memory per pair (peak): {_fmt_bytes(plan['bytes_per_pair'])}; "
                         f"results: {_fmt_bytes(plan['result_bytes'])}")
            lines.append(pre + f"tile: {plan['tile_pairs']:,} pairs = "
                         f"{_fmt_bytes(plan['tile_bytes'])}, "
                         f"{_fmt_count(plan['tile_pairs'] * cost['flops'])}FLOP; {tiles} tile(s) "
                         f"under a budget of {_fmt_bytes(plan['budget'])}")
    return "\n".join(lines)
