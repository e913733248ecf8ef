"""The identity passes (stage 4a): the plan in the general layout -> the same kernels stored in
the reduced layouts that the applied identities prove equal.

The lowerings state every kernel in its family's general layout (a lattice kernel K[g,g'] on
all pairs of positions and group elements). An identity whose precondition holds (its decision,
:mod:`kernelc.compiler.identities`) rewrites the plan: every layout-carrying node
(:class:`~kernelc.ir.plan.LaidOut`) of a kernel in layout A becomes the same node in layout B,
which prints the computation of B. Each rewrite is a table entry registered by the family next
to its decision, with the mapping A -> B and the reason ``explain`` prints, e.g. the lattice
family's

    (R)  group_general -> group_reduced   K[gs, g's] = K[g, g'] (s ∈ H): keep K̃[t,t'](q)
    (D)  box_full -> box_diag, group_reduced -> group_diag   only K[t,t] is ever read

(the proofs: docs/math/identities.md). The passes run in the order R, D, S, O, each on the
previous one's output; ops state their formula and cost per layout, so ``explain`` shows the
rewritten plan and its cost.
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from typing import Dict, List, Mapping

from ..families import Family, family_of
from ..frontend.infer import TypedGraph
from ..ir.plan import Assign, LaidOut, Layout, Op, Stmt, Value, relayout, walk
from .identities import KEYS, IdentityDecision


@dataclass(frozen=True)
class LayoutRewrite:
    """Identity ``key`` as a rewrite: a kernel in layout kind A is stored as ``mapping[A]``
    (at the layers the decision names; at every layer when it names none)."""

    key: str
    name: str
    mapping: Mapping[str, str]
    reason: str


#: family -> identity key -> its layout rewrite
LAYOUT_REWRITES: Dict[Family, Dict[str, LayoutRewrite]] = {}


def layout_rewrite(family: Family, key: str, name: str, mapping: Mapping[str, str],
                   reason: str) -> LayoutRewrite:
    """Register identity ``key`` of ``family`` as the layout rewrite ``mapping``."""
    table = LAYOUT_REWRITES.setdefault(family, {})
    if key in table:
        raise ValueError(f"identity ({key}) of {family.name} has two rewrites")
    table[key] = LayoutRewrite(key, name, dict(mapping), reason)
    return table[key]


def _rewrite_stmt(stmt: Stmt, layout_of) -> Stmt:
    if isinstance(stmt, Assign):
        return Assign(stmt.targets, relayout(stmt.value, layout_of))
    return stmt  # text statements carry no layout-dependent node


def _count(stmt: Stmt, layout_of) -> int:
    """How many layout-carrying nodes of ``stmt`` the rewrite moves."""
    if not isinstance(stmt, Assign):
        return 0
    return sum(1 for e in walk(stmt.value)
               if isinstance(e, LaidOut) and layout_of(e.owner, e.layout) != e.layout)


def relayout_plan(typed: TypedGraph, decisions: Dict[str, IdentityDecision],
                  ops: List[List[Op]], values: List[Value]):
    """Apply the layout rewrite of every applied identity of the graph's family, in the order
    R, D, S, O. Returns (ops per node, value per node, {rewrite: (reason, nodes moved)})."""
    table = LAYOUT_REWRITES.get(family_of(typed.group), {})
    fired: Counter = Counter()
    reasons = {}
    for key in KEYS:
        rewrite, decision = table.get(key), decisions.get(key)
        if rewrite is None or decision is None or not decision.applied:
            continue
        where = decision.nodes or None

        def layout_of(owner, layout: Layout, rewrite=rewrite, where=where) -> Layout:
            new = rewrite.mapping.get(layout.kind)
            if new is None or (where is not None and owner not in where):
                return layout
            return dataclasses.replace(layout, kind=new)
        label = f"({key}) {rewrite.name}"
        reasons[label] = rewrite.reason
        fired[label] += sum(_count(s, layout_of) for node_ops in ops for op in node_ops
                            for s in op.lines + op.ntk_lines)
        ops = [[dataclasses.replace(op.relaid(layout_of),
                                    lines=[_rewrite_stmt(s, layout_of) for s in op.lines],
                                    ntk_lines=[_rewrite_stmt(s, layout_of) for s in op.ntk_lines])
                for op in node_ops] for node_ops in ops]
        values = [dataclasses.replace(v, layout=layout_of(v.node, v.layout)) for v in values]
    report = {name: (reasons[name], count) for name, count in fired.items() if count}
    return ops, values, report
