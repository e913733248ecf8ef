"""The layer rules of the SO(3) family (docs/math/so3.md): the same recursions as the lattice rules
(docs/math/rules.md) with Haar integrals in place of filter sums, lowered through harmonic analysis.

Two storage layouts (:mod:`kernelc.ir.plan`): ``so3_general``, the K[g_i, g_j] of every pair
of grid points, in which the rules lower, and ``so3_reduced`` — identity (R), one function
K̃(q) = K[e, q] on the SO(3) grid per pair, plus its value at e — to which the (R) rewrite moves
the plan's nodes (:mod:`kernelc.families.so3.plan`, :mod:`kernelc.families.so3.identities`). The runtime helpers
named in the emitted lines live in :mod:`kernelc.runtime.so3`. The readout, the branch structure
(fan-out, empty branch, sum, concat: entrywise on two kernels of one layout) and nonlinearities
(pointwise on the grid; under (R) the runtime's self_diagonal/variances read the constant
variance K̃(e) of so3_reduced kernels) are the common rules of :mod:`kernelc.rules.layers`.
"""
from __future__ import annotations

import dataclasses

import sympy

from ...errors import ShapeError
from ...ir.plan import Affine, Assign, Expr, Layout, Num, Op, Ref, Value
from ...rules.formulas import K, K0, SB2, SW2, THETA, THETA_NEW, K_NEW, S, g, gp
from ...rules.layers import Formulas, bias_param, rule, weight_param
from .family import SO3_FAMILY
from .plan import SO3Bias, SO3Lift, SO3Mean, SO3Project, SO3Sample


class Integral(sympy.Function):
    """Integral(body, variable, domain): ∫_{domain} body d(variable), normalised measure."""

    nargs = 3

    def _sympystr(self, printer):
        body, var, dom = self.args
        return f"∫_{printer._print(dom)} {printer._print(body)} d{printer._print(var)}"

    def _latex(self, printer):
        body, var, dom = self.args
        return (rf"\int_{{{printer._print(dom)}}} {printer._print(body)}\, "
                rf"\mathrm{{d}}{printer._print(var)}")


def _weight_layer(ctx, node, lin_expr, out: Layout, formulas, costs, src_ntk=None,
                  project=None):
    """lin, coef = σ_w² lin + σ_b², K⁺ = sample(coef); Θ⁺ = sample(σ_w² Π Θ + coef) (or
    Θ⁺ = K⁺ after a lift): the same statements in both layouts (:mod:`.plan`)."""
    hp = ctx.hp(node)
    grid = hp["grid"]
    name = ctx.var(node)
    k, t, lin, coef = f"k_{name}", f"t_{name}", f"lin_{name}", f"coef_{name}"
    # σ_w², σ_b² as arguments of _propagate (params); a layer without bias adds a zero
    w2, b2 = weight_param(ctx, node, "W_std"), bias_param(ctx, node) or Num(0.0)
    lines = [Assign((lin,), lin_expr),
             Assign((coef,), Affine(w2, Ref(lin), SO3Bias(Ref(lin), b2, out, node))),
             Assign((k,), SO3Sample(Ref(coef), grid, out, node))]
    if src_ntk is None:
        ntk = [Assign((t,), Ref(k))]  # the input NTK is zero: Θ = K
    else:
        ntk = [Assign((f"coef_{t}",), Affine(w2, project(Ref(src_ntk)), Ref(coef))),
               Assign((t,), SO3Sample(Ref(f"coef_{t}"), grid, out, node))]
    entries, flops = costs[out.kind]
    return [Op("stencil", formulas[out.kind], lines, entries, flops, ntk, layout=out,
               owner=node, formulas=formulas, costs=costs)], Value(k, t, out)


def _grid_note(f, hp):
    """``explain``'s line on the layer's grid: its value, why, its error estimate and its cost
    (:class:`kernelc.families.so3.grid.GridChoice`)."""
    choice = hp.get("grid_choice")
    if choice is not None:
        f.notes.append(choice.note())


def _check_parameterization(ctx, node):
    if ctx.parameterization != "ntk":
        raise ShapeError("the standard parameterization is not supported for SO(3) networks yet "
                         "(the fan-in of a full-sphere filter is its band-limited dimension)",
                         ctx.typed.node(node).span)


