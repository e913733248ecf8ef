"""The symmetry identities of docs/math/identities.md, checked on compiled kernels (float64):

(R) reduced == general, (D) diagonal == full, (S) mirrored == all pairs, invariance of
group-pooled networks, equivariance (E) of group-domain outputs, Θ = K after a lift, one-layer
closed forms, the orbit average (O) and its corollary (the rotational support of a group
convolution does not change the kernel), and (R) for a rotational support that is not closed
under conjugation (it still applies: the rotational index cancels). Tolerances are relative to the largest entry (see test_reference_agreement
for why the ReLU NTK gets 1e-9 where a correlation can sit at 1)."""
from __future__ import annotations


import numpy as np
import pytest

import kernelc
from kernelc.families.lattice.orbit import matching_cnn_spec, orbit_average

from tests.compiler._shared import (ALL_ON, GENERAL, GENERATORS, LATTICE, compiled, inputs,
                                    kernels, reduced_to_general, ref_to_kernelc_order, rel_err,
                                    spec_text, with_rotation_matrices)
from tests.compiler.test_reference_agreement import CASES, case_inputs, reference_for
from tests.reference.lattice_reference import reference_feature_kernels, reference_kernels


def _case(case_id):
    """(spec text, inputs, layers) of an agreement case (compiled networks are shared)."""
    text, x = case_inputs(case_id)
    return text, x, CASES[case_id][4]


# --------------------------------------------------------------------------------- (R)
@pytest.mark.parametrize("case_id", ["p2-circular-erf-2",
                                     pytest.param("p4-same-relu-3", marks=pytest.mark.slow),
                                     pytest.param("p4m-same-relu-2", marks=pytest.mark.slow),
                                     "p4-avgpool-gconv"])
def test_R_reduced_equals_general(case_id):
    text, x, _ = _case(case_id)
    assert compiled(text, ALL_ON).derivation.decisions["R"].applied
    assert not compiled(text, GENERAL).derivation.decisions["R"].applied
    a, b = kernels(text, ALL_ON, x), kernels(text, GENERAL, x)
    assert rel_err(a["nngp"], b["nngp"]) <= 1e-12
    assert rel_err(a["ntk"], b["ntk"]) <= 1e-9  # relu NTK; erf cases are at 1e-15


def test_R_for_O_against_reference():
    """O: the compiled general path needs minutes of XLA compilation (24×24 stencil blocks per
    layer), so the reduced path is compared with the reference, which is the general form."""
    text, x, (k_ref, t_ref) = reference_for("O-same-relu-2")
    assert compiled(text).derivation.decisions["R"].applied
    out = kernels(text, ALL_ON, x)
    assert rel_err(out["nngp"], k_ref) <= 1e-12
    assert rel_err(out["ntk"], t_ref) <= 1e-9


# --------------------------------------------------------------------------------- (D)
@pytest.mark.parametrize("case_id", ["Z2-same-relu-2-flatten", "p4-same-sin-2-flatten"])
def test_D_diagonal_equals_full(case_id):
    text, x, _ = _case(case_id)
    on, off = compiled(text, ALL_ON), compiled(text, {"D": False})
    assert on.derivation.decisions["D"].applied and not off.derivation.decisions["D"].applied
    kinds_on = {nd.layout.kind for nd in on.derivation.nodes}
    kinds_off = {nd.layout.kind for nd in off.derivation.nodes}
    assert kinds_on & {"box_diag", "group_diag"} and not kinds_off & {"box_diag", "group_diag"}
    a, b = kernels(text, ALL_ON, x), kernels(text, {"D": False}, x)
    assert rel_err(a["nngp"], b["nngp"]) <= 1e-12
    assert rel_err(a["ntk"], b["ntk"]) <= 1e-9


