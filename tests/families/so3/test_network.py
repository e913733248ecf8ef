"""Finite-width SO(3) networks (kernelc.families.so3.network).

* lift and gconv against direct quadratures of their defining integrals (Gauss–Legendre in
  cos θ / cos β, uniform in the other angles, filters evaluated at rotated points), float64;
* invariance of the pooled output under exact rotations of band-limited inputs: exact (to
  rounding) for polynomial φ on grids fine enough for every integrand, approximate for ReLU;
* Monte Carlo means of the empirical NNGP and NTK against the infinite-width kernels: the
  general path of kernelc.runtime.so3 composed by hand, and the compiled kernel.
  Every Gram entry must lie within 4.5 standard errors (runs are seeded, so deterministic).
"""
import math

import jax
import numpy as np
import pytest

import kernelc
from kernelc.runtime import so3 as rt
from kernelc.runtime.driver import x64_context
from kernelc.runtime import harmonic
from kernelc.families.so3.group import (euler_angles, random_rotation, rotate_sphere_signal,
                                rotation_matrix, wigner_D)
from kernelc.network import monte_carlo, network
from kernelc.families.so3.network import SO3Network, gconv_blocks, lift_blocks

LAYERS = """network q
group SO3
input sphere bandlimit 3 channels 2
lift(3, grid=3, W_std=1.3, b_std=0.4, width=2)
gconv(3, grid=4, W_std=1.1, b_std=0.3, width=3)
group_pool
dense(1)
"""


def _bandlimited_input(n, band, channels, seed):
    """Grid samples (n, 2L, 2L, C) of real functions of band limit L, and their coefficients."""
    x = np.random.default_rng(seed).normal(size=(n, channels, 2 * band, 2 * band))
    with x64_context("float64"):
        a = np.asarray(harmonic.sphere_analysis(x.astype(np.complex128), band))
        xb = np.asarray(harmonic.sphere_synthesis(a, band))
    return np.moveaxis(xb, 1, -1), a  # (n, 2L, 2L, C), (n, C, L, 2L-1)


def _sph(l, theta, phi):
    """Y_ℓm(θ, φ), m = -ℓ..ℓ, for arrays of angles: (..., 2ℓ+1)."""
    d = harmonic.wigner_d(l, theta)[..., :, l]  # d^ℓ_m0(θ)
    m = np.arange(-l, l + 1)
    return math.sqrt((2 * l + 1) / (4 * math.pi)) * np.exp(1j * m * phi[..., None]) * d


def _sphere_nodes(n=8):
    """Unit vectors and weights of a product rule with Σ w = 4π (exact to degree < n)."""
    t, wt = np.polynomial.legendre.leggauss(n)
    phi = 2 * np.pi * np.arange(n) / n
    theta = np.arccos(t)[:, None] + 0 * phi[None, :]
    phi = phi[None, :] + 0 * theta
    w = (wt[:, None] * 2 * np.pi / n) * np.ones_like(theta)
    pts = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], -1)
    return pts.reshape(-1, 3), w.reshape(-1)


def _angles(p):
    return np.arccos(np.clip(p[..., 2], -1, 1)), np.arctan2(p[..., 1], p[..., 0])


def _sphere_function(a, pts):
    """f(x) = Re Σ a_ℓm Y_ℓm(x) at unit vectors pts: a (..., L, 2L-1) -> (..., P)."""
    band = a.shape[-2]
    theta, phi = _angles(pts)
    out = 0
    for l in range(band):
        out = out + np.einsum("...m,pm->...p", a[..., l, band - 1 - l:band + l],
                              _sph(l, theta, phi))
    return np.real(out)


def _direct_lift(a, psi, R, w_std, b_std, bias):
    """σ_w/√n Σ_c (1/4π) ∫ ψ_jc(R⁻¹x) f_c(x) dx + σ_b β_j by quadrature: a (C, L, 2L-1), psi
    per-degree blocks (2ℓ+1, C, D) -> (D,)."""
    pts, w = _sphere_nodes()
    f = _sphere_function(a, pts)                                   # (C, P)
    theta, phi = _angles(pts @ R)                                  # R⁻¹x = Rᵀx
    filt = sum(np.einsum("pm,mcj->cjp", _sph(l, theta, phi), psi[l]) for l in range(len(psi)))
    filt = math.sqrt(2) * math.sqrt(4 * math.pi) * np.real(filt)   # ψ_jc(R⁻¹x): (C, D, P)
    integral = np.einsum("cjp,cp,p->j", filt, f, w) / (4 * math.pi)
    return w_std / math.sqrt(a.shape[0]) * integral + b_std * bias


