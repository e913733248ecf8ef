"""Layer rules: for each layer kind its NNGP/NTK recursion (sympy, for ``explain``) and its
lowering to plan ops (for the code generator); the machinery and the common table.

A rule is registered next to its definition with :func:`rule`; the compiler's walk looks rules
up by node kind. Rules registered with ``family=None`` (here: ``dense``, ``nonlinearity`` and the
branch structure ``fanout``, ``identity``, ``sum``, ``concat``, entrywise on kernels of one
layout) are in every family's table; a family's own rules are in its ``rules`` module
(:mod:`kernelc.families.lattice.rules`, :mod:`kernelc.families.so3.rules`), and
:mod:`kernelc.rules.family_rules` answers "the table of this family". ``lower(ctx, node, ins)``
returns the plan ops and the output :class:`~kernelc.ir.plan.Value`; ``ctx`` (a
:class:`~kernelc.compiler.derive.Context`) knows the group, which identities hold at this node, and names constants and variables.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import sympy

from ..families import Family
from ..ir.plan import (Affine, Assign, Expr, Lit, Num, Op, Param, Ref, SelfVariances, Value,
                       Variances, number_source)
from ..ir.plan import Sum as SumOf
from ..ir.laws import Activation, Concatenation, concat_weights
from ..errors import KernelcError
from .formulas import KDOT, K_NEW, SB2, SW2, THETA, THETA_NEW, S, SumOver, g, gp


@dataclass
class Formulas:
    """What explain prints for a layer: general form, and the reduced form actually used."""

    nngp: Optional[sympy.Eq] = None
    ntk: Optional[sympy.Eq] = None
    reduced: List[sympy.Eq] = field(default_factory=list)
    values: Dict[str, float] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)


@dataclass(frozen=True)
class LayerRule:
    kind: str
    formulas: Callable
    lower: Callable


#: The rules every family has (registered with ``family=None``), and each family's own rules.
COMMON_RULES: Dict[str, LayerRule] = {}
FAMILY_RULES: Dict[Family, Dict[str, LayerRule]] = {}


def rule(kind: str, family: Optional[Family] = None):
    """Register ``formulas`` and ``lower`` (methods of the decorated class) for ``kind`` of
    ``family`` (``None``: of every family)."""
    def register(cls):
        table = COMMON_RULES if family is None else FAMILY_RULES.setdefault(family, {})
        if kind in table or kind in COMMON_RULES:
            raise KernelcError(f"layer rule '{kind}' registered twice")
        table[kind] = LayerRule(kind, cls.formulas, cls.lower)
        return cls
    return register


# -- helpers shared by the weight layers ----------------------------------------------------
num = number_source  # a constant as short source text (used by the families' rule modules)


#: The hyperparameters of a weight layer that become arguments of the generated _propagate
#: (``params['<layer>.W_std']``): σ_w and σ_b enter the recursions as σ_w², σ_b².
WEIGHT_PARAMS = ("W_std", "b_std")


def weight_param(ctx, node, name: str, power: int = 2) -> Param:
    """The hyperparameter ``name`` (W_std or b_std) of the weight layer ``node`` as an argument
    of the generated code, ``params['<layer>.<name>'] ** power``, the spec's value its default
    (DEFAULT_PARAMS): the kernels are differentiable in it (docs/jax.md)."""
    if name not in WEIGHT_PARAMS:
        raise KernelcError(f"internal error: {name} is not a weight hyperparameter")
    return Param(f"{ctx.var(node)}.{name}", float(ctx.hp(node)[name]), power)


def bias_param(ctx, node) -> Optional[Param]:
    """σ_b² as an argument, or None for a layer without bias (σ_b = 0 in the spec: the bias is
    structurally absent, so it is no argument either)."""
    return weight_param(ctx, node, "b_std") if ctx.hp(node)["b_std"] else None


def affine_lines(ctx, node, lin: str, out: str) -> List[Assign]:
    """K⁺ = σ_w² K_lin + σ_b² (no bias term when σ_b = 0), σ_w and σ_b from ``params``."""
    return [Assign((out,), Affine(weight_param(ctx, node, "W_std"), Ref(lin),
                                  bias_param(ctx, node)))]


def ntk_update_lines(ctx, node, lin: str, ntk_lin: Optional[str], out_k: str,
               out_t: str) -> List[Assign]:
    """Θ⁺ = σ_w² (stencil of Θ) + K⁺ (ntk) or + fan_in · K_lin + [bias] (standard)."""
    hp = ctx.hp(node)
    if ctx.parameterization == "ntk":
        rest: Expr = Ref(out_k)
    else:
        fan_in = ctx.fan_in(node)
        rest = Affine(Lit(float(fan_in)), Ref(lin), Num(1.0) if hp["b_std"] > 0 else None)
    if ntk_lin is None:
        return [Assign((out_t,), rest)]
    return [Assign((out_t,), Affine(weight_param(ctx, node, "W_std"), Ref(ntk_lin), rest))]


def weight_values(ctx, node, domain_size: int, label: str) -> Dict[str, float]:
    """The values explain prints for a weight layer: σ_w², σ_b² and |label| (the filter's size)."""
    hp = ctx.hp(node)
    return {"σ_w²": hp["W_std"] ** 2, "σ_b²": hp["b_std"] ** 2, f"|{label}|": domain_size}


@rule("dense")
class Dense:
    """K⁺ = σ_w² K + σ_b²,  Θ⁺ = σ_w² Θ + K⁺ (ntk)  or  σ_w² Θ + n_in K + [b] (standard)."""

    @staticmethod
    def formulas(ctx, node):
        f = Formulas(sympy.Eq(S("K⁺"), SW2 * S("K") + SB2),
                     sympy.Eq(S("Θ⁺"), SW2 * S("Θ") + (S("K⁺") if ctx.parameterization == "ntk"
                                                        else S("n_in") * S("K") + S("[b]"))),
                     values=weight_values(ctx, node, 1, "1"))
        f.values.pop("|1|")
        return f

    @staticmethod
    def lower(ctx, node, ins):
        out = ctx.out_layout(node)
        src = ins[0]
        name = ctx.var(node)
        k, t = f"k_{name}", f"t_{name}"
        lines = affine_lines(ctx, node, src.nngp, k)
        ntk_lines = ntk_update_lines(ctx, node, src.nngp, src.ntk, k, t)
        return [Op("affine", "K⁺ = σ_w² K + σ_b²,  Θ⁺ = σ_w² Θ + K⁺", lines, 1, 2, ntk_lines)], \
            Value(k, t, out)


def _activation_parts(law) -> List[Tuple[float, Activation]]:
    """(channel fraction, activation) blocks of a nonlinearity's output law: one block, or one
    per branch of a concatenation (the type checker admits nothing else)."""
    if isinstance(law, Concatenation):
        return list(zip(law.weights, law.parts))
    return [(1.0, law)]


def _absorbed(ctx, node) -> bool:
    """A nonlinearity whose every successor is a nonlinearity is composed into them (φ₂∘φ₁):
    its own kernel is never needed, so it is not computed."""
    after = ctx.typed.successors(node)
    return bool(after) and all(ctx.typed.node(n).kind == "nonlinearity" for n in after)


def _map_lines(ctx, node, src: Value, kmap, k: str, t: str,
               suffix: str = "") -> Tuple[List[str], List[str]]:
    """K⁺ = E_Λ[φ(u)φ(v)] and Θ⁺ = K̇ ⊙ Θ of one Gaussian pre-activation ``src``; Λ's variances
    k11, k22 are read from the self pass (``stats``), its covariance k12 is ``src``'s kernel.
    ``suffix`` names the variances of one block (the NTK lines run after all NNGP lines)."""
    lay = src.layout
    i = ctx.stat_index()
    k11, k22 = f"k11{suffix}", f"k22{suffix}"
    lines = [
        Assign(("v_a", "v_b"), SelfVariances(i, Ref(src.nngp), lay, src.node)),
        "stats.append(v_a)",
        Assign((k11, k22), Variances(Ref("v_a"), Ref("v_b"), lay, src.node)),
        Assign((k,), kmap.expr("K⁺", k11, src.nngp, k22)),
        # float32 only: the first-order rounding-error estimate kernel_fn's PrecisionWarning
        # reads (docs/precision.md); a no-op, traced to nothing, in float64
        kmap.emit_precision(k11, src.nngp, k22, f"{ctx.var(node)} (line {ctx.line(node)})"),
    ]
    ntk_lines = [Assign((t,), Affine(kmap.expr("K̇", k11, src.nngp, k22), Ref(src.ntk)))] \
        if src.ntk is not None else []
    return lines, ntk_lines


@rule("nonlinearity")
class Nonlinearity:
    """K⁺ = E[φ(u)φ(v)], K̇ = E[φ'(u)φ'(v)] = ∂K⁺/∂k12 (Price), Θ⁺ = K̇ ⊙ Θ, (u,v) ~ N(0, Λ).

    u is the Gaussian pre-activation recorded in the node's law (frontend.gaussianity): after
    consecutive nonlinearities φ is their composition φ_k∘…∘φ_1 of the last Gaussian signal;
    after a concatenation of Gaussian blocks b (channel fractions w_b) the map acts per block,
    K⁺ = Σ_b w_b E_{Λ_b}[φ(u)φ(v)], Θ⁺ = Σ_b w_b K̇_b ⊙ Θ_b.
    """

    @staticmethod
    def formulas(ctx, node):
        if _absorbed(ctx, node):
            after = ", ".join(ctx.var(n) for n in ctx.typed.successors(node))
            f = Formulas()
            f.notes.append(f"composed into {after}: the output of a nonlinearity is not "
                           "Gaussian, so the next map takes the composition of both")
            return f
        parts = _activation_parts(ctx.law(node))
        if len(parts) == 1:
            f = Formulas(sympy.Eq(K_NEW[g, gp], sympy.Function("E_Λ")(S("φ(u)φ(v)"))),
                         sympy.Eq(THETA_NEW[g, gp], KDOT[g, gp] * THETA[g, gp]))
        else:
            b = S("b")
            f = Formulas(sympy.Eq(K_NEW[g, gp], SumOver(S("w_b") * sympy.Function("E_Λ_b")(
                S("φ(u)φ(v)")), b, S("blocks"))),
                sympy.Eq(THETA_NEW[g, gp], SumOver(S("w_b") * KDOT[g, gp] * THETA[g, gp], b,
                                                   S("blocks"))))
            f.notes.append(f"after a concatenation: φ acts on each of the {len(parts)} Gaussian "
                           "blocks with its own Λ_b, weights w_b = " +
                           ", ".join(f"{w:g}" for w, _ in parts))
        seen = set()
        for _, part in parts:
            kmap = part.map
            if kmap.name in seen:  # blocks with the same φ: say it once
                continue
            seen.add(kmap.name)
            chain = part.chain
            if len(chain) > 1:
                names = "∘".join(ctx.var(n) for n in reversed(chain))
                f.notes.append(f"φ = {names} = {kmap.phi} (composed: the input of "
                               f"{ctx.var(chain[-1])} is not Gaussian); maps by {kmap.method}")
            else:
                f.notes.append(f"φ(x) = {kmap.phi}; maps by {kmap.method}; K̇ = ∂K⁺/∂k12 "
                               "(Price)")
            if kmap.nngp is None:  # quadrature: say that it is not exact, and what guards it
                f.notes.append(f"{kmap.method} is not exact: kernel_fn estimates its error at "
                               "the actual variances and warns (QuadratureWarning) above 1e-10 "
                               "in float64, 1e-5 in float32; raise degree= if it does")
            f.reduced.append(kmap)
        return f

    @staticmethod
    def lower(ctx, node, ins):
        if _absorbed(ctx, node):
            return [], Value(None, None, ins[0].layout)
        parts = _activation_parts(ctx.law(node))
        name = ctx.var(node)
        k, t = f"k_{name}", f"t_{name}"
        lines, ntk_lines = [], []
        sources = [ctx.value(part.source) for _, part in parts]
        lay = sources[0].layout
        with_ntk = all(src.ntk is not None for src in sources)
        if len(parts) == 1:
            lines, ntk_lines = _map_lines(ctx, node, sources[0], parts[0][1].map, k, t)
        else:
            for b, ((w, part), src) in enumerate(zip(parts, sources)):
                more, more_ntk = _map_lines(ctx, node, src, part.map, f"{k}_{b}", f"{t}_{b}",
                                            f"_{b}")
                lines += more
                ntk_lines += more_ntk
            weights = [w for w, _ in parts]
            lines.append(Assign((k,), _weighted_sum(weights, [f"{k}_{b}" for b in
                                                              range(len(parts))])))
            if with_ntk:
                ntk_lines.append(Assign((t,), _weighted_sum(weights, [f"{t}_{b}" for b in
                                                                      range(len(parts))])))
        if not with_ntk:
            ntk_lines = []
        lines += ctx.mask_lines(k, lay, node)
        names = " + ".join(sorted({p.map.name for _, p in parts}))
        names += f" on each of {len(parts)} blocks" if len(parts) > 1 else ""
        return [Op("elementwise", f"K⁺ = E[φ(u)φ(v)],  Θ⁺ = K̇ ⊙ Θ,  φ = {names}", lines,
                   lay.entries, lay.entries * 40 * len(parts), ntk_lines, layout=lay,
                   owner=node)], \
            Value(k, t if with_ntk else None, lay)


def _weighted_sum(weights, names) -> Expr:
    """Σ_i w_i · name_i (a weight of 1 is left out; one term is that term)."""
    terms = tuple(Affine(Lit(w), Ref(v)) if w != 1.0 else Ref(v) for w, v in zip(weights, names))
    return terms[0] if len(terms) == 1 else SumOf(terms)


def _combine(ctx, node, ins, weights, formula):
    # an entrywise combination keeps its branches' common layout (whatever the family's
    # layouts are: so3_reduced for SO(3) under (R), group_reduced on a lattice)
    out = ins[0].layout
    if any(v.layout != out for v in ins[1:]):
        raise KernelcError(f"internal error: the branches of '{ctx.typed.node(node).name}'"
                           f" have different layouts ({', '.join(v.layout.kind for v in ins)})")
    name = ctx.var(node)
    k, t = f"k_{name}", f"t_{name}"
    lines = [Assign((k,), _weighted_sum(weights, [v.nngp for v in ins]))]
    with_ntk = [(w, v.ntk) for w, v in zip(weights, ins) if v.ntk is not None]
    ntk_lines = [Assign((t,), _weighted_sum(*zip(*with_ntk)))] if with_ntk else []
    return [Op("combine", formula, lines, out.entries, out.entries * len(ins), ntk_lines,
               layout=out, owner=node)], \
        Value(k, t if with_ntk else None, out)


@rule("sum")
class Sum:
    """K = Σ_b K_b, Θ = Σ_b Θ_b: branch outputs are independent (checked by the type checker)."""

    @staticmethod
    def formulas(ctx, node):
        b = S("b")
        return Formulas(sympy.Eq(S("K⁺"), SumOver(S("K_b"), b, S("branches"))),
                        sympy.Eq(S("Θ⁺"), SumOver(S("Θ_b"), b, S("branches"))))

    @staticmethod
    def lower(ctx, node, ins):
        return _combine(ctx, node, ins, [1.0] * len(ins), "K = Σ_b K_b,  Θ = Σ_b Θ_b")


@rule("concat")
class Concat:
    """Channel concatenation: K = Σ_b (n_b/n) K_b (equal weights when widths are not given)."""

    @staticmethod
    def formulas(ctx, node):
        b = S("b")
        return Formulas(sympy.Eq(S("K⁺"), SumOver(S("n_b") / S("n") * S("K_b"), b, S("branches"))),
                        sympy.Eq(S("Θ⁺"), SumOver(S("n_b") / S("n") * S("Θ_b"), b, S("branches"))))

    @staticmethod
    def lower(ctx, node, ins):
        widths = [ctx.typed.node(i).out.channels for i in ctx.typed.inputs(node)]
        return _combine(ctx, node, ins, list(concat_weights(widths)), "K = Σ_b (n_b/n) K_b")


@rule("fanout")
class FanOut:
    """Copies its input to every branch."""

    formulas = staticmethod(lambda ctx, node: None)
    lower = staticmethod(lambda ctx, node, ins: ([], ins[0]))


@rule("identity")
class Identity:
    """An empty branch: K⁺ = K, Θ⁺ = Θ."""

    formulas = staticmethod(lambda ctx, node: None)
    lower = staticmethod(lambda ctx, node, ins: ([], ins[0]))