# --------------------------------------------------------------------------------- (S)
def test_S_mirrored_equals_all_pairs():
    text, x, _ = _case("p2-circular-erf-2")
    assert compiled(text).derivation.decisions["S"].applied
    sym = kernels(text, ALL_ON, x)
    full = kernels(text, ALL_ON, x, symmetric=False)
    for name in ("nngp", "ntk"):
        assert np.array_equal(sym[name], sym[name].T)
        assert rel_err(sym[name], full[name]) <= 1e-13
        assert rel_err(full[name], full[name].T) <= 1e-13


# ----------------------------------------------------------------------------- invariance
def _orbit(group, x):
    d = group.dim
    return np.concatenate([np.asarray(group.transform_signal(x, h, spatial_axes=tuple(range(1, 1 + d))))
                           for h in range(group.order)])


INVARIANT_NETS = {
    "p2": ((4, 4), 2, "lift(size=3, W_std=1.3, b_std=0.1) relu gconv(size=3, W_std=1.2) relu "
                      "group_pool dense(1, b_std=0.1)"),
    "p4": ((5, 5), 1, "lift(size=3, W_std=1.3, b_std=0.1) relu "
                      "gconv(size=3, W_std=1.2, padding=circular) erf group_pool dense(1)"),
    "p4m": ((4, 4), 1, "lift(size=3, W_std=1.3) relu gconv(size=3, W_std=1.2, b_std=0.1) relu "
                       "group_pool dense(1)"),
    "p6": ((5, 5), 1, "lift(size=3, W_std=1.3, b_std=0.1) relu gconv(size=3, W_std=1.2) relu "
                      "group_pool dense(1)"),
    # an even box: rotations about the centre (0.5, 0.5, 0.5) in doubled coordinates
    "O": ((2, 2, 2), 1, "lift(size=3, W_std=1.4, b_std=0.1) relu gconv(size=1) relu "
                        "group_pool dense(1)"),
}


@pytest.mark.parametrize("group_name", sorted(INVARIANT_NETS))
def test_invariance_under_every_pair_of_transformations(group_name):
    """K(ρ(h)x1, ρ(h')x2) = K(x1, x2) for all h, h' ∈ H (one Gram matrix of both orbits)."""
    box, ch, body = INVARIANT_NETS[group_name]
    text = f"group {group_name}\ninput {' x '.join(map(str, box))} channels {ch}\n{body}\n"
    net = compiled(text)
    group = net.derivation.group
    x = inputs(7, 2, box, ch, LATTICE.get(group_name, "square"))
    X = np.concatenate([_orbit(group, x[:1]), _orbit(group, x[1:])])
    out = kernels(text, ALL_ON, X)
    H = group.order
    for name in ("nngp", "ntk"):
        G = out[name]
        for a, b in ((0, 0), (0, H), (H, H)):
            block = G[a:a + H, b:b + H]
            # within one orbit, cross pairs hold positions at correlation exactly 1 that the
            # ReLU NTK's arccos amplifies from rounding (√1e-16): measured 1.0e-10 for O
            tol = 1e-9 if name == "ntk" and a == b and "relu" in body else 1e-10
            assert rel_err(block, np.full_like(block, G[a, b])) <= tol, (name, a, b)


# ----------------------------------------------------------------------- equivariance (E)
EQUIVARIANT_NETS = {
    "p4": ((4, 4), 1, [{"kind": "lift", "size": 3, "W_std": 1.3, "b_std": 0.1}, {"kind": "relu"},
                       {"kind": "gconv", "size": 3, "W_std": 1.2, "b_std": 0.2}]),
    "p4m": ((4, 4), 2, [{"kind": "lift", "size": 3, "W_std": 1.3, "padding": "circular"},
                        {"kind": "erf"},
                        {"kind": "gconv", "size": 3, "W_std": 1.2, "padding": "circular"}]),
    "p6": ((5, 5), 1, [{"kind": "lift", "size": 3, "W_std": 1.3, "b_std": 0.1},
                       {"kind": "relu"}, {"kind": "gconv", "size": 3, "W_std": 1.2}]),
}