def _so3_nodes(n=6):
    """Euler angles and weights of a product rule for the normalised Haar measure."""
    t, wt = np.polynomial.legendre.leggauss(n)
    ang = 2 * np.pi * np.arange(n) / n
    return [(al, np.arccos(tb), ga, wb / 2 / n / n) for al in ang for tb, wb in zip(t, wt)
            for ga in ang]


def _params(net, key, width=None):
    with x64_context("float64"):
        return jax.tree_util.tree_map(np.asarray, net.init(jax.random.PRNGKey(key), None, width,
                                                           "float64"))


def _features(net, params, x, node):
    with x64_context("float64"):
        return np.asarray(net.features(params, np.asarray(x, np.float64), node))


def test_builder_dispatches_on_the_family_and_shapes():
    net = network(LAYERS)
    assert isinstance(net, SO3Network)
    params = net.init(jax.random.PRNGKey(0), (6, 6, 2))
    assert params["lift1"]["W"].shape == (2, 9, 2, 2)         # (u/v, L², n, D)
    assert params["gconv1"]["W"].shape == (2, 1 + 9 + 25, 2, 3)
    x = np.zeros((4, 6, 6, 2), np.float32)
    assert net.features(params, x, "n001").shape == (4, 6, 6, 6, 2)
    assert net.features(params, x, "n002").shape == (4, 8, 8, 8, 3)
    assert net.apply(params, x).shape == (4, 1)
    assert net.output_shape(4) == (4, 1)
    wide = network(LAYERS.replace(", width=2", "").replace(", width=3", ""))
    assert wide.channels(5)["n002"] == 5


def test_lift_matches_a_direct_quadrature():
    net = network(LAYERS)
    params = _params(net, 1)
    x, a = _bandlimited_input(2, 3, 2, seed=0)
    out = _features(net, params, x, "n001")                       # (N, 6, 6, 6, D)
    hp = net.hp("n001")
    psi = lift_blocks(params["lift1"]["W"], 3)
    theta, phi = harmonic.grid_angles(3)
    for n, ia, ib, ic in [(0, 0, 0, 0), (0, 1, 4, 5), (1, 3, 2, 1), (1, 5, 5, 2)]:
        R = rotation_matrix(phi[ia], theta[ib], phi[ic])
        ref = _direct_lift(a[n], psi, R, hp["W_std"], hp["b_std"], params["lift1"]["b"])
        np.testing.assert_allclose(out[n, ia, ib, ic], ref, rtol=0, atol=1e-10)


def test_gconv_matches_a_direct_quadrature():
    net = network(LAYERS)
    params = _params(net, 2)
    x, a = _bandlimited_input(1, 3, 2, seed=1)
    out = _features(net, params, x, "n002")[0]                    # (8, 8, 8, D)
    hp, hl = net.hp("n002"), net.hp("n001")
    lift_psi = lift_blocks(params["lift1"]["W"], 3)
    psi = gconv_blocks(params["gconv1"]["W"], 3)                  # (2ℓ+1, 2ℓ+1, C, D)
    nodes = _so3_nodes()
    # the gconv's input f_c(u): the lift, evaluated directly at every quadrature node
    f = np.array([_direct_lift(a[0], lift_psi, rotation_matrix(al, be, ga), hl["W_std"],
                               hl["b_std"], params["lift1"]["b"]) for al, be, ga, _ in nodes])
    w = np.array([wt for *_, wt in nodes])
    assert abs(w.sum() - 1) < 1e-12
    theta, phi = harmonic.grid_angles(4)
    for ia, ib, ic in [(0, 0, 0), (2, 5, 7), (7, 3, 1)]:
        R = rotation_matrix(phi[ia], theta[ib], phi[ic])
        filt = np.zeros((len(nodes),) + psi[0].shape[2:])           # ψ_jc(R⁻¹u): (P, C, D)
        for p, (al, be, ga, _) in enumerate(nodes):
            ang = euler_angles(R.T @ rotation_matrix(al, be, ga))
            filt[p] = math.sqrt(2) * np.real(sum(np.einsum("mn,mncj->cj", wigner_D(l, *ang),
                                                           psi[l]) for l in range(3)))
        ref = hp["W_std"] / math.sqrt(2) * np.einsum("pcj,pc,p->j", filt, f, w) \
            + hp["b_std"] * params["gconv1"]["b"]
        np.testing.assert_allclose(out[ia, ib, ic], ref, rtol=0, atol=1e-10)


