"""The kernel rules of the steerable family (docs/math/steerable.md): ``lift`` and ``gconv``
with filters ψ(y) = Σ_k w_k B_k(y) in a basis {B_k} whose span is closed under the group's
rotations, lowered to mixed stencils (:class:`~kernelc.families.steerable.plan.MixedStencil`).
The input, the poolings and flatten are the lattice family's rules: the signals and storage
layouts are the lattice's.

With weights w iid N(0, 1) the filters of orientations r and r' are correlated through
P(a, b) = Σ_k B_k(a) B_k(b), so

    lift:  K⁺[(t,r),(t',r')] = σ_w²/|B| Σ_{y,y'∈S} P(R_r⁻¹y, R_r'⁻¹y') K0[t+y, t'+y'] + σ_b²
    gconv: K⁺[(t,r),(t',r')] = σ_w²/(|B||H|) Σ_{u∈H} Σ_{y,y'∈S} P(R_r⁻¹y, R_r'⁻¹y')
                                   K[(t+y, ru), (t'+y', r'u)] + σ_b²

and Θ⁺ = K⁺ + σ_w² (the same stencil of Θ) (NTK parameterisation).
"""
from __future__ import annotations

import sympy

from ...ir.plan import pad_widths
from ...rules.formulas import K, K0, K_NEW, SB2, SW2, THETA, THETA_NEW, S, SumOver, g, gp, size
from ...rules.layers import Formulas, rule, weight_values
from ...runtime.steerable import stencil_terms
from ..lattice import rules as lattice_rules
from .family import STEERABLE
from .plan import MixedStencil

P = sympy.Function("P")


def _ntk_eq(term, theta_sum, standard: bool):
    if standard:
        return sympy.Eq(THETA_NEW[g, gp], SW2 * theta_sum + S("n_in") * term + S("[b]"))
    return sympy.Eq(THETA_NEW[g, gp], K_NEW[g, gp] + SW2 * theta_sum)


def _terms(ctx, node) -> int:
    """The (y_i, y_j) terms the node's mixed stencil computes per entry (its cost)."""
    hp, group = ctx.hp(node), ctx.group
    return stencil_terms((group.n, group.reflections, hp["basis"], hp["size"],
                          hp["max_frequency"]))


def _mixed_stencil(ctx, node, out, right_mult=None):
    """The node's mixed stencil in layout ``out``, as a function of the kernel it reads (K and Θ
    alike)."""
    hp, group = ctx.hp(node), ctx.group
    return lambda src: MixedStencil(
        src, ctx.var(node).upper(), group.n, group.reflections, hp["basis"], hp["size"],
        hp["max_frequency"], right_mult, tuple(pad_widths(hp["support"])), tuple(out.box),
        hp["padding"], out, node)


def _formulas(ctx, node, kernel, gconv: bool) -> Formulas:
    y2 = S("y,y'")
    hp = ctx.hp(node)
    if gconv:
        arg = lambda k: SumOver(SumOver(P(S("R_r⁻¹y"), S("R_r'⁻¹y'")) * k[S("(t+y,ru)"),  # noqa
                                                                             S("(t'+y',r'u)")],
                                        y2, S("S²")), S("u"), S("H"))
        scale = size("B") * size("H")
    else:
        arg = lambda k: SumOver(P(S("R_r⁻¹y"), S("R_r'⁻¹y'")) * k[S("t+y"), S("t'+y'")],  # noqa
                                y2, S("S²"))
        scale = size("B")
    f = Formulas(sympy.Eq(K_NEW[g, gp], SW2 / scale * arg(kernel) + SB2),
                 _ntk_eq(arg(kernel) / scale, arg(THETA if gconv else K0) / scale,
                         ctx.parameterization == "standard"),
                 values=weight_values(ctx, node, hp["weights_per_channel"], "B||H" if gconv
                                      else "B"))
    f.values["(y,y') terms per entry"] = _terms(ctx, node)  # the stencil's cost
    if ctx.uses("R", node):
        inner = (sympy.Function("K̃")(S("t+y"), S("t'+y'"), S("q")) if gconv
                 else K0[S("t+y"), S("t'+y'")])
        f.reduced.append(sympy.Eq(sympy.Function("K̃⁺")(S("t"), S("t'"), S("q")),
                                  SW2 / size("B") * SumOver(P(S("y"), S("R_q⁻¹y'")) * inner, y2,
                                                            S("S²")) + SB2))
        if gconv:
            f.notes.append("the sum over u ∈ H drops out under (R): every term is K̃(r'r⁻¹)")
    f.notes.append(f"P(a,b) = Σ_k B_k(a)B_k(b) over the {hp['basis_size']} functions of the "
                   f"{hp['basis']} basis ({hp['size']}×{hp['size']}); P(Ra,Rb) = P(a,b)")
    if not gconv:
        f.notes.append("the input NTK is zero, so Θ = K for the first layer")
    return f


