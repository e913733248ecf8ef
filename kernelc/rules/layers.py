"""The layer rules table: for each layer kind its NNGP/NTK recursion (sympy, for ``explain``)
and its lowering to plan ops (for the code generator).

A rule is registered next to its definition with :func:`rule`; the compiler's walk looks rules
up by node kind. ``lower(ctx, node, ins)`` returns the plan ops and the output
:class:`~kernelc.ir.plan.Value`; ``ctx`` (a :class:`~kernelc.compiler.derive.Context`)
knows the group, which identities hold at this node, and names constants and variables.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import sympy

from ..ir.plan import (Affine, Assign, Call, Expr, Layout, Lit, Mean, Num, Op, Ref, Value,
                       number_source, pad_widths, pairs_literal)
from ..ir.plan import Sum as SumOf
from ..ir.laws import Activation, Concatenation, concat_weights
from ..errors import KernelcError
from .formulas import (K, K0, KDOT, K_NEW, SB2, SW2, THETA, THETA_NEW, MeanOver, S, SumOver, g,
                       gp, size)


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


#: One rules table per group family; ``RULES`` is the lattice family's.
FAMILY_RULES: Dict[str, Dict[str, LayerRule]] = {"lattice": {}}
RULES: Dict[str, LayerRule] = FAMILY_RULES["lattice"]


def rule(kind: str, family: str = "lattice"):
    """Register ``formulas`` and ``lower`` (methods of the decorated class) for ``kind``."""
    def register(cls):
        FAMILY_RULES.setdefault(family, {})[kind] = LayerRule(kind, cls.formulas, cls.lower)
        return cls
    return register


def rules_for(family: str) -> Dict[str, LayerRule]:
    """The rules table of a group family (importing the family's rules on first use)."""
    if family == "so3":
        from . import so3  # noqa: F401 - registers the SO(3) rules
    return FAMILY_RULES[family]


# -- helpers shared by the weight layers ----------------------------------------------------
num = number_source  # a constant as short source text (used by the family rule modules)


def _affine_lines(ctx, node, lin: str, out: str) -> List[Assign]:
    """K⁺ = σ_w² K_lin + σ_b² (no bias term when σ_b = 0)."""
    hp = ctx.hp(node)
    w2, b2 = hp["W_std"] ** 2, hp["b_std"] ** 2
    return [Assign((out,), Affine(Num(w2), Ref(lin), Num(b2) if b2 else None))]


def _ntk_lines(ctx, node, lin: str, ntk_lin: Optional[str], out_k: str,
               out_t: str) -> List[Assign]:
    """Θ⁺ = σ_w² (stencil of Θ) + K⁺ (ntk) or + fan_in · K_lin + [bias] (standard)."""
    hp = ctx.hp(node)
    w2 = hp["W_std"] ** 2
    if ctx.parameterization == "ntk":
        rest: Expr = Ref(out_k)
    else:
        fan_in = ctx.fan_in(node)
        rest = Affine(Lit(float(fan_in)), Ref(lin), Num(1.0) if hp["b_std"] > 0 else None)
    if ntk_lin is None:
        return [Assign((out_t,), rest)]
    return [Assign((out_t,), Affine(Num(w2), Ref(ntk_lin), rest))]


def _weight_values(ctx, node, domain_size: int, label: str) -> Dict[str, float]:
    hp = ctx.hp(node)
    return {"σ_w²": hp["W_std"] ** 2, "σ_b²": hp["b_std"] ** 2, f"|{label}|": domain_size}


def _ntk_eq(new_k_term, theta_sum, standard: bool):
    if standard:
        return sympy.Eq(THETA_NEW[g, gp], SW2 * theta_sum + S("n_in") * (new_k_term) + S("[b]"))
    return sympy.Eq(THETA_NEW[g, gp], K_NEW[g, gp] + SW2 * theta_sum)


def _stencil_call(ctx, node, src: Expr, terms: str, nslots: int, out_box,
                  helper="stencil") -> Call:
    """A stencil helper call on ``src`` with the node's offset table, pads and padding."""
    hp = ctx.hp(node)
    slots = (Lit(nslots),) if helper == "stencil" else ()
    return Call(helper, (src, Ref(terms)) + slots + (Lit(pad_widths(hp["support"])),
                                                      Lit(tuple(out_box)), Lit(hp["padding"])))


def _offset_terms(ctx, node, pairing: str):
    """Offset tables of the node's support S, as source text, for each storage layout:

    ``diag``: (y,) for y ∈ S; ``full``: (y, y); ``reduced``: per q, (y, ρ(q)y);
    ``general``: per (r, r'), (ρ(r)y, ρ(r')y).
    """
    support = ctx.hp(node)["support"]
    elements = ctx.group.elements
    if pairing == "diag":
        return pairs_literal([(y,) for y in support])
    if pairing == "full":
        return pairs_literal([(y, y) for y in support])
    if pairing == "reduced":  # one line per q
        return "(\n    " + ",\n    ".join(pairs_literal([(y, elements[q] @ y) for y in support])
                                       for q in range(len(elements))) + ",\n)"
    rows = []
    for r in elements:  # one line per (r, r')
        rows.append("(\n        " + ",\n        ".join(
            pairs_literal([(r @ y, rp @ y) for y in support]) for rp in elements) + ",\n    )")
    return "(\n    " + ",\n    ".join(rows) + ",\n)"


def _linear_op(ctx, node, ins, out_layout, stencil, formula) -> Tuple[List[Op], Value]:
    """Common tail of lift/gconv/conv: the stencil (applied to K and Θ alike), affine, NTK, mask."""
    src = ins[0]
    name = ctx.var(node)
    k, t, lin = f"k_{name}", f"t_{name}", f"lin_{name}"
    n_terms = len(ctx.hp(node)["support"])
    lines = [Assign((lin,), stencil(Ref(src.nngp)))] + _affine_lines(ctx, node, lin, k)
    ntk_lines = []
    if src.ntk is not None:
        # The barrier keeps XLA from fusing Θ's stencil with K's (same slices, and Θ = K after
        # the first weight layer): jaxlib 0.10.2 on CPU miscompiled that fusion in residual
        # networks (self-pair NTK 2-4x off under jit, right without jit or with HLO CSE off;
        # tests/compiler/test_reference_agreement.py, p4-residual-gconv-first and -flatten)
        ntk_lines.append(Assign((f"{t}_lin",), Call("jax.lax.optimization_barrier",
                                                     (stencil(Ref(src.ntk)),))))
    ntk_lines += _ntk_lines(ctx, node, lin, f"{t}_lin" if src.ntk is not None else None, k, t)
    lines += ctx.mask_lines(k, out_layout)
    ntk_lines += ctx.mask_lines(t, out_layout)
    op = Op("stencil", formula, lines, out_layout.entries,
            out_layout.entries * (n_terms + 2), ntk_lines)
    return [op], Value(k, t, out_layout)


@rule("input")
class Input:
    """K0[t,t'] = (1/C) Σ_c f_c(t) f'_c(t'), Θ0 = 0 (only K0[t,t] under (D))."""

    @staticmethod
    def formulas(ctx, node):
        return None

    @staticmethod
    def lower(ctx, node, ins):
        t = ctx.typed.layers.node(node)["out"]
        diag = ctx.uses("D", node)
        layout = Layout("box_diag" if diag else "box_full", t.shape)
        fn = Call("input_diag", (Ref("xa"), Ref("xb"))) if diag else \
            Call("input_full", (Ref("xa"), Ref("xb"), Lit(len(t.shape))))
        formula = ("K0[t,t] = (1/C) Σ_c f_c(t) f'_c(t),  Θ0 = 0" if diag else
                   "K0[t,t'] = (1/C) Σ_c f_c(t) f'_c(t'),  Θ0 = 0")
        # on a masked (hexagonal) domain, input values outside the domain are not signal
        op = Op("input", formula, [Assign(("k_input",), fn)] + ctx.mask_lines("k_input", layout),
                layout.entries, layout.entries * 2 * t.channels)
        return [op], Value("k_input", None, layout)


@rule("lift")
class Lift:
    """K[g,g'] = σ_w²/|S| Σ_{y∈S} K0[g·y, g'·y] + σ_b²;  Θ = K + σ_w²/|S| Σ_y Θ0[...] (= K)."""

    @staticmethod
    def formulas(ctx, node):
        y = S("y")
        body = SumOver(K0[S("g·y"), S("g'·y")], y, S("S"))
        f = Formulas(sympy.Eq(K_NEW[g, gp], SW2 / size("S") * body + SB2),
                     _ntk_eq(body / size("S"), SumOver(THETA[S("g·y"), S("g'·y")], y, S("S"))
                             / size("S"), ctx.parameterization == "standard"),
                     values=_weight_values(ctx, node, len(ctx.hp(node)["support"]), "S"))
        if ctx.uses("R", node):
            f.reduced.append(sympy.Eq(sympy.Function("K̃⁺")(S("t"), S("t'"), S("q")),
                                      SW2 / size("S") * SumOver(K0[S("t+y"), S("t'+ρ(q)y")], y,
                                                                S("S")) + SB2))
        f.notes.append("the input NTK is zero, so Θ = K for the first layer (not 2K − σ_b²)")
        return f

    @staticmethod
    def lower(ctx, node, ins):
        out = ctx.out_layout(node)
        terms = ctx.constant(node, "TERMS", _offset_terms(
            ctx, node, {"group_reduced": "reduced", "group_diag": "diag",
                        "group_general": "general"}[out.kind]))
        if out.kind == "group_reduced":
            fn = lambda a: _stencil_call(ctx, node, a, terms, 2, out.box, "reduced_stencil")
            formula = "K̃⁺[t,t'](q) = σ_w²/|S| Σ_{y∈S} K0[t+y, t'+ρ(q)y] + σ_b²   (R)"
        elif out.kind == "group_diag":
            fn = lambda a: _stencil_call(ctx, node, a, terms, 1, out.box)
            formula = "K̃⁺[t,t](e) = σ_w²/|S| Σ_{y∈S} K0[t+y, t+y] + σ_b²   (R)+(D)"
        else:
            fn = lambda a: _stencil_call(ctx, node, a, terms, 2, out.box, "general_stencil")
            formula = "K⁺[(t,r),(t',r')] = σ_w²/|S| Σ_{y∈S} K0[t+ρ(r)y, t'+ρ(r')y] + σ_b²   (general)"
        return _linear_op(ctx, node, ins, out, fn, formula)


@rule("conv")
class Conv:
    """K⁺[t,t'] = σ_w²/|S| Σ_{y∈S} K[t+y, t'+y] + σ_b²;  Θ⁺ = K⁺ + σ_w²/|S| Σ_y Θ[t+y, t'+y]."""

    @staticmethod
    def formulas(ctx, node):
        y, t, tp = S("y"), S("t"), S("t'")
        body = SumOver(K[S("t+y"), S("t'+y")], y, S("S"))
        return Formulas(sympy.Eq(K_NEW[t, tp], SW2 / size("S") * body + SB2),
                        _ntk_eq(body / size("S"), SumOver(THETA[S("t+y"), S("t'+y")], y, S("S"))
                                / size("S"), ctx.parameterization == "standard"),
                        values=_weight_values(ctx, node, len(ctx.hp(node)["support"]), "S"))

    @staticmethod
    def lower(ctx, node, ins):
        out = ctx.out_layout(node)
        diag = out.kind == "box_diag"
        terms = ctx.constant(node, "TERMS", _offset_terms(ctx, node, "diag" if diag else "full"))
        fn = lambda a: _stencil_call(ctx, node, a, terms, 1 if diag else 2, out.box)
        formula = ("K⁺[t,t] = σ_w²/|S| Σ_{y∈S} K[t+y, t+y] + σ_b²   (D)" if diag else
                   "K⁺[t,t'] = σ_w²/|S| Σ_{y∈S} K[t+y, t'+y] + σ_b²")
        return _linear_op(ctx, node, ins, out, fn, formula)


@rule("gconv")
class GroupConv:
    """K⁺[g,g'] = σ_w²/|S_G| Σ_{h∈S_G} K[gh, g'h] + σ_b²,  S_G = {(y, s): y ∈ S, s ∈ R}."""

    @staticmethod
    def formulas(ctx, node):
        h = S("h")
        body = SumOver(K[S("gh"), S("g'h")], h, S("S_G"))
        hp = ctx.hp(node)
        f = Formulas(sympy.Eq(K_NEW[g, gp], SW2 / size("S_G") * body + SB2),
                     _ntk_eq(body / size("S_G"), SumOver(THETA[S("gh"), S("g'h")], h, S("S_G"))
                             / size("S_G"), ctx.parameterization == "standard"),
                     values=_weight_values(ctx, node, len(hp["support"]) * len(hp["rotations"]),
                                           "S_G"))
        if ctx.uses("R", node):
            f.reduced.append(sympy.Eq(sympy.Function("K̃⁺")(S("t"), S("t'"), S("q")),
                                      SW2 / size("S") * SumOver(
                                          sympy.Function("K̃")(S("t+y"), S("t'+ρ(q)y"), S("q")),
                                          S("y"), S("S")) + SB2))
            f.notes.append(f"the rotational support R ({len(hp['rotations'])} of "
                           f"{ctx.group.order} elements) drops out under (R)")
        return f

    @staticmethod
    def lower(ctx, node, ins):
        out = ctx.out_layout(node)
        if out.kind == "group_reduced":
            terms = ctx.constant(node, "TERMS", _offset_terms(ctx, node, "reduced"))
            fn = lambda a: _stencil_call(ctx, node, a, terms, 2, out.box, "reduced_stencil")
            formula = "K̃⁺[t,t'](q) = σ_w²/|S| Σ_{y∈S} K̃[t+y, t'+ρ(q)y](q) + σ_b²   (R)"
        elif out.kind == "group_diag":
            terms = ctx.constant(node, "TERMS", _offset_terms(ctx, node, "diag"))
            fn = lambda a: _stencil_call(ctx, node, a, terms, 1, out.box)
            formula = "K̃⁺[t,t](e) = σ_w²/|S| Σ_{y∈S} K̃[t+y, t+y](e) + σ_b²   (R)+(D)"
        else:
            terms = ctx.constant(node, "TERMS", _offset_terms(ctx, node, "general"))
            right = ctx.constant(node, "RIGHT_MULT", repr(tuple(
                tuple(int(ctx.group.cayley[r, s]) for r in range(ctx.group.order))
                for s in ctx.hp(node)["rotations"])))
            fn = lambda a: _stencil_call(ctx, node, Call("right_mix", (a, Ref(right), Lit(out.d))),
                                         terms, 2, out.box, "general_stencil")
            formula = ("K⁺[(t,r),(t',r')] = σ_w²/|S||R| Σ_{y∈S,s∈R} K[(t+ρ(r)y, rs), (t'+ρ(r')y, r's)]"
                       " + σ_b²   (general)")
        return _linear_op(ctx, node, ins, out, fn, formula)


@rule("dense")
class Dense:
    """K⁺ = σ_w² K + σ_b²,  Θ⁺ = σ_w² Θ + K⁺ (ntk)  or  σ_w² Θ + n_in K + [b] (standard)."""

    @staticmethod
    def formulas(ctx, node):
        f = Formulas(sympy.Eq(S("K⁺"), SW2 * S("K") + SB2),
                     sympy.Eq(S("Θ⁺"), SW2 * S("Θ") + (S("K⁺") if ctx.parameterization == "ntk"
                                                        else S("n_in") * S("K") + S("[b]"))),
                     values=_weight_values(ctx, node, 1, "1"))
        f.values.pop("|1|")
        return f

    @staticmethod
    def lower(ctx, node, ins):
        out = ctx.out_layout(node)
        src = ins[0]
        name = ctx.var(node)
        k, t = f"k_{name}", f"t_{name}"
        lines = _affine_lines(ctx, node, src.nngp, k)
        ntk_lines = _ntk_lines(ctx, node, src.nngp, src.ntk, k, t)
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
    after = ctx.typed.layers.successors(node)
    return bool(after) and all(ctx.typed.layers.node(n)["kind"] == "nonlinearity" for n in after)


def _map_lines(ctx, node, src: Value, kmap, k: str, t: str,
               suffix: str = "") -> Tuple[List[str], List[str]]:
    """K⁺ = E_Λ[φ(u)φ(v)] and Θ⁺ = K̇ ⊙ Θ of one Gaussian pre-activation ``src``; Λ's variances
    k11, k22 are read from the self pass (``stats``), its covariance k12 is ``src``'s kernel.
    ``suffix`` names the variances of one block (the NTK lines run after all NNGP lines)."""
    lay = src.layout
    i = ctx.stat_index(node, lay)
    k11, k22 = f"k11{suffix}", f"k22{suffix}"
    lines = [
        f"v_a, v_b = (stats_a[{i}], stats_b[{i}]) if stats_a is not None else "
        f"(self_diagonal({lay.kind!r}, {lay.d}, {src.nngp}),) * 2",
        "stats.append(v_a)",
        Assign((k11, k22), Call("variances", (Lit(lay.kind), Lit(lay.d), Ref("v_a"),
                                               Ref("v_b")))),
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
            after = ", ".join(ctx.var(n) for n in ctx.typed.layers.successors(node))
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
        lines += ctx.mask_lines(k, lay)
        names = " + ".join(sorted({p.map.name for _, p in parts}))
        names += f" on each of {len(parts)} blocks" if len(parts) > 1 else ""
        return [Op("elementwise", f"K⁺ = E[φ(u)φ(v)],  Θ⁺ = K̇ ⊙ Θ,  φ = {names}", lines,
                   lay.entries, lay.entries * 40 * len(parts), ntk_lines)], \
            Value(k, t if with_ntk else None, lay)


def _pool(ctx, node, ins, mean: Callable[[Expr], Mean], formula: str,
          flops: Optional[int] = None):
    """K⁺ = mean(K), Θ⁺ = mean(Θ) over the same axes (``mean`` builds the node of one)."""
    src = ins[0]
    out = ctx.out_layout(node)
    name = ctx.var(node)
    k, t = f"k_{name}", f"t_{name}"
    lines = [Assign((k,), mean(Ref(src.nngp)))]
    ntk_lines = [Assign((t,), mean(Ref(src.ntk)))] if src.ntk is not None else []
    flops = src.layout.entries if flops is None else flops
    return [Op("mean", formula, lines, out.entries, flops, ntk_lines)], \
        Value(k, t if src.ntk else None, out)


@rule("group_pool")
class GroupPool:
    """K⁺ = mean_{g,g'} K[g,g'] (and Θ likewise)."""

    @staticmethod
    def formulas(ctx, node):
        return Formulas(sympy.Eq(S("K⁺"), MeanOver(K[g, gp], S("g,g'"), S("G"))),
                        sympy.Eq(S("Θ⁺"), MeanOver(THETA[g, gp], S("g,g'"), S("G"))))

    @staticmethod
    def lower(ctx, node, ins):
        lay = ins[0].layout
        n = ctx.site_count(lay)
        denom = float(n * n * (lay.order if lay.kind == "group_reduced" else lay.order ** 2))
        fn = lambda a: Mean(a, None, denom)  # every axis after the pair axis
        formula = ("K⁺ = mean_{q,t,t'} K̃[t,t'](q)   (R)" if lay.kind == "group_reduced"
                   else "K⁺ = mean_{g,g'} K[g,g']")
        return _pool(ctx, node, ins, fn, formula)


@rule("avg_pool")
class AvgPool:
    """K⁺[h,h'] = mean_{t,t'} K[(t,h),(t',h')]: a global mean over translations; with size=k,
    stride=s a mean over the valid windows W(u) = {s·u + a : a ∈ {0..k−1}^d} of both slots,
    K⁺[(u,h),(u',h')] = (1/k^{2d}) Σ_{a,b} K[(s·u+a, h), (s·u'+b, h')] (docs/math/rules.md)."""

    @staticmethod
    def formulas(ctx, node):
        hp = ctx.hp(node)
        if hp["size"] is not None:
            return _window_formulas(ctx, node, hp["size"], hp["stride"])
        return Formulas(sympy.Eq(S("K⁺[h,h']"), MeanOver(K[S("(t,h)"), S("(t',h')")], S("t,t'"),
                                                         S("X"))),
                        sympy.Eq(S("Θ⁺[h,h']"), MeanOver(THETA[S("(t,h)"), S("(t',h')")],
                                                         S("t,t'"), S("X"))))

    @staticmethod
    def lower(ctx, node, ins):
        lay = ins[0].layout
        d = lay.d
        n = ctx.site_count(lay)
        if lay.kind not in _SITE_AXES:  # (D) is declined before every off_diagonal kind
            raise KernelcError(f"internal error: avg_pool cannot read a {lay.kind} kernel")
        axes = _SITE_AXES[lay.kind](d)
        hp = ctx.hp(node)
        if hp["size"] is not None:
            return _window_pool(ctx, node, ins, axes, hp["size"], hp["stride"])
        fn = lambda a: Mean(a, axes, float(n * n), keepdims=True)
        return _pool(ctx, node, ins, fn, "K⁺ = mean_{t,t'} K[t,t'] (per group index)")


#: The site axes (both slots) of each full layout, counting the leading pair axis.
_SITE_AXES = {
    "box_full": lambda d: tuple(range(1, 1 + 2 * d)),
    "group_reduced": lambda d: tuple(range(2, 2 + 2 * d)),
    "group_general": lambda d: tuple(range(2, 2 + d)) + tuple(range(3 + d, 3 + 2 * d)),
}


def _window_formulas(ctx, node, k: int, s: int) -> Formulas:
    """explain's form of the windowed mean: W = {0..k−1}^d, stride s."""
    out = ctx.typed.layers.node(node)["out"]
    d = len(out.shape)
    a, b = S(f"({s}u+a,h)"), S(f"({s}u'+b,h')")
    f = Formulas(sympy.Eq(K_NEW[S("(u,h)"), S("(u',h')")], MeanOver(K[a, b], S("a,b"), S("W"))),
                 sympy.Eq(THETA_NEW[S("(u,h)"), S("(u',h')")],
                          MeanOver(THETA[a, b], S("a,b"), S("W"))),
                 values={"k": k, "s": s, "|W|": k ** d})
    if out.domain == "group" and ctx.uses("R", node):
        f.reduced.append(sympy.Eq(sympy.Function("K̃⁺")(S("u"), S("u'"), S("q")), MeanOver(
            sympy.Function("K̃")(S(f"{s}u+a"), S(f"{s}u'+b"), S("q")), S("a,b"), S("W"))))
    f.notes.append(f"W = {{0..{k - 1}}}^{d}: valid windows (no padding), "
                   f"floor((n − {k})/{s}) + 1 outputs per axis of n sites; translations only, "
                   "the group index is kept")
    return f


def _window_flops(pair_shape, axes, k: int, s: int) -> int:
    """FLOPs of window_mean per pair: k − 1 additions per entry of each axis pass (the axes are
    reduced one after the other), then one division per output entry."""
    shape = list(pair_shape)
    flops = 0
    for axis in axes:
        shape[axis] = (shape[axis] - k) // s + 1
        flops += (k - 1) * math.prod(shape)
    return flops + math.prod(shape)


def _window_pool(ctx, node, ins, axes, k: int, s: int):
    lay = ins[0].layout
    d = lay.d
    scale = f"(1/{k}^{2 * d}) Σ_{{a,b∈{{0..{k - 1}}}^{d}}}"
    formula = {
        "box_full": f"K⁺[u,u'] = {scale} K[{s}u+a, {s}u'+b]",
        "group_reduced": f"K̃⁺[u,u'](q) = {scale} K̃[{s}u+a, {s}u'+b](q)   (R)",
        "group_general": f"K⁺[(u,r),(u',r')] = {scale} K[({s}u+a, r), ({s}u'+b, r')]   (general)",
    }[lay.kind] + f"   (windows of {k}, stride {s})"
    fn = lambda a: Mean(a, axes, window=(k, s))
    flops = _window_flops(lay.pair_shape, [a - 1 for a in axes], k, s)
    return _pool(ctx, node, ins, fn, formula, flops)


@rule("flatten")
class Flatten:
    """K⁺ = mean_g K[g,g]: a dense layer on flattened features sees only same-position pairs."""

    @staticmethod
    def formulas(ctx, node):
        return Formulas(sympy.Eq(S("K⁺"), sympy.Function("mean_g")(K[g, g])),
                        sympy.Eq(S("Θ⁺"), sympy.Function("mean_g")(THETA[g, g])))

    @staticmethod
    def lower(ctx, node, ins):
        lay = ins[0].layout
        n = ctx.site_count(lay)
        denom = float(n * (lay.order if lay.kind == "group_general" else 1))
        src, name = ins[0], ctx.var(node)
        out = ctx.out_layout(node)

        def mean_of_diagonal(kernel: str, target: str):  # K[g,g] for every g, then the mean
            diagonal = f"diag_{target}"
            return [Assign((diagonal,), Call("self_diagonal", (Lit(lay.kind), Lit(lay.d),
                                                                Ref(kernel)))),
                    Assign((target,), Mean(Ref(diagonal), None, denom))]
        k, t = f"k_{name}", f"t_{name}"
        lines = mean_of_diagonal(src.nngp, k)
        ntk_lines = mean_of_diagonal(src.ntk, t) if src.ntk is not None else []
        return [Op("mean", "K⁺ = mean_g K[g,g]", lines, out.entries, lay.entries, ntk_lines)], \
            Value(k, t if src.ntk else None, out)


def _weighted_sum(weights, names) -> Expr:
    """Σ_i w_i · name_i (a weight of 1 is left out; one term is that term)."""
    terms = tuple(Affine(Lit(w), Ref(v)) if w != 1.0 else Ref(v) for w, v in zip(weights, names))
    return terms[0] if len(terms) == 1 else SumOf(terms)


def _combine(ctx, node, ins, weights, formula):
    # an entrywise combination keeps its branches' common layout (whatever the family's
    # layouts are: so3_reduced for SO(3) under (R), group_reduced on a lattice)
    out = ins[0].layout
    if any(v.layout != out for v in ins[1:]):
        raise KernelcError(f"internal error: the branches of '{ctx.typed.layers.node(node)['name']}'"
                           f" have different layouts ({', '.join(v.layout.kind for v in ins)})")
    name = ctx.var(node)
    k, t = f"k_{name}", f"t_{name}"
    lines = [Assign((k,), _weighted_sum(weights, [v.nngp for v in ins]))]
    with_ntk = [(w, v.ntk) for w, v in zip(weights, ins) if v.ntk is not None]
    ntk_lines = [Assign((t,), _weighted_sum(*zip(*with_ntk)))] if with_ntk else []
    return [Op("combine", formula, lines, out.entries, out.entries * len(ins), ntk_lines)], \
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
        widths = [ctx.typed.layers.node(i)["out"].channels for i in ctx.typed.layers.inputs(node)]
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
