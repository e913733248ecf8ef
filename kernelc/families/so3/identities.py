"""The symmetry identities of the SO(3) family (docs/math/so3.md): (R) right invariance under all
of SO(3), (D) (not applicable), (O) orbit average against the matching MLP.
"""
from __future__ import annotations

from typing import Dict

from ...compiler.identities import IdentityDecision, identity, nodes_of
from ...compiler.relayout import layout_rewrite
from ...frontend.infer import TypedGraph
from .family import SO3_FAMILY


@identity("R", SO3_FAMILY)
def so3_right_invariance(tg: TypedGraph, enabled: Dict[str, bool]) -> IdentityDecision:
    """With full-sphere / full-group filters every layer is right-invariant under all of SO(3):
    K[gs, g's] = K[g, g'] (the Haar integrals ∫dy, ∫dh absorb s), so K[g, g'] = K̃(g'g⁻¹) and
    one function on SO(3) per pair is stored: (2B)³ entries instead of (2B)⁶. The lift becomes
    the spherical cross-correlation K̃(q) = σ_w² ∫ K0[y, q·y] dy + σ_b², a group convolution the
    band-limit projection K̃⁺ = σ_w² Π_L K̃ + σ_b², and nonlinearities see the constant
    variances K̃(e)."""
    name = "right invariance"
    layers = nodes_of(tg, "lift", "gconv")
    if not layers:
        return IdentityDecision("R", name, False, "the network has no signal on SO(3)")
    if not enabled.get("R", True):
        return IdentityDecision("R", name, False, "switched off by the caller (general path)")
    for node in nodes_of(tg, "gconv"):
        data = tg.node(node)
        grid_in = tg.node(tg.inputs(node)[0]).out.shape[0] // 2
        if data.hp["bandlimit"] > grid_in:
            # Π_L of a K̃ sampled on a grid of bandwidth B_in < L is not defined by the SO(3)
            # FFT of that grid; the general path's written-out quadrature is
            return IdentityDecision(
                "R", name, False,
                f"'{data.name}' (line {data.span.line}) has band limit "
                f"{data.hp['bandlimit']} above the bandwidth {grid_in} of its input grid; "
                "the general path integrates it exactly (raise the previous layer's grid= to "
                "use the reduced path)")
    grids = sorted({tg.node(n).hp["grid"] for n in layers})
    n = (2 * grids[-1]) ** 3
    return IdentityDecision("R", name, True,
                            f"all {len(layers)} lift/gconv filters cover the whole sphere/group: "
                            f"store K̃(g'g⁻¹) on the SO(3) grid, {n} entries per pair instead "
                            f"of {n}² = {n * n}")


@identity("D", SO3_FAMILY)
def so3_diagonal_only(tg: TypedGraph, enabled: Dict[str, bool]) -> IdentityDecision:
    """SO(3) has no translations that a readout could leave unaveraged."""
    return IdentityDecision("D", "diagonal only", False, "not applicable: SO(3) features are "
                            "pooled over the group (K̃ already stores one entry per g'g⁻¹)")


@identity("O", SO3_FAMILY)
def so3_orbit_average(tg: TypedGraph, enabled: Dict[str, bool]) -> IdentityDecision:
    """K(f, f') = ∫ k(f, ρ(h)f') dh with k the matching MLP kernel, when no gconv truncates."""
    gconvs = nodes_of(tg, "gconv")
    pooled = bool(nodes_of(tg, "group_pool"))
    if not pooled:
        return IdentityDecision("O", "orbit average", False, "the network does not pool over SO(3)")
    if gconvs:
        return IdentityDecision("O", "orbit average", False,
                                f"{len(gconvs)} band-limited gconv layer(s): K̃⁺ = Π_L K̃ differs "
                                "from the MLP's K̃ by the truncated degrees (it holds as L → ∞)")
    return IdentityDecision("O", "orbit average", True,
                            "K(f,f') = ∫_SO(3) k(f, ρ(h)f') dh with k the kernel of the matching "
                            "MLP (lift at g = e is a dense layer on L²(S²)); a check, not a "
                            "faster path here")


# -- (R) as a layout rewrite of the plan (kernelc.compiler.relayout) ---------------------------
layout_rewrite(SO3_FAMILY, "R", "right invariance", {"so3_general": "so3_reduced"},
               "K[gs, g's] = K[g, g'] for s ∈ SO(3): a kernel is kept as K̃(q) = K[e, q], in "
               "Wigner coefficients through the weight layers and sampled on the grid for "
               "the nonlinearities; the lift is a cross-correlation, a gconv the projection Π_L")