def _act(K, group, box, h, hp):
    """K[h⁻¹g, h'⁻¹g'] for a general-layout K (H, *box, H, *box) of one pair: g = (t, r) with
    h⁻¹(t, r) = (ρ(h)⁻¹(t − c) + c, h⁻¹r), rotations about the box centre c."""
    H, P = group.order, int(np.prod(box))
    perm = group.site_permutation(box)
    inv, cay = group.inverse, group.cayley
    flat = K.reshape(H, P, H, P)
    r_a, t_a = cay[inv[h]], perm[inv[h]]
    r_b, t_b = cay[inv[hp]], perm[inv[hp]]
    return flat[r_a][:, t_a][:, :, r_b][:, :, :, t_b].reshape(K.shape)


@pytest.mark.parametrize("group_name", [pytest.param(g, marks=pytest.mark.slow)
                                        if g == "p4m" else g  # ~5 s; p4's case stays fast
                                        for g in sorted(EQUIVARIANT_NETS)])
def test_equivariance_of_group_feature_kernels(group_name):
    """(E): K[g,g'](ρ(h)f, ρ(h')f') = K[h⁻¹g, h'⁻¹g'](f, f') for every h, h', on kernelc's
    reduced layout expanded to the general one; that expansion (and, for p4, the general path)
    is also checked against the reference."""
    box, ch, layers = EQUIVARIANT_NETS[group_name]
    text = spec_text(group_name, box, ch, layers)
    net = compiled(text)
    group = net.derivation.group
    d = len(box)
    assert net.derivation.output.layout.kind == "group_reduced"
    x = inputs(3, 2, box, ch, LATTICE.get(group_name, "square"))
    X1, X2 = _orbit(group, x[:1]), _orbit(group, x[1:])
    H = group.order
    out = kernels(text, ALL_ON, X1, X2)
    ref = reference_feature_kernels(layers, GENERATORS[group_name],
                                    LATTICE.get(group_name, "square"), box, x[:1], x[1:])
    for name in ("nngp", "ntk"):
        full = reduced_to_general(out[name], group, d)  # (H, H, H, *box, H, *box)
        base = full[0, 0]
        want = ref_to_kernelc_order(ref[name], ref["elements"], group.elements, d)[0, 0]
        assert rel_err(base, want) <= 1e-9
        for h in range(H):
            for hp in range(H):
                assert rel_err(full[h, hp], _act(base, group, box, h, hp)) <= 1e-10, (name, h, hp)
    if group_name == "p4":  # the general layout straight from the general path
        gen = kernels(text, GENERAL, x[:1], x[1:])
        for name in ("nngp", "ntk"):
            want = ref_to_kernelc_order(ref[name], ref["elements"], group.elements, d)
            assert rel_err(gen[name], want) <= 1e-9


# ----------------------------------------------------------------------- lift: Θ = K
def test_lift_then_group_pool_has_ntk_equal_nngp():
    text = "group p4\ninput 5 x 5 channels 2\nlift(size=3, W_std=1.3, b_std=0.2)\ngroup_pool\n"
    out = kernels(text, ALL_ON, inputs(5, 3, (5, 5), 2))
    assert np.array_equal(out["ntk"], out["nngp"])


# ------------------------------------------------------------------------ closed forms
def _arccos(k11, k12, k22):
    """Cho & Saul degree 1 and 0: κ1 = √(k11k22)(sin θ + (π−θ)cos θ)/(2π), κ0 = (π−θ)/(2π)."""
    s = np.sqrt(k11 * k22)
    theta = np.arccos(np.clip(k12 / s, -1, 1))
    return s * (np.sin(theta) + (np.pi - theta) * np.cos(theta)) / (2 * np.pi), \
        (np.pi - theta) / (2 * np.pi)