@rule("input", family=SO3_FAMILY)
class SphereInput:
    """a_cℓm = ∫ f_c conj(Y_ℓm) dΩ: the inputs' harmonic coefficients. K0[x,x'] = (1/C) Σ_c
    f_c(x) f'_c(x') is never formed; the lift reads it through the coefficients."""

    @staticmethod
    def formulas(ctx, node):
        return None

    @staticmethod
    def lower(ctx, node, ins):
        t = ctx.typed.node(node).out
        layout = ctx.out_layout(node)
        band = t.band
        line = (f"k_input = (sphere_coefficients(xa, {band}), "
                f"sphere_coefficients(xb, {band}))")
        flops = 2 * t.sites * t.channels * (5 * band + 8 * band * band)
        return [Op("input", "a_cℓm = ∫ f_c conj(Y_ℓm) dΩ  (DH quadrature, exact for band "
                   f"< {band})", [line], layout.entries, flops)], Value("k_input", None, layout)


@rule("lift", family=SO3_FAMILY)
class SphereLift:
    """K⁺[g,g'] = σ_w² ∫_{S²} K0[g·y, g'·y] dy + σ_b²,  Θ⁺ = K⁺ (the input NTK is zero).
    Under (R): K̃⁺(q) = σ_w² (1/C) Σ_c ∫ f_c(y) f'_c(q·y) dy + σ_b², with Wigner coefficients
    K̂^ℓ_mn = σ_w²/(4πC) Σ_c conj(b_cℓm) a_cℓn (+ σ_b² at ℓ = 0)."""

    @staticmethod
    def formulas(ctx, node):
        hp = ctx.hp(node)
        body = Integral(K0[S("g·y"), S("g'·y")], S("y"), S("S²"))
        f = Formulas(sympy.Eq(K_NEW[g, gp], SW2 * body + SB2), sympy.Eq(THETA_NEW[g, gp],
                                                                         K_NEW[g, gp]),
                     values={"σ_w²": hp["W_std"] ** 2, "σ_b²": hp["b_std"] ** 2,
                             "L": hp["bandlimit"], "B": hp["grid"]})
        if ctx.uses("R", node):
            f.reduced.append(sympy.Eq(sympy.Function("K̃⁺")(S("q")), SW2 * Integral(
                K0[S("y"), S("q·y")], S("y"), S("S²")) + SB2))
            f.reduced.append(sympy.Eq(S("K̂⁺^ℓ_mn"), SW2 / (4 * sympy.pi * S("C")) * sympy.Sum(
                S("conj(b_cℓm)·a_cℓn"), (S("c"), 1, S("C"))) + SB2 * S("δ_ℓ0")))
        f.notes.append("full-sphere filter of band limit L: white noise within the band, so the "
                       "lift is the spherical cross-correlation of f and f'")
        f.notes.append("the input NTK is zero, so Θ = K for the first layer (not 2K − σ_b²)")
        _grid_note(f, hp)
        return f

    @staticmethod
    def lower(ctx, node, ins):
        _check_parameterization(ctx, node)
        hp = ctx.hp(node)
        out = ctx.out_layout(node)
        band, grid = hp["bandlimit"], hp["grid"]
        c = ctx.typed.input_type.channels
        reduced = dataclasses.replace(out, kind="so3_reduced")
        costs = {"so3_reduced": (reduced.entries, c * band ** 3 * 8 + reduced.entries * 40),
                 "so3_general": (out.entries, out.entries * c * band * band * 8)}
        formulas = {
            "so3_reduced": "K̃⁺(q) = σ_w²/C Σ_c ∫ f_c(y) f'_c(q·y) dy + σ_b²  (R: Wigner "
                           "coefficients, then the SO(3) grid)",
            "so3_general": "K⁺[g,g'] = σ_w² ∫ K0[g·y, g'·y] dy + σ_b²  (general: every grid "
                           "pair)"}
        lift = SO3Lift(Ref(ins[0].nngp), band, grid, out, node)
        return _weight_layer(ctx, node, lift, out, formulas, costs)


