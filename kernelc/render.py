"""Text renderings of front-end results: the typed layer graph (text and Graphviz dot) and the
group registry. Pure functions of their inputs, deterministic."""
from __future__ import annotations

from typing import Optional

from .families import family_of
from .frontend.infer import TypedGraph
from .groups import builtin_groups, get_group


def _hp_text(data) -> str:
    hp = data.hp
    if data.kind == "nonlinearity":
        return hp["map"].name
    parts = []
    for key, value in hp.items():
        if value is None:
            continue
        if key == "support":
            parts.append(f"|S|={len(value)}")
        elif key == "rotations":
            parts.append(f"|R|={len(value)}")
        elif isinstance(value, float):
            parts.append(f"{key}={value:g}")
        else:
            parts.append(f"{key}={value}")
    return ", ".join(parts)


def graph_text(tg: TypedGraph) -> str:
    g = tg
    lines = [tg.summary(), ""]
    width = max(len(g.node(n).name) for n in g.order())
    for n in g.order():
        data = g.node(n)
        preds = g.inputs(n)
        src = "" if not preds or (len(preds) == 1 and preds[0] == _prev(g, n)) else \
            "  <- " + ", ".join(g.node(p).name for p in preds)
        line = data.span.line if data.span else "-"
        hp = _hp_text(data)
        lines.append(f"{n}  {data.name:<{width}}  line {line:<3}  -> {data.out}"
                     f"{'  [' + hp + ']' if hp else ''}{src}")
    return "\n".join(lines)


def _prev(g, n):
    order = g.order()
    i = order.index(n)
    return order[i - 1] if i else None


def graph_dot(tg: TypedGraph) -> str:
    g = tg
    lines = [f'digraph "{tg.spec.name}" {{', "  rankdir=TB;", '  node [shape=box, fontname="monospace"];']
    for n in g.order():
        data = g.node(n)
        hp = _hp_text(data)
        label = f"{data.name}\\n{data.out}" + (f"\\n{hp}" if hp else "")
        lines.append(f'  {n} [label="{label}"];')
    for a, b in sorted(g.graph.edges()):
        lines.append(f"  {a} -> {b};")
    lines.append("}")
    return "\n".join(lines)


def groups_text(name: Optional[str] = None) -> str:
    """``kernelc groups``: one row per group; ``kernelc groups NAME``: the group in detail, as
    its family shows it."""
    if name is not None:
        group = get_group(name)
        return family_of(group).details(group)
    rows = [("name", "|H|", "dim", "lattice", "generators")]
    for gname, group in builtin_groups().items():
        rows.append((gname,) + tuple(family_of(group).listing(group)))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4]
                     for r in rows)


def print_grams(grams, out=None, labelled_shape=True) -> None:
    """Print Gram matrices (the top-left 6×6 corner when large) and save them to ``out``."""
    import numpy as np
    np.set_printoptions(precision=5, suppress=True, linewidth=120)
    for name, gram in grams.items():
        print(f"{name} ({gram.shape[0]}×{gram.shape[1]}):" if labelled_shape else f"{name}:")
        print(gram if gram.size <= 64 else gram[:6, :6])
    if out:
        np.savez(out, **grams)
        print(f"wrote {out}")
