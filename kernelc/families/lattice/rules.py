"""The kernel rules of the lattice family (docs/math/rules.md): the input, filter sums over a
support S ⊂ Z^d (``lift``, ``conv``, ``gconv``) lowered to stencils, and the means over
positions (``group_pool``, ``avg_pool``, ``flatten``).

Every rule lowers its layer in the general layout (``box_full`` on the box, ``group_general``
on G; :meth:`Context.out_layout <kernelc.compiler.derive.Context.out_layout>`), through the
layout-carrying nodes of :mod:`kernelc.families.lattice.plan`; the identity passes move them to
``group_reduced`` (R) and ``box_diag``/``group_diag`` (D) (the rewrites are registered in
:mod:`kernelc.families.lattice.identities`). The runtime helpers named in the emitted code live
in :mod:`kernelc.runtime.stencils` (stencils, window means) and :mod:`kernelc.runtime.layouts`
(the input kernels, self-diagonals).
"""
from __future__ import annotations

import math
from typing import List, Optional, Tuple

import sympy

from ...errors import KernelcError
from ...ir.plan import Assign, Call, Layout, Op, Ref, SelfDiagonal, Value, pad_widths
from ...rules.formulas import (K, K0, K_NEW, SB2, SW2, THETA, THETA_NEW, MeanOver, S, SumOver, g,
                               gp, size)
from ...rules.layers import Formulas, affine_lines, ntk_update_lines, rule, weight_values
from .family import LATTICE
from .plan import SITE_AXES, InputKernel, PoolMean, Stencil


def _ntk_eq(new_k_term, theta_sum, standard: bool):
    if standard:
        return sympy.Eq(THETA_NEW[g, gp], SW2 * theta_sum + S("n_in") * (new_k_term) + S("[b]"))
    return sympy.Eq(THETA_NEW[g, gp], K_NEW[g, gp] + SW2 * theta_sum)


def _stencil(ctx, node, out: Layout, right_mult=None):
    """The node's filter sum (a :class:`~kernelc.families.lattice.plan.Stencil` in ``out``)
    as a function of the kernel it reads."""
    hp = ctx.hp(node)
    return lambda src: Stencil.of(src, ctx.var(node).upper(), hp["support"], ctx.group.elements,
                                  right_mult, pad_widths(hp["support"]), out.box, hp["padding"],
                                  out, node)


def linear_op(ctx, node, ins, out_layout, stencil, formulas,
              n_terms: Optional[int] = None) -> Tuple[List[Op], Value]:
    """Common tail of a filter-sum layer (the lattice's lift/gconv/conv, the steerable family's
    lift/gconv): the stencil (applied to K and Θ alike), affine, NTK, mask. ``formulas``: the
    op's formula in each layout it may be stored in; ``n_terms``: the stencil's terms per entry
    (default |S|), for the op's cost."""
    src = ins[0]
    name = ctx.var(node)
    k, t, lin = f"k_{name}", f"t_{name}", f"lin_{name}"
    n_terms = len(ctx.hp(node)["support"]) if n_terms is None else n_terms
    lines = [Assign((lin,), stencil(Ref(src.nngp)))] + affine_lines(ctx, node, lin, k)
    ntk_lines = []
    if src.ntk is not None:
        # The barrier keeps XLA from fusing Θ's stencil with K's (same slices, and Θ = K after
        # the first weight layer): jaxlib 0.10.2 on CPU miscompiled that fusion in residual
        # networks (self-pair NTK 2-4x off under jit, right without jit or with HLO CSE off;
        # tests/compiler/test_reference_agreement.py, p4-residual-gconv-first and -flatten)
        ntk_lines.append(Assign((f"{t}_lin",), Call("jax.lax.optimization_barrier",
                                                     (stencil(Ref(src.ntk)),))))
    ntk_lines += ntk_update_lines(ctx, node, lin, f"{t}_lin" if src.ntk is not None else None, k, t)
    lines += ctx.mask_lines(k, out_layout, node)
    ntk_lines += ctx.mask_lines(t, out_layout, node)
    op = Op("stencil", formulas[out_layout.kind], lines, out_layout.entries,
            out_layout.entries * (n_terms + 2), ntk_lines, layout=out_layout, owner=node,
            formulas=formulas)
    return [op], Value(k, t, out_layout)


@rule("input", family=LATTICE)
class Input:
    """K0[t,t'] = (1/C) Σ_c f_c(t) f'_c(t'), Θ0 = 0 (only K0[t,t] under (D))."""

    @staticmethod
    def formulas(ctx, node):
        return None

    @staticmethod
    def lower(ctx, node, ins):
        t = ctx.typed.node(node).out
        layout = ctx.out_layout(node)
        formulas = {"box_full": "K0[t,t'] = (1/C) Σ_c f_c(t) f'_c(t'),  Θ0 = 0",
                    "box_diag": "K0[t,t] = (1/C) Σ_c f_c(t) f'_c(t),  Θ0 = 0"}
        # on a masked (hexagonal) domain, input values outside the domain are not signal
        op = Op("input", formulas[layout.kind],
                [Assign(("k_input",), InputKernel(layout, node))]
                + ctx.mask_lines("k_input", layout, node),
                layout.entries, layout.entries * 2 * t.channels, layout=layout, owner=node,
                formulas=formulas)
        return [op], Value("k_input", None, layout)