def _erf_closed(k11, k12, k22):
    """Williams 1997: (2/π) asin(2k12/√((1+2k11)(1+2k22))) and its k12-derivative."""
    den = (1 + 2 * k11) * (1 + 2 * k22)
    return 2 / np.pi * np.arcsin(2 * k12 / np.sqrt(den)), 4 / np.pi / np.sqrt(den - 4 * k12 ** 2)


CLOSED = {"relu": _arccos, "erf": _erf_closed}


@pytest.mark.parametrize("phi", ["relu", "erf"])
def test_one_hidden_layer_mlp_closed_form(phi):
    """flatten (K = x·x'/(PC)) -> dense(σ1, b1) -> φ -> dense(σ2, b2)."""
    w1, b1, w2, b2 = 1.4, 0.3, 1.1, 0.2
    text = (f"group Z2\ninput 4 x 4 channels 2\nflatten\ndense(16, W_std={w1}, b_std={b1})\n"
            f"{phi}\ndense(1, W_std={w2}, b_std={b2})\n")
    x = inputs(9, 3, (4, 4), 2)
    f = x.reshape(3, -1)
    K1 = w1 ** 2 * (f @ f.T) / f.shape[1] + b1 ** 2
    v = np.diag(K1)
    kap, kdot = CLOSED[phi](v[:, None], K1, v[None, :])
    nngp = w2 ** 2 * kap + b2 ** 2
    ntk = w2 ** 2 * kdot * K1 + nngp
    out = kernels(text, ALL_ON, x)
    assert rel_err(out["nngp"], nngp) <= 1e-12
    assert rel_err(out["ntk"], ntk) <= 1e-12


@pytest.mark.parametrize("phi", ["relu", "erf"])
def test_one_layer_gcnn_closed_form(phi):
    """p4 lift with a 1-point filter: K1[(t,r),(t',r')] = σ² K0[t,t'] + b²; then φ, group_pool
    (mean over t, t'; r does not matter) and dense."""
    w1, b1, w2, b2 = 1.3, 0.2, 0.9, 0.1
    text = (f"group p4\ninput 4 x 4 channels 2\nlift(size=1, W_std={w1}, b_std={b1})\n{phi}\n"
            f"group_pool\ndense(1, W_std={w2}, b_std={b2})\n")
    x = inputs(10, 3, (4, 4), 2)
    f = x.reshape(3, 16, 2)
    K1 = w1 ** 2 * np.einsum("npc,mqc->npmq", f, f) / 2 + b1 ** 2  # (n, t, m, t')
    v = np.einsum("npnp->np", K1)
    kap, kdot = CLOSED[phi](v[:, :, None, None], K1, v[None, None, :, :])
    nngp = w2 ** 2 * kap.mean(axis=(1, 3)) + b2 ** 2
    ntk = w2 ** 2 * (kdot * K1).mean(axis=(1, 3)) + nngp
    out = kernels(text, ALL_ON, x)
    assert rel_err(out["nngp"], nngp) <= 1e-12
    assert rel_err(out["ntk"], ntk) <= 1e-12


# ---------------------------------------------------------------------- orbit average (O)
ORBIT_NETS = {  # agreement cases (compiled once): relu and erf, same and circular padding
    "p4-relu-same": "p4-same-relu-3",
    "p4-erf-circular": "p4-circular-gelu-erf-2",
    "p4m-relu-same": "p4m-same-relu-2",
    "p4m-erf-circular": "p4m-circular-erf-1-nobias",
}


@pytest.mark.parametrize("which", [pytest.param(w, marks=pytest.mark.slow)
                                   if w == "p4-erf-circular" else w  # ~5 s; erf: p4m's case
                                   for w in sorted(ORBIT_NETS)])