INVARIANT = """network inv
group SO3
input sphere bandlimit 3 channels 2
lift(3, grid=4, W_std=1.3, b_std=0.2)
{phi}
gconv(3, grid=4, W_std=1.2, b_std=0.1)
{phi}
group_pool
dense(3, b_std=0.1)
"""


def _rotation_gap(phi, dtype, width=4, n_rot=3):
    """max |f(Qx) - f(x)| / max |f(x)| over random rotations Q of band-limited inputs."""
    net = network(INVARIANT.format(phi=phi))
    x, _ = _bandlimited_input(2, 3, 2, seed=3)
    rng = np.random.default_rng(4)
    xs = np.concatenate([x] + [rotate_sphere_signal(x, random_rotation(rng), 3)
                               for _ in range(n_rot)])
    with x64_context("float64"):
        params = net.init(jax.random.PRNGKey(5), None, width, dtype)
        out = np.asarray(jax.jit(net.apply)(params, np.asarray(xs, dtype)))
    out = out.reshape(n_rot + 1, 2, -1)
    return np.max(np.abs(out[1:] - out[0])) / np.max(np.abs(out[0]))


def test_pooled_output_is_exactly_invariant_for_polynomial_maps():
    # band 3 lift, x + x²/2 -> band 5, analysed against ℓ < 3 (degree 6 < 2B = 8), gconv band 3,
    # x + x²/2 -> band 5, pooled (degree 4 < 8): every quadrature is exact on the B = 4 grid
    assert _rotation_gap("poly(0, 1, 0.5)", "float64") < 1e-10
    assert _rotation_gap("poly(0, 1, 0.5)", "float32") < 2e-5
    assert _rotation_gap("identity", "float64") < 1e-10


def test_pooled_output_is_nearly_invariant_for_relu():
    # ReLU signals are not band-limited, so the B = 4 quadratures alias: the gap is the
    # quadrature error (measured ~1e-2 here), not a failure of equivariance
    gap = _rotation_gap("relu", "float64")
    assert 1e-8 < gap < 0.05


# -- Monte Carlo against the infinite-width kernels ----------------------------------------------
MC_LINEAR = """network mc_lin
group SO3
input sphere bandlimit 2 channels 2
lift(2, grid=2, W_std=1.3, b_std=0.3)
gconv(2, grid=2, W_std=1.1, b_std=0.2)
group_pool
dense(2, W_std=0.9, b_std=0.1)
"""

MC_RELU = """network mc_relu
group SO3
input sphere bandlimit 2 channels 2
lift(2, grid=2, W_std=1.4, b_std=0.2)
relu
gconv(2, grid=2, W_std=1.4, b_std=0.1)
relu
group_pool
dense(2)
"""


def general_path_kernels(typed, x):
    """The NNGP and NTK Gram matrices of an SO(3) spec, composed by hand from the general-path
    helpers of kernelc.runtime.so3 (float64): per layer K (and Θ) on all pairs of grid points."""
    g = typed
    n = x.shape[0]
    i, j = np.divmod(np.arange(n * n), n)
    out = {}
    with x64_context("float64"):
        for node in g.order():
            data, hp = g.node(node), g.node(node).hp
            kind = data.kind
            src = g.inputs(node)[0] if g.inputs(node) else None
            if kind == "input":
                c = rt.sphere_coefficients(np.asarray(x, np.float64), typed.input_type.band)
                out[node] = c
                continue
            K, T = out[src] if kind != "lift" else (None, None)
            if kind == "lift":
                c = out[src]
                K = hp["W_std"] ** 2 * rt.so3_lift_general(c[i], c[j], hp["bandlimit"],
                                                            hp["grid"]) + hp["b_std"] ** 2
                T = K
            elif kind == "nonlinearity":
                d = np.asarray(K).reshape(n, n, *K.shape[1:])
                diag = np.stack([np.diagonal(d[k, k]) for k in range(n)])   # (n, G)
                K2, dot = hp["map"].evaluate(diag[i][:, :, None], np.asarray(K),
                                             diag[j][:, None, :])
                K, T = K2, dot * np.asarray(T)
            elif kind == "gconv":
                b_in = g.node(src).out.shape[0] // 2
                K2 = hp["W_std"] ** 2 * rt.so3_gconv_general(
                    np.asarray(K), b_in, hp["bandlimit"], hp["grid"]) + hp["b_std"] ** 2
                T = hp["W_std"] ** 2 * rt.so3_gconv_general(
                    np.asarray(T), b_in, hp["bandlimit"], hp["grid"]) + K2
                K = K2
            elif kind == "group_pool":
                b = g.node(src).out.shape[0] // 2
                K, T = rt.so3_mean_general(np.asarray(K), b), rt.so3_mean_general(
                    np.asarray(T), b)
            elif kind == "dense":
                K2 = hp["W_std"] ** 2 * np.asarray(K) + hp["b_std"] ** 2
                K, T = K2, hp["W_std"] ** 2 * np.asarray(T) + K2
            else:
                raise NotImplementedError(kind)
            out[node] = (np.asarray(K), np.asarray(T))
    K, T = out[g.output_node]
    return {"nngp": K.reshape(n, n), "ntk": T.reshape(n, n)}


