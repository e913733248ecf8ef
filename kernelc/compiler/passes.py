"""Rewrite passes over the plan (stage 4b): the lowered ops -> the same computation, simpler.

Two kinds of rewrites, each registered with the reason ``explain`` prints:

* **expression rules** (:data:`REWRITES`): pattern -> replacement on one expression, applied
  bottom-up until none fires (tinygrad-style: the math in the reason);
* **statement passes** (:data:`PASSES`): over the whole body in program order.

Every rewrite here computes the same sums in the same order (bit-identical, or to rounding
where XLA vectorises the rewritten loop differently, as its reason says); a rewrite that changed
a value beyond that would need an error bound in its reason.
"""
from __future__ import annotations

import dataclasses
import re
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

from ..ir.plan import (Affine, Assign, Call, Code, Expr, FilterSum, Line, Lit, Num, Op, Ref, Stmt,
                       Sum, Value, WithTheta)


@dataclass(frozen=True)
class Rewrite:
    """A rewrite rule: ``apply`` returns the replacement of an expression, or None."""

    name: str
    reason: str
    apply: Callable[[Expr], Optional[Expr]]


#: name -> expression rule, in the order they are tried
REWRITES: Dict[str, Rewrite] = {}


def rewrite(name: str, reason: str):
    """Register an expression rule next to its definition."""
    def register(fn):
        REWRITES[name] = Rewrite(name, reason, fn)
        return fn
    return register


def _is_one(e: Expr) -> bool:
    return isinstance(e, (Num, Lit)) and isinstance(e.value, float) and e.value == 1.0


@rewrite("unit scale", "1.0 * x -> x: a constant weight of 1 (a block weight) multiplies by "
                       "one, exactly")
def _unit_scale(e: Expr) -> Optional[Expr]:
    # constants only (Num, Lit): a hyperparameter (ir.plan.Param, σ_w² = params[...] ** 2) is
    # an argument of _propagate, 1 only by default; folding it would drop its gradient
    if isinstance(e, Affine) and _is_one(e.scale):
        return e.x if e.shift is None else Sum((e.x, e.shift))
    return None


def _children_rewritten(e: Expr, fired: Counter) -> Expr:
    children = e.children()
    return e.with_children(tuple(rewrite_expr(c, fired) for c in children)) if children else e


def rewrite_expr(e: Expr, fired: Counter) -> Expr:
    """``e`` with every expression rule applied bottom-up until none fires; ``fired`` counts
    the rules that did."""
    e = _children_rewritten(e, fired)
    changed = True
    while changed:
        changed = False
        for rule in REWRITES.values():
            out = rule.apply(e)
            if out is not None:
                fired[rule.name] += 1
                e, changed = _children_rewritten(out, fired), True
    return e


# -- statement passes ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Pass:
    name: str
    reason: str
    run: Callable[[List[Tuple[int, str, Stmt]], Counter], Tuple[List[Tuple[int, str, Stmt]],
                                                               Dict[str, str]]]


#: name -> statement pass, in the order they run
PASSES: Dict[str, Pass] = {}


def statement_pass(name: str, reason: str):
    def register(fn):
        PASSES[name] = Pass(name, reason, fn)
        return fn
    return register


def _rename_expr(e: Expr, names: Dict[str, str]) -> Expr:
    if not names:
        return e
    if isinstance(e, Ref):
        return Ref(names.get(e.name, e.name))
    if isinstance(e, Code):  # text: renamed as whole words
        return Code(_rename_text(e.text, names), tuple(names.get(n, n) for n in e.names))
    children = e.children()
    return e.with_children(tuple(_rename_expr(c, names) for c in children)) if children else e


def _rename_text(text: str, names: Dict[str, str]) -> str:
    for old, new in names.items():
        text = re.sub(rf"\b{re.escape(old)}\b", new, text)
    return text


def rename(stmt: Stmt, names: Dict[str, str]) -> Stmt:
    """``stmt`` reading ``names[x]`` wherever it read ``x`` (its targets stay)."""
    if isinstance(stmt, Assign):
        return Assign(stmt.targets, _rename_expr(stmt.value, names))
    return Line(_rename_text(stmt.source(), names))


def _assigned(stmt: Stmt) -> Tuple[str, ...]:
    if isinstance(stmt, Assign):
        return stmt.targets
    head = stmt.source().split("=", 1)
    if len(head) == 2 and "==" not in stmt.source() and head[0].strip().replace(",", " ") \
            .replace("_", "a").replace(" ", "").isalnum():
        return tuple(t.strip() for t in head[0].split(","))
    return ()


@statement_pass("copy forwarding", "t = k: later statements read k itself (t and k are each "
                                   "assigned once, so they are the same array)")
def _forward_copies(body, fired):
    counts = Counter(name for _, _, stmt in body for name in _assigned(stmt))
    alias: Dict[str, str] = {}
    out = []
    for index, part, stmt in body:
        stmt = rename(stmt, alias)
        if isinstance(stmt, Assign) and len(stmt.targets) == 1 and isinstance(stmt.value, Ref) \
                and counts[stmt.targets[0]] == 1 and counts[stmt.value.name] <= 1:
            alias[stmt.targets[0]] = stmt.value.name
            fired["copy forwarding"] += 1
            continue
        out.append((index, part, stmt))
    return out, alias


