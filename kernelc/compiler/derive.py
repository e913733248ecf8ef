"""Typed graph -> derivation (stage 4): per node, the recursion formulas, the identities used,
the storage layout and the plan ops.

The walk is a loop over the nodes in topological order; every step is a look-up in the layer
rules table of the graph's family (:func:`kernelc.rules.family_rules.rules_for`), which lowers the
node in the general layout. The identity passes (:mod:`kernelc.compiler.relayout`) then rewrite
the plan into the layouts the applied identities allow: (R) stores group kernels as
K̃[t,t'](q), (D) keeps only site-diagonal entries.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np

from ..families import VECTOR, domain, family_of
from ..frontend.infer import TypedGraph
from ..rules.family_rules import rules_for
from ..rules.layers import Formulas
from .family_identities import decide
from .identities import IdentityDecision
from .passes import simplify
from ..ir.plan import (Assign, Layout, MaskSites, Op, Param, Ref, SelfVariances, Value,
                       walk)
from .relayout import relayout_plan

ALL_IDENTITIES = {"R": True, "D": True, "S": True}


@dataclass
class NodeDerivation:
    node: str
    name: str
    kind: str
    formulas: Optional[Formulas]
    ops: List[Op]
    value: Value

    @property
    def layout(self) -> Layout:
        return self.value.layout


@dataclass
class Derivation:
    typed: TypedGraph
    decisions: Dict[str, IdentityDecision]
    nodes: List[NodeDerivation]
    output: Value
    constants: Dict[str, str]
    stats: List[Layout]
    enabled: Dict[str, bool] = field(default_factory=dict)
    #: rewrite name -> (its reason, how often it fired): what kernelc.compiler.passes simplified
    rewrites: Dict[str, tuple] = field(default_factory=dict)
    #: the hyperparameters the generated _propagate takes as arguments ("<layer>.W_std" -> the
    #: spec's value), in program order (ir.plan.Param)
    params: Dict[str, float] = field(default_factory=dict)

    @property
    def group(self):
        return self.typed.group


class Context:
    """What a layer rule may ask while lowering a node."""

    def __init__(self, typed: TypedGraph, decisions: Dict[str, IdentityDecision]):
        self.typed = typed
        self.group = typed.group
        self.decisions = decisions
        self.parameterization = typed.spec.parameterization
        self.constants: Dict[str, str] = {}
        self.stat_count = 0  # variance maps numbered so far (their layouts: from the final plan)
        self.site_mask = self._site_mask()
        self.values: Dict[str, Value] = {}  # the values lowered so far (read by later rules)

    # -- questions ------------------------------------------------------------------------
    def hp(self, node: str) -> dict:
        return self.typed.node(node).hp

    def var(self, node: str) -> str:
        return self.typed.node(node).name

    def line(self, node: str) -> int:
        """The spec line that declares ``node`` (messages name the layer by it)."""
        return self.typed.node(node).span.line

    def law(self, node: str):
        """The law (Gaussian, activation, ...) of ``node``'s output (frontend.gaussianity)."""
        return self.typed.node(node).out.law

    def value(self, node: str) -> Value:
        """The lowered value of an earlier node (e.g. a nonlinearity's Gaussian source)."""
        return self.values[node]

    def uses(self, key: str, node: str) -> bool:
        dec = self.decisions.get(key)
        if dec is None or not dec.applied:
            return False
        return not dec.nodes or node in dec.nodes

    def out_layout(self, node: str) -> Layout:
        """The general layout of ``node``'s kernel, declared by its signal domain (every pair
        of positions, K[g,g']; the identity passes of :mod:`kernelc.compiler.relayout` may
        store it reduced later)."""
        t = self.typed.node(node).out
        if t.domain == VECTOR.name:
            return Layout(VECTOR.layout)
        return Layout(domain(t.domain).layout, tuple(t.shape), t.group_order)

    def fan_in(self, node: str) -> int:
        """Input channels × weights per channel pair: the fan-in of a weight layer (standard
        param.). A kind whose weights are not one per support offset (and rotation) states
        their count as the hyperparameter ``weights_per_channel`` (steerable: |B|, |B|·|H|)."""
        g = self.typed
        src = g.inputs(node)[0]
        channels = g.node(src).out.channels  # known: the type checker requires it
        hp = g.node(node).hp
        if hp.get("weights_per_channel") is not None:
            return channels * hp["weights_per_channel"]
        size = len(hp["support"]) if "support" in hp and hp["support"] is not None else 1
        return channels * size * len(hp.get("rotations") or (0,))

    def site_count(self, layout: Layout) -> int:
        if self.site_mask is None or layout.box != self.typed.input_type.shape:
            return layout.sites
        return int(self.site_mask.sum())

    # -- numbering ------------------------------------------------------------------------
    def stat_index(self) -> int:
        """The index of the next variance map in stats_a/stats_b (the self pass's output)."""
        self.stat_count += 1
        return self.stat_count - 1

    # -- hexagonal (masked) domains --------------------------------------------------------
    def _site_mask(self):
        shape = self.typed.input_type.shape
        mask = np.asarray(self.group.domain_mask(shape), dtype=bool)
        if mask.all():
            return None
        self.constants["SITE_MASK"] = "np.array(" + repr(mask.astype(int).tolist()) + \
            ", dtype=np.float32)"
        return mask

    def mask_lines(self, var: str, layout: Layout, node: str) -> List[Assign]:
        """Zero ``node``'s kernel ``var`` at sites outside a masked (hexagonal) domain."""
        if self.site_mask is None or layout.kind == "vector" or \
                layout.box != self.typed.input_type.shape:
            return []
        return [Assign((var,), MaskSites(Ref(var), layout, node))]