@rule("lift", family=LATTICE)
class Lift:
    """K[g,g'] = σ_w²/|S| Σ_{y∈S} K0[g·y, g'·y] + σ_b²;  Θ = K + σ_w²/|S| Σ_y Θ0[...] (= K)."""

    @staticmethod
    def formulas(ctx, node):
        y = S("y")
        body = SumOver(K0[S("g·y"), S("g'·y")], y, S("S"))
        f = Formulas(sympy.Eq(K_NEW[g, gp], SW2 / size("S") * body + SB2),
                     _ntk_eq(body / size("S"), SumOver(THETA[S("g·y"), S("g'·y")], y, S("S"))
                             / size("S"), ctx.parameterization == "standard"),
                     values=weight_values(ctx, node, len(ctx.hp(node)["support"]), "S"))
        if ctx.uses("R", node):
            f.reduced.append(sympy.Eq(sympy.Function("K̃⁺")(S("t"), S("t'"), S("q")),
                                      SW2 / size("S") * SumOver(K0[S("t+y"), S("t'+ρ(q)y")], y,
                                                                S("S")) + SB2))
        f.notes.append("the input NTK is zero, so Θ = K for the first layer (not 2K − σ_b²)")
        return f

    @staticmethod
    def lower(ctx, node, ins):
        out = ctx.out_layout(node)
        return linear_op(ctx, node, ins, out, _stencil(ctx, node, out), {
            "group_general": "K⁺[(t,r),(t',r')] = σ_w²/|S| Σ_{y∈S} K0[t+ρ(r)y, t'+ρ(r')y] + σ_b²"
                             "   (general)",
            "group_reduced": "K̃⁺[t,t'](q) = σ_w²/|S| Σ_{y∈S} K0[t+y, t'+ρ(q)y] + σ_b²   (R)",
            "group_diag": "K̃⁺[t,t](e) = σ_w²/|S| Σ_{y∈S} K0[t+y, t+y] + σ_b²   (R)+(D)"})


@rule("conv", family=LATTICE)
class Conv:
    """K⁺[t,t'] = σ_w²/|S| Σ_{y∈S} K[t+y, t'+y] + σ_b²;  Θ⁺ = K⁺ + σ_w²/|S| Σ_y Θ[t+y, t'+y]."""

    @staticmethod
    def formulas(ctx, node):
        y, t, tp = S("y"), S("t"), S("t'")
        body = SumOver(K[S("t+y"), S("t'+y")], y, S("S"))
        return Formulas(sympy.Eq(K_NEW[t, tp], SW2 / size("S") * body + SB2),
                        _ntk_eq(body / size("S"), SumOver(THETA[S("t+y"), S("t'+y")], y, S("S"))
                                / size("S"), ctx.parameterization == "standard"),
                        values=weight_values(ctx, node, len(ctx.hp(node)["support"]), "S"))

    @staticmethod
    def lower(ctx, node, ins):
        out = ctx.out_layout(node)
        return linear_op(ctx, node, ins, out, _stencil(ctx, node, out), {
            "box_full": "K⁺[t,t'] = σ_w²/|S| Σ_{y∈S} K[t+y, t'+y] + σ_b²",
            "box_diag": "K⁺[t,t] = σ_w²/|S| Σ_{y∈S} K[t+y, t+y] + σ_b²   (D)"})