def test_orbit_average_of_matching_cnn(which):
    """K_GCNN(f, f') = (1/|H|) Σ_h k_CNN(f, ρ(h) f') with k the matching plain-CNN kernel."""
    text, x, _ = _case(ORBIT_NETS[which])
    gnet = compiled(text)
    assert gnet.derivation.decisions["O"].applied
    cnn = kernelc.compile(matching_cnn_spec(gnet.spec, 2))
    want = kernels(text, ALL_ON, x)
    got = orbit_average(cnn.kernel_fn, gnet.derivation.group, x, x, dtype="float64")
    assert rel_err(got["nngp"], want["nngp"]) <= 1e-10
    assert rel_err(got["ntk"], want["ntk"]) <= 1e-10


# ------------------------------------------------------ rotational support of gconv layers
def test_restricted_rotational_support_p4_same_kernel():
    """Abelian p4, rotations=[0] and [1, 3]: the kernel equals the full-support one
    (docs/math/identities.md (O), corollary 1), on the general path (where R is summed
    explicitly) and the reduced one, and
    the general path agrees with the reference looping over the restricted R."""
    text_full, x, (k_ref_full, t_ref_full) = reference_for("p4-same-relu-3")
    layers = CASES["p4-same-relu-3"][4]
    restricted = [dict(layer) for layer in layers]
    gconvs = [i for i, layer in enumerate(restricted) if layer["kind"] == "gconv"]
    restricted[gconvs[0]]["rotation_indices"] = [0]
    restricted[gconvs[1]]["rotation_indices"] = [1, 3]
    text = spec_text("p4", (5, 5), 2, restricted)
    assert compiled(text).derivation.decisions["R"].applied  # abelian: every R is closed
    full = kernels(text_full, ALL_ON, x)
    group = compiled(text).derivation.group
    k_ref, t_ref = reference_kernels(with_rotation_matrices(restricted, group),
                                     GENERATORS["p4"], "square", (5, 5), x)
    out = kernels(text, GENERAL, x)  # the reduced path has no R in its formula at all
    assert rel_err(out["nngp"], full["nngp"]) <= 1e-12
    assert rel_err(out["ntk"], full["ntk"]) <= 1e-9
    assert rel_err(k_ref, k_ref_full) <= 1e-13 and rel_err(t_ref, t_ref_full) <= 1e-9


@pytest.mark.slow  # 6 s; test_restricted_rotational_support_p4_same_kernel stays fast
def test_p4m_support_not_closed_under_conjugation():
    """p4m gconv with rotations=[0, 1] = {e, r90}: not closed under conjugation (the mirror
    conjugates r90 to r270). Every gconv input is right invariant after a lift, so the
    rotational index cancels and (R) still applies: the reduced path agrees with the reference
    and with the general path, and the kernel equals the full-support one."""
    text_full, x, layers = _case("p4m-same-relu-2")
    group = compiled(text_full).derivation.group
    c, inv = group.cayley, group.inverse
    assert any(int(c[c[a, 1], inv[a]]) not in (0, 1) for a in range(group.order))
    restricted = [dict(layer) for layer in layers]
    for layer in restricted:
        if layer["kind"] == "gconv":
            layer["rotation_indices"] = [0, 1]
    text = spec_text("p4m", (4, 4), 1, restricted)
    dec = compiled(text).derivation.decisions["R"]
    assert dec.applied and "rotational supports cancel" in dec.reason
    out = kernels(text, ALL_ON, x)
    general = kernels(text, GENERAL, x)
    assert rel_err(out["nngp"], general["nngp"]) <= 1e-12
    assert rel_err(out["ntk"], general["ntk"]) <= 1e-9
    k_ref, t_ref = reference_kernels(with_rotation_matrices(restricted, group),
                                     GENERATORS["p4m"], "square", (4, 4), x)
    assert rel_err(out["nngp"], k_ref) <= 1e-10
    assert rel_err(out["ntk"], t_ref) <= 1e-9
    full = kernels(text_full, ALL_ON, x)
    assert rel_err(out["nngp"], full["nngp"]) <= 1e-12
    assert rel_err(out["ntk"], full["ntk"]) <= 1e-9