@rule("lift", family=STEERABLE)
class Lift:
    """K⁺[(t,r),(t',r')] = σ_w²/|B| Σ_{y,y'} P(R_r⁻¹y, R_r'⁻¹y') K0[t+y, t'+y'] + σ_b²."""

    @staticmethod
    def formulas(ctx, node):
        return _formulas(ctx, node, K0, gconv=False)

    @staticmethod
    def lower(ctx, node, ins):
        out = ctx.out_layout(node)
        return lattice_rules.linear_op(ctx, node, ins, out, _mixed_stencil(ctx, node, out), {
            "group_general": "K⁺[(t,r),(t',r')] = σ_w²/|B| Σ_{y,y'∈S} P(R_r⁻¹y, R_r'⁻¹y') "
                             "K0[t+y, t'+y'] + σ_b²   (general)",
            "group_reduced": "K̃⁺[t,t'](q) = σ_w²/|B| Σ_{y,y'∈S} P(y, R_q⁻¹y') K0[t+y, t'+y'] "
                             "+ σ_b²   (R)"}, n_terms=_terms(ctx, node))


@rule("gconv", family=STEERABLE)
class GroupConv:
    """K⁺[(t,r),(t',r')] = σ_w²/(|B||H|) Σ_u Σ_{y,y'} P(R_r⁻¹y, R_r'⁻¹y')
    K[(t+y, ru), (t'+y', r'u)] + σ_b²."""

    @staticmethod
    def formulas(ctx, node):
        return _formulas(ctx, node, K, gconv=True)

    @staticmethod
    def lower(ctx, node, ins):
        out = ctx.out_layout(node)
        cayley = ctx.group.cayley
        order = ctx.group.order
        right_mult = tuple(tuple(int(cayley[r, u]) for r in range(order)) for u in range(order))
        return lattice_rules.linear_op(ctx, node, ins, out,
                                       _mixed_stencil(ctx, node, out, right_mult), {
            "group_general": "K⁺[(t,r),(t',r')] = σ_w²/(|B||H|) Σ_{u∈H} Σ_{y,y'∈S} "
                             "P(R_r⁻¹y, R_r'⁻¹y') K[(t+y,ru), (t'+y',r'u)] + σ_b²   (general)",
            "group_reduced": "K̃⁺[t,t'](q) = σ_w²/|B| Σ_{y,y'∈S} P(y, R_q⁻¹y') K̃[t+y, t'+y'](q) "
                             "+ σ_b²   (R)"}, n_terms=_terms(ctx, node))


# The input kernel, the poolings and flatten: the lattice family's rules (same signals, same
# layouts).
rule("input", family=STEERABLE)(lattice_rules.Input)
rule("group_pool", family=STEERABLE)(lattice_rules.GroupPool)
rule("avg_pool", family=STEERABLE)(lattice_rules.AvgPool)
rule("flatten", family=STEERABLE)(lattice_rules.Flatten)