def _z_scores(net, x, exact, width, samples, seed):
    mc = monte_carlo(net.init, net.apply, x, width=width, samples=samples, seed=seed,
                     get=("nngp", "ntk", "nngp_readout"), readout_fn=net.readout_nngp)
    z = {}
    for k, v in mc.items():
        se = v.std(axis=0, ddof=1) / np.sqrt(samples)
        z[k] = (v.mean(axis=0) - exact["nngp" if k == "nngp_readout" else k]) / se
    return z


def _mc_inputs(n=2, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 4, 4, 2))


LIFT = """network l
group SO3
input sphere bandlimit 3 channels 2
lift(3, grid=3, W_std=1.3, b_std=0.3, width=3)
"""

LIFT_GCONV = """network lg
group SO3
input sphere bandlimit 3 channels 2
lift(2, grid=2, W_std=1.3, b_std=0.3, width=4)
relu
gconv(3, grid=3, W_std=1.1, b_std=0.2, width=3)
"""


def _layer_ntk(net, params, x, layer):
    """Θ[i, g, j, h] = (1/D) Σ_d <∂z_d(x_i, g)/∂θ, ∂z_d(x_j, h)/∂θ> over one layer's
    parameters θ, for a network whose output z is a signal on the SO(3) grid (float64)."""
    with x64_context("float64"):
        jac = jax.jit(jax.jacrev(lambda t: net.apply({**params, layer: t}, x)))(params[layer])
        leaves = [np.asarray(v) for v in jax.tree_util.tree_leaves(jac)]  # (N, a,b,c, D, *θ)
    n, d = x.shape[0], leaves[0].shape[4]
    flat = np.concatenate([v.reshape(n, -1, d, v[0, 0, 0, 0, 0].size) for v in leaves], -1)
    return np.einsum("igdp,jhdp->igjh", flat, flat) / d


@pytest.mark.slow  # 6 s; the lattice layer NTKs (tests/network/test_empirical.py) stay fast
def test_layer_ntks_are_the_kernel_maps_of_the_empirical_features():
    # A layer's weights enter linearly, so its NTK on every pair of grid points is
    # deterministic: for the lift the general-path lift kernel of the inputs, for the gconv the
    # general-path gconv map of the empirical covariance (1/n) Σ_c h_c(x, g) h_c(x', g') of its
    # input features -- exactly, degree by degree (pooling would only see ℓ = 0). The gconv's
    # band 3 exceeds its input grid (B = 2): the written-out quadrature, not the FFTs
    x = np.random.default_rng(6).normal(size=(3, 6, 6, 2))
    n = x.shape[0]
    i, j = np.divmod(np.arange(n * n), n)

    def compare(theta, ref):
        ref = np.asarray(ref).reshape(n, n, *ref.shape[1:]).transpose(0, 2, 1, 3)
        np.testing.assert_allclose(theta, ref, rtol=0, atol=1e-10 * np.abs(ref).max())

    net = network(LIFT)
    params = _params(net, 7)
    hp = net.hp("n001")
    with x64_context("float64"):
        c = rt.sphere_coefficients(np.asarray(x), 3)
        ref = hp["W_std"] ** 2 * np.asarray(rt.so3_lift_general(c[i], c[j], 3, 3))
    compare(_layer_ntk(net, params, x, "lift1"), ref + hp["b_std"] ** 2)

    net = network(LIFT_GCONV)
    params = _params(net, 8)
    hp = net.hp("n003")
    h = _features(net, params, x, "n002").reshape(n, -1, 4)        # (N, G, n)
    kh = np.einsum("pgc,phc->pgh", h[i], h[j]) / h.shape[-1]
    with x64_context("float64"):
        ref = hp["W_std"] ** 2 * np.asarray(rt.so3_gconv_general(kh, 2, 3, 3))
    compare(_layer_ntk(net, params, x, "gconv1"), ref + hp["b_std"] ** 2)