def derive(typed: TypedGraph, identities: Optional[Dict[str, bool]] = None) -> Derivation:
    """The plan of ``typed``: every node lowered by its rule in the general layout, then the
    identity passes (each applied identity stores kernels in a reduced layout,
    :mod:`kernelc.compiler.relayout`), then the simplifying rewrites
    (:mod:`kernelc.compiler.passes`)."""
    enabled = dict(ALL_IDENTITIES)
    if identities is not None:
        enabled.update(identities)
    decisions = decide(typed, enabled)
    ctx = Context(typed, decisions)
    g = typed
    rules = rules_for(family_of(typed.group))
    values = ctx.values
    nodes: List[NodeDerivation] = []
    for n in g.order():
        data = g.node(n)
        rule = rules[data.kind]
        ops, value = rule.lower(ctx, n, [values[i] for i in g.inputs(n)])
        if value.node is None:  # a new kernel (fanout and identity pass their input's on)
            value = dataclasses.replace(value, node=n)
        values[n] = value
        nodes.append(NodeDerivation(n, data.name, data.kind, rule.formulas(ctx, n), ops,
                                    value))
    ops, values_out, layout_rewrites = relayout_plan(typed, decisions, [nd.ops for nd in nodes],
                                                     [nd.value for nd in nodes])
    output = values_out[[nd.node for nd in nodes].index(g.output_node)]
    new_ops, new_values, output, rewrites = simplify(ops, values_out, output)
    nodes = [dataclasses.replace(nd, ops=o, value=v)
             for nd, o, v in zip(nodes, new_ops, new_values)]
    constants = dict(ctx.constants)
    stats: Dict[int, Layout] = {}
    params: Dict[str, float] = {}
    for nd in nodes:  # what the final statements print by name or read from the self pass
        for op in nd.ops:
            for stmt in op.lines + op.ntk_lines:
                for e in walk(stmt.value) if isinstance(stmt, Assign) else ():
                    constants.update(e.constants() if hasattr(e, "constants") else {})
                    if isinstance(e, SelfVariances):
                        stats[e.index] = e.layout
                    elif isinstance(e, Param):
                        params[e.key] = e.default
    return Derivation(typed, decisions, nodes, output, constants,
                      [stats[i] for i in sorted(stats)], enabled,
                      {**layout_rewrites, **rewrites}, params)