#: the kernel a filter sum is keyed by when only its offsets and weights matter
_ANY = Ref("\0K")


def _theta_filter_sum(value: Expr) -> Optional[FilterSum]:
    """The filter sum of an NTK statement ``t_lin = S(Θ)``, also under the optimization
    barrier the lowering puts around it (which the joint call makes unnecessary: its reason,
    an XLA fusion of S(Θ) with S(K), cannot happen once they are one call)."""
    if isinstance(value, Call) and value.fn == "jax.lax.optimization_barrier" \
            and len(value.args) == 1:
        value = value.args[0]
    return value if isinstance(value, FilterSum) else None


@statement_pass("one filter sum for K and Θ",
                "S(K), S(Θ) -> S([K; Θ]) split on the pair axis (runtime.stencils.with_theta): "
                "the same offsets and weights, the same sum per entry in the same order (equal "
                "to rounding: 1e-16 in float64, XLA vectorises the stacked loop differently); "
                "XLA then writes the map before the stencil once instead of "
                "re-evaluating it inside every padded copy of K and of Θ (2.0× on a p4 relu + "
                "gconv stage, benchmarks/stencils.py); where Θ is K itself (after a lift) "
                "S(Θ) is S(K), assigned")
def _joint_filter_sums(body, fired):
    # the NTK statement t_lin = S(Θ) of a node, keyed by the filter sum it applies to K
    theta_of = {}
    for index, part, stmt in body:
        if part.endswith(":ntk") and isinstance(stmt, Assign) and len(stmt.targets) == 1:
            s = _theta_filter_sum(stmt.value)
            if s is not None and isinstance(s.children()[0], Ref):
                theta_of[index, part[:-4], s.reading(_ANY)] = (stmt, s.children()[0])
    joined, aliased, out = set(), {}, []
    for index, part, stmt in body:
        if part.endswith(":nngp") and isinstance(stmt, Assign) and len(stmt.targets) == 1 \
                and isinstance(stmt.value, FilterSum) \
                and isinstance(stmt.value.children()[0], Ref):
            s = stmt.value
            key = (index, part[:-5], s.reading(_ANY))
            if key in theta_of:
                theta_stmt, theta = theta_of.pop(key)
                fired["one filter sum for K and Θ"] += 1
                if theta == s.children()[0]:  # Θ = K (after a lift): S(Θ) is S(K) itself
                    aliased[id(theta_stmt)] = Assign(theta_stmt.targets, Ref(stmt.targets[0]))
                    out.append((index, part, stmt))
                    continue
                joined.add(id(theta_stmt))
                out.append((index, part, Assign(stmt.targets + theta_stmt.targets,
                                                WithTheta(s, theta))))
                continue
        out.append((index, part, stmt))
    return [(index, part, aliased.get(id(stmt), stmt)) for index, part, stmt in out
            if id(stmt) not in joined], {}


# -- the driver ---------------------------------------------------------------------------------

def simplify(ops: List[List[Op]], values: List[Value], output: Value):
    """The ops of every node (in program order), rewritten: expression rules on every
    statement, then the statement passes over the whole body. Returns (new ops per node, the
    node values and the output with names forwarded, {rewrite name: (reason, times fired)})."""
    fired: Counter = Counter()
    body = []  # (node index, "nngp" | "ntk" and op position, statement) in program order
    for i, node_ops in enumerate(ops):
        for j, op in enumerate(node_ops):
            for stmt in op.lines:
                body.append((i, f"{j}:nngp", _rewrite_statement(stmt, fired)))
            for stmt in op.ntk_lines:
                body.append((i, f"{j}:ntk", _rewrite_statement(stmt, fired)))
    names: Dict[str, str] = {}
    for p in PASSES.values():
        body, renamed = p.run(body, fired)
        names = {k: renamed.get(v, v) for k, v in names.items()}
        names.update(renamed)
    new_ops = []
    for i, node_ops in enumerate(ops):
        rebuilt = []
        for j, op in enumerate(node_ops):
            lines = [s for n, part, s in body if n == i and part == f"{j}:nngp"]
            ntk = [s for n, part, s in body if n == i and part == f"{j}:ntk"]
            rebuilt.append(dataclasses.replace(op, lines=lines, ntk_lines=ntk))
        new_ops.append(rebuilt)
    reasons = {**{r.name: r.reason for r in REWRITES.values()},
               **{p.name: p.reason for p in PASSES.values()}}
    report = {name: (reasons[name], count) for name, count in sorted(fired.items())}
    return new_ops, [_renamed_value(v, names) for v in values], _renamed_value(output, names), \
        report


def _rewrite_statement(stmt: Stmt, fired: Counter) -> Stmt:
    if isinstance(stmt, Assign):
        return Assign(stmt.targets, rewrite_expr(stmt.value, fired))
    return stmt


def _renamed_value(v: Value, names: Dict[str, str]) -> Value:
    return dataclasses.replace(v, nngp=names.get(v.nngp, v.nngp),
                               ntk=names.get(v.ntk, v.ntk) if v.ntk is not None else None)