@pytest.mark.slow  # ~7 s; the reduced path's Monte Carlo (residual, concat) stays fast
def test_linear_network_matches_the_general_path_in_expectation():
    net = network(MC_LINEAR)
    x = _mc_inputs()
    exact = general_path_kernels(net.typed, x)
    z = _z_scores(net, x, exact, width=16, samples=256, seed=1)
    for k in ("nngp", "nngp_readout", "ntk"):
        assert np.all(np.abs(z[k]) < 4.5), (k, z[k], exact)


@pytest.mark.slow  # ~6 s; the compiled kernel's Monte Carlo (general and reduced) stays fast
def test_relu_network_matches_the_general_path_at_moderate_width():
    net = network(MC_RELU)
    x = _mc_inputs(seed=2)
    exact = general_path_kernels(net.typed, x)
    z = _z_scores(net, x, exact, width=32, samples=128, seed=3)
    for k in ("nngp", "nngp_readout", "ntk"):
        assert np.all(np.abs(z[k]) < 4.5), (k, z[k], exact)


@pytest.mark.parametrize("text", [MC_LINEAR, MC_RELU], ids=["linear", "relu"])
def test_compiled_general_path_matches_the_hand_composition(text):
    # the compiler's general path (identity R off) is the network's kernel, quadrature for
    # quadrature; the reduced path (R on) agrees exactly only while every signal is
    # band-limited (the linear net), for ReLU up to aliasing (~1e-3 relative here)
    x = _mc_inputs(3, seed=4)
    exact = general_path_kernels(kernelc.check(text), x)
    general = kernelc.compile(text, identities={"R": False}).kernel_fn(x, dtype="float64")
    reduced = kernelc.compile(text).kernel_fn(x, dtype="float64")
    for k in ("nngp", "ntk"):
        np.testing.assert_allclose(np.asarray(general[k]), exact[k], rtol=1e-9, atol=1e-12)
        tol = 1e-9 if text is MC_LINEAR else 5e-3
        np.testing.assert_allclose(np.asarray(reduced[k]), exact[k], rtol=tol, atol=1e-12)


@pytest.mark.parametrize("identities", [None, {"R": False}], ids=["reduced", "general"])
def test_monte_carlo_matches_the_compiled_kernel(identities):
    compiled = kernelc.compile(MC_RELU, identities=identities)
    x = _mc_inputs(seed=2)
    exact = compiled.kernel_fn(x, dtype="float64")
    z = _z_scores(network(compiled.typed), x, exact, width=32, samples=128, seed=3)
    for k in ("nngp", "nngp_readout", "ntk"):
        assert np.all(np.abs(z[k]) < 4.5), (k, z[k], exact)


@pytest.mark.slow  # 6 s; the lattice verify tests (tests/test_verify.py) stay fast
def test_verify_runs_on_an_so3_spec():
    from kernelc.verify import verify
    report = verify(MC_RELU, _mc_inputs(), widths=(4, 8), samples=4, progress=False)
    assert report.group == "SO3" and report.widths == [4, 8]
    assert "(SO3, continuous)" in report.table()
    assert all(np.isfinite(r.ntk_error) for r in report.results)


MC_BRANCHES = ["""network mc_residual
group SO3
input sphere bandlimit 2 channels 2
lift(2, grid=2, W_std=1.3, b_std=0.3)
residual { gconv(2, grid=2, W_std=1.1, b_std=0.2) }
group_pool
residual { dense(W_std=1.1, b_std=0.1) }
dense(2, W_std=0.9, b_std=0.1)
""", """network mc_concat
group SO3
input sphere bandlimit 2 channels 2
lift(2, grid=2, W_std=1.3, b_std=0.3)
concat { branch { gconv(2, grid=2, W_std=0.9) } branch { } }
group_pool
dense(2, W_std=0.9, b_std=0.1)
"""]


@pytest.mark.parametrize("text", MC_BRANCHES, ids=["residual", "concat"])
@pytest.mark.parametrize("identities", [pytest.param({"R": False}, marks=pytest.mark.slow), {}],
                         ids=["general", "reduced"])
def test_residual_and_concat_on_so3_match_monte_carlo(text, identities):
    """Residual sums and concatenations on SO(3) features and on pooled vectors (they used to
    crash the derivation with KeyError 'fanout'): a linear network, so the Monte Carlo mean equals
    the kernel at every width, and band-limited signals make the reduced path exact too."""
    compiled = kernelc.compile(text, identities=identities)
    x = _mc_inputs(seed=5)
    exact = compiled.kernel_fn(x, dtype="float64")
    z = _z_scores(network(text), x, exact, width=8, samples=256, seed=6)
    for k in ("nngp", "nngp_readout", "ntk"):
        assert np.all(np.abs(z[k]) < 4.5), (k, z[k], exact)