@rule("gconv", family=LATTICE)
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
                     values=weight_values(ctx, node, len(hp["support"]) * len(hp["rotations"]),
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
        cayley = ctx.group.cayley
        right_mult = [[int(cayley[r, s]) for r in range(ctx.group.order)]
                      for s in ctx.hp(node)["rotations"]]
        return linear_op(ctx, node, ins, out, _stencil(ctx, node, out, right_mult), {
            "group_general": "K⁺[(t,r),(t',r')] = σ_w²/|S||R| Σ_{y∈S,s∈R} "
                             "K[(t+ρ(r)y, rs), (t'+ρ(r')y, r's)] + σ_b²   (general)",
            "group_reduced": "K̃⁺[t,t'](q) = σ_w²/|S| Σ_{y∈S} K̃[t+y, t'+ρ(q)y](q) + σ_b²   (R)",
            "group_diag": "K̃⁺[t,t](e) = σ_w²/|S| Σ_{y∈S} K̃[t+y, t+y](e) + σ_b²   (R)+(D)"})


def _pool(ctx, node, ins, over: str, formulas, flops: Optional[int] = None, window=None):
    """K⁺ = mean(K), Θ⁺ = mean(Θ) over the same positions (a
    :class:`~kernelc.families.lattice.plan.PoolMean` ``over`` of the source's layout);
    ``formulas``: the op's formula for each layout of the source."""
    src = ins[0]
    lay = src.layout
    out = ctx.out_layout(node)
    name = ctx.var(node)
    k, t = f"k_{name}", f"t_{name}"

    def mean(a: str) -> PoolMean:
        return PoolMean(Ref(a), over, ctx.site_count(lay), lay, src.node, window)
    lines = [Assign((k,), mean(src.nngp))]
    ntk_lines = [Assign((t,), mean(src.ntk))] if src.ntk is not None else []
    flops = lay.entries if flops is None else flops
    return [Op("mean", formulas[lay.kind], lines, out.entries, flops, ntk_lines, layout=out,
               owner=node, source_layout=lay, source=src.node, formulas=formulas)], \
        Value(k, t if src.ntk else None, out)


@rule("group_pool", family=LATTICE)
class GroupPool:
    """K⁺ = mean_{g,g'} K[g,g'] (and Θ likewise)."""

    @staticmethod
    def formulas(ctx, node):
        return Formulas(sympy.Eq(S("K⁺"), MeanOver(K[g, gp], S("g,g'"), S("G"))),
                        sympy.Eq(S("Θ⁺"), MeanOver(THETA[g, gp], S("g,g'"), S("G"))))

    @staticmethod
    def lower(ctx, node, ins):
        return _pool(ctx, node, ins, "all", {
            "group_general": "K⁺ = mean_{g,g'} K[g,g']",
            "group_reduced": "K⁺ = mean_{q,t,t'} K̃[t,t'](q)   (R)"})


@rule("avg_pool", family=LATTICE)
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
        if lay.kind not in SITE_AXES:  # (D) is declined before every off_diagonal kind
            raise KernelcError(f"internal error: avg_pool cannot read a {lay.kind} kernel")
        hp = ctx.hp(node)
        if hp["size"] is not None:
            return _window_pool(ctx, node, ins, hp["size"], hp["stride"])
        formula = "K⁺ = mean_{t,t'} K[t,t'] (per group index)"
        return _pool(ctx, node, ins, "sites", dict.fromkeys(SITE_AXES, formula))


def _window_formulas(ctx, node, k: int, s: int) -> Formulas:
    """explain's form of the windowed mean: W = {0..k−1}^d, stride s."""
    out = ctx.typed.node(node).out
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


def _window_pool(ctx, node, ins, k: int, s: int):
    lay = ins[0].layout
    d = lay.d
    scale = f"(1/{k}^{2 * d}) Σ_{{a,b∈{{0..{k - 1}}}^{d}}}"
    windows = f"   (windows of {k}, stride {s})"
    formulas = {
        "box_full": f"K⁺[u,u'] = {scale} K[{s}u+a, {s}u'+b]" + windows,
        "group_reduced": f"K̃⁺[u,u'](q) = {scale} K̃[{s}u+a, {s}u'+b](q)   (R)" + windows,
        "group_general": f"K⁺[(u,r),(u',r')] = {scale} K[({s}u+a, r), ({s}u'+b, r')]   "
                         "(general)" + windows,
    }
    flops = _window_flops(lay.pair_shape, [a - 1 for a in SITE_AXES[lay.kind](d)], k, s)
    return _pool(ctx, node, ins, "window", formulas, flops, window=(k, s))


@rule("flatten", family=LATTICE)
class Flatten:
    """K⁺ = mean_g K[g,g]: a dense layer on flattened features sees only same-position pairs."""

    @staticmethod
    def formulas(ctx, node):
        return Formulas(sympy.Eq(S("K⁺"), sympy.Function("mean_g")(K[g, g])),
                        sympy.Eq(S("Θ⁺"), sympy.Function("mean_g")(THETA[g, g])))

    @staticmethod
    def lower(ctx, node, ins):
        src, name = ins[0], ctx.var(node)
        lay = src.layout
        out = ctx.out_layout(node)

        def mean_of_diagonal(kernel: str, target: str):  # K[g,g] for every g, then the mean
            diagonal = f"diag_{target}"
            return [Assign((diagonal,), SelfDiagonal(Ref(kernel), lay, src.node)),
                    Assign((target,), PoolMean(Ref(diagonal), "diagonal", ctx.site_count(lay),
                                               lay, src.node))]
        k, t = f"k_{name}", f"t_{name}"
        lines = mean_of_diagonal(src.nngp, k)
        ntk_lines = mean_of_diagonal(src.ntk, t) if src.ntk is not None else []
        formula = "K⁺ = mean_g K[g,g]"
        return [Op("mean", formula, lines, out.entries, lay.entries, ntk_lines, layout=out,
                   owner=node, source_layout=lay, source=src.node)], \
            Value(k, t if src.ntk else None, out)