@rule("gconv", family=SO3_FAMILY)
class SO3Conv:
    """K⁺[g,g'] = σ_w² ∫∫ K[u,u'] P_L(u⁻¹ g g'⁻¹ u') du du' + σ_b², with P_L = Σ_{ℓ<L} (2ℓ+1) χ_ℓ
    the covariance of a full-group filter of band limit L; Θ⁺ = K⁺ + σ_w² (same map of Θ).
    Under (R) (K[u,u'] = K̃(u'u⁻¹), P_L a class function) it is the band-limit projection
    K̃⁺ = σ_w² Π_L K̃ + σ_b²: the identity up to truncation of the degrees ℓ ≥ L."""

    @staticmethod
    def formulas(ctx, node):
        hp = ctx.hp(node)
        body = Integral(K[S("g·h"), S("g'·h")], S("h"), S("SO(3)"))
        theta = Integral(THETA[S("g·h"), S("g'·h")], S("h"), S("SO(3)"))
        f = Formulas(sympy.Eq(K_NEW[g, gp], SW2 * body + SB2),
                     sympy.Eq(THETA_NEW[g, gp], K_NEW[g, gp] + SW2 * theta),
                     values={"σ_w²": hp["W_std"] ** 2, "σ_b²": hp["b_std"] ** 2,
                             "L": hp["bandlimit"], "B": hp["grid"]})
        f.notes.append("with a band-limited filter, h-integrals act through the projection "
                       "kernel P_L(u⁻¹gg'⁻¹u') = Σ_{ℓ<L}(2ℓ+1) χ_ℓ")
        if ctx.uses("R", node):
            f.reduced.append(sympy.Eq(sympy.Function("K̃⁺")(S("q")),
                                      SW2 * sympy.Function("Π_L")(sympy.Function("K̃")(S("q")))
                                      + SB2))
            f.notes.append("(R): a full-group convolution is the identity on K̃ up to the "
                           "band-limit projection Π_L (SO(3) FFT, truncate, inverse FFT)")
        _grid_note(f, hp)
        return f

    @staticmethod
    def lower(ctx, node, ins):
        _check_parameterization(ctx, node)
        hp = ctx.hp(node)
        src = ins[0]
        out = ctx.out_layout(node)
        band, grid = hp["bandlimit"], hp["grid"]
        grid_in = src.layout.box[0] // 2
        reduced = dataclasses.replace(out, kind="so3_reduced")
        costs = {"so3_reduced": (reduced.entries, 2 * reduced.entries * (band * 4 + 20)),
                 "so3_general": (out.entries, out.entries * band ** 3 * 8)}
        formulas = {
            "so3_reduced": "K̃⁺ = σ_w² Π_L K̃ + σ_b²  (R: SO(3) FFT, truncate to ℓ < L, "
                           "inverse FFT)",
            "so3_general": "K⁺[g,g'] = σ_w² ∫∫ K[u,u'] P_L(u⁻¹gg'⁻¹u') du du' + σ_b²  "
                           "(general: two-sided transform)"}

        def project(x: Expr) -> SO3Project:
            return SO3Project(x, grid_in, band, grid, src.layout, src.node)
        return _weight_layer(ctx, node, project(Ref(src.nngp)), out, formulas, costs,
                             src.ntk, project)


@rule("group_pool", family=SO3_FAMILY)
class SO3Pool:
    """K⁺ = ∫∫ K[g,g'] dg dg' (Haar); under (R) K⁺ = ∫ K̃(q) dq. Grid quadrature of bandwidth B:
    exact for band-limited kernels, the network's own quadrature otherwise."""

    @staticmethod
    def formulas(ctx, node):
        f = Formulas(sympy.Eq(S("K⁺"), Integral(Integral(K[g, gp], S("g"), S("SO(3)")), S("g'"),
                                                S("SO(3)"))),
                     sympy.Eq(S("Θ⁺"), Integral(Integral(THETA[g, gp], S("g"), S("SO(3)")),
                                                S("g'"), S("SO(3)"))))
        if ctx.uses("R", node):
            f.reduced.append(sympy.Eq(S("K⁺"), Integral(sympy.Function("K̃")(S("q")), S("q"),
                                                         S("SO(3)"))))
        return f

    @staticmethod
    def lower(ctx, node, ins):
        src = ins[0]
        lay = src.layout
        grid = lay.box[0] // 2
        name = ctx.var(node)
        k, t = f"k_{name}", f"t_{name}"
        lines = [Assign((k,), SO3Mean(Ref(src.nngp), grid, lay, src.node))]
        ntk = [Assign((t,), SO3Mean(Ref(src.ntk), grid, lay, src.node))] \
            if src.ntk is not None else []
        formulas = {"so3_reduced": "K⁺ = ∫ K̃(q) dq  (R: grid quadrature)",
                    "so3_general": "K⁺ = ∫∫ K[g,g'] dg dg'  (grid quadrature)"}
        return [Op("mean", formulas[lay.kind], lines, 1, 2 * lay.entries, ntk,
                   layout=Layout("vector"), owner=node, source_layout=lay, source=src.node,
                   formulas=formulas)], \
            Value(k, t if src.ntk else None, Layout("vector"))
