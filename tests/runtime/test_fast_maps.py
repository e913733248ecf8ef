"""The fast arc-cosine of the relu maps and the fast arcsine of erf's (docs/math/fast-maps.md):
their coefficients and bounds are the committed script's, the proven bounds hold on dense
samples in float32 and float64, kernels with them agree with atan2's and with the independent
reference, and kernel_fn(fast_maps=False) switches them off."""
import importlib.util
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import kernelc
from kernelc.rules.nonlinearities import kernel_map
from kernelc.runtime import maps
from kernelc.runtime.driver import precision_estimate, x64_context
from tests.compiler._shared import GENERATORS, gconv, inputs, lift, rel_err, spec_text
from tests.reference.lattice_reference import reference_kernels

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def remez():
    spec = importlib.util.spec_from_file_location("fast_maps_remez",
                                                  ROOT / "benchmarks" / "fast_maps_remez.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # the Remez fits and the 2^20-point proof: ~3 s
def test_the_coefficients_and_bounds_are_the_scripts(remez):
    coeffs = remez.coefficients()
    assert maps.FAST_ASIN_FLOAT32 == coeffs["float32"]
    # the degree-15 float64 fit is ill-conditioned: its top coefficients follow the CPU's
    # BLAS in the 6th digit (an AVX2 machine's fit differs from the AVX-512 one's that is
    # stored), so the stored coefficients must prove the stored bounds, and this machine's
    # fit must prove the same bounds to 1%
    stored = {"float32": maps.FAST_ASIN_FLOAT32, "float64": maps.FAST_ASIN_FLOAT64}
    for dtype in ("float32", "float64"):
        for helper, theorem in (("acos", remez.theorem), ("asin", remez.asin_theorem)):
            assert maps.FAST_MAP_BOUNDS[helper][dtype] == remez.rounded(
                theorem(dtype, stored[dtype]))
            np.testing.assert_allclose(remez.rounded(theorem(dtype, coeffs[dtype])),
                                       maps.FAST_MAP_BOUNDS[helper][dtype], rtol=0.01)
    # the float64 bounds meet the 1e-13 on the kernel
    for helper in ("acos", "asin"):
        assert max(maps.FAST_MAP_BOUNDS[helper]["float64"][1:]) * 2.0**-53 < 1e-13


def _samples(n, seed=0):
    """n correlations, a third of them within 1e-3 ... 1e-12 of ±1 (and ±1 itself), with
    variances over 8 decades, as float32 (n, a, b)."""
    rng = np.random.default_rng(seed)
    a = 10.0 ** rng.uniform(-4, 4, n)
    b = 10.0 ** rng.uniform(-4, 4, n)
    rho = rng.uniform(-1, 1, n)
    edge = rng.random(n) < 1 / 3
    rho[edge] = np.sign(rng.uniform(-1, 1, edge.sum())) * (1 - 10.0 ** rng.uniform(-12, -3,
                                                                                   edge.sum()))
    rho[:4] = [1, -1, 0, 1 / math.sqrt(2)]
    return rho * np.sqrt(a * b), a, b


def _check_bound(dtype, n):
    u = {"float32": 2.0**-24, "float64": 2.0**-53}[dtype]
    rho_err, kdot_err, nngp_err = maps.FAST_MAP_BOUNDS["acos"][dtype]
    with x64_context(dtype):
        n_, a_, b_ = (jnp.asarray(v, dtype) for v in _samples(n))
        with maps.fast_maps(True):
            theta, det = jax.jit(lambda n, a, b: (maps.fast_acos_ratio2(n, a, b),
                                                  maps.fast_sqrt_det2(a, b, n)))(n_, a_, b_)
    n64, a64, b64 = (np.asarray(v, np.float64) for v in (n_, a_, b_))  # the inputs it read
    theta, det = np.asarray(theta, np.float64), np.asarray(det, np.float64)
    rho = np.clip(n64 / np.sqrt(a64) / np.sqrt(b64), -1, 1)
    # the argument error: every ρ' within 6u of ρ (relative), the widest arccos/σ change
    lo, hi = (np.clip(rho * (1 + s * rho_err * u * np.sign(rho)), -1, 1) for s in (-1, 1))
    d_theta = np.maximum(np.abs(np.arccos(lo) - np.arccos(rho)),
                         np.abs(np.arccos(hi) - np.arccos(rho)))
    sig = lambda r: np.sqrt((1 - r) * (1 + r))  # noqa: E731
    d_sig = np.maximum(np.abs(sig(lo) - sig(rho)), np.abs(sig(hi) - sig(rho)))
    e_theta = np.abs(theta - np.arccos(rho))
    e_det = np.abs(det / np.sqrt(a64 * b64) - sig(rho))
    # K̇ = (π − θ)/2π over K̇(1) = 1/2: |Δθ|/π; K⁺ over √(K⁺(a) K⁺(b)) = √(ab)/2:
    # (|ρ| |Δθ| + |ΔD|/√(ab))/π
    kdot = e_theta / np.pi
    nngp = (np.abs(rho) * e_theta + e_det) / np.pi
    assert np.all(kdot <= kdot_err * u + d_theta / np.pi), np.max(kdot / u)
    assert np.all(nngp <= nngp_err * u + (np.abs(rho) * d_theta + d_sig) / np.pi)
    return kdot, nngp, d_theta


def test_the_float32_bound_holds_on_a_million_samples():
    kdot, nngp, d_theta = _check_bound("float32", 1_000_000)
    # away from the square-root edge the evaluation error is what is left
    away = d_theta < 2.0**-22
    assert np.max(kdot[away]) < 2.13 * 2.0**-24 and np.max(nngp[away]) < 2.97 * 2.0**-24


def test_the_float64_bound_holds_on_a_million_samples():
    _check_bound("float64", 1_000_000)


def test_self_pairs_and_zero_variances_are_exact():
    a = jnp.asarray([2.5, 1e-30, 0.0, 3.0, 0.0], jnp.float32)
    n = jnp.asarray([2.5, -1e-30, 0.0, 0.0, 0.0], jnp.float32)
    b = jnp.asarray([2.5, 1e-30, 1.0, 7.0, 0.0], jnp.float32)
    with maps.fast_maps(True):
        theta, det = jax.jit(lambda n, a, b: (maps.fast_acos_ratio2(n, a, b),
                                              maps.fast_sqrt_det2(a, b, n)))(n, a, b)
    ref = [maps.acos_ratio2(n, a, b), maps.sqrt_det2(a, b, n)]
    np.testing.assert_array_equal(np.asarray(theta)[:2], [0.0, np.float32(np.pi)])
    np.testing.assert_array_equal(np.asarray(det)[:2], 0.0)
    np.testing.assert_allclose(theta, ref[0], rtol=0, atol=3e-7)
    np.testing.assert_allclose(det, ref[1], rtol=3e-7, atol=0)


def test_only_maps_whose_bound_holds_print_the_fast_helpers():
    for name, args, fast in [("relu", (), True), ("leaky_relu", (0.1,), True),
                             ("leaky_relu", (2.0,), True), ("leaky_relu", (-0.5,), False),
                             ("abs", (), False), ("erf", (), False), ("gelu", (), False)]:
        code = " ".join(kernel_map(name, args).emit_jax("a", "b", "c"))
        assert ("fast_acos_ratio2" in code) == fast, (name, args)
        assert ("fast_sqrt_det2" in code) == fast, (name, args)
    # erf and gelu: the arcsine only (FAST_MAP_BOUNDS["asin"] is theirs), √D stays exact
    for name, fast in [("erf", True), ("gelu", True), ("relu", False)]:
        code = " ".join(kernel_map(name).emit_jax("a", "b", "c"))
        assert ("fast_asin_ratio2" in code) == fast, name
        assert "asin_ratio2(" not in code.replace("fast_asin_ratio2(", ""), name


MLP = ("network mlp\ngroup Z2\ninput 4 x 1 channels 1\nflatten\n"
       "dense(8, W_std=1.4, b_std=0.1)\nrelu\ndense(1)\n")


@pytest.fixture(scope="module")
def mlp():
    return kernelc.compile(MLP)


def test_the_generated_module_is_deterministic_and_calls_the_fast_helpers(mlp):
    assert kernelc.compile(MLP).source == mlp.source
    assert "fast_acos_ratio2" in mlp.source and "acos_ratio2(" not in \
        mlp.source.replace("fast_acos_ratio2(", "")


def _near_duplicates():
    x = np.random.default_rng(5).normal(size=(5, 4, 1, 1))
    x[1] = x[0] + 1e-3 * x[2]  # a near duplicate: correlations close to 1
    return x


def _fast_and_exact_agree(net, ntk_grows):
    """fast_maps True and False agree to 2e-6 on near-duplicates; the fast maps' proven
    roundings raise the estimate (the NTK's too where K̇ reads the fast angle), which still
    bounds the float32 error against float64."""
    x = _near_duplicates()
    out, estimates = {}, {}
    for fast in (True, False):
        out[fast] = net.kernel_fn(x, fast_maps=fast)
        estimates[fast] = precision_estimate()[:2]
    for name in ("nngp", "ntk"):
        assert _normalised(out[True][name], out[False][name]) < 2e-6, name
    assert estimates[True][0] > estimates[False][0]
    assert estimates[True][1] >= estimates[False][1] or not ntk_grows
    ref = net.kernel_fn(x, dtype="float64", fast_maps=False)
    for i, name in enumerate(("nngp", "ntk")):
        assert _normalised(out[True][name], ref[name]) <= estimates[True][i]


def test_fast_and_exact_relu_kernels_agree_and_the_estimate_accounts_for_it(mlp):
    _fast_and_exact_agree(mlp, ntk_grows=True)


@pytest.mark.slow  # two more compilations
def test_fast_and_exact_relu_kernels_agree_in_float64(mlp):
    x = _near_duplicates()
    fast = mlp.kernel_fn(x, dtype="float64", fast_maps=True)
    exact = mlp.kernel_fn(x, dtype="float64", fast_maps=False)
    for name in ("nngp", "ntk"):
        assert _normalised(fast[name], exact[name]) < 1e-13, name


LAYERS = [lift(W_std=1.3, b_std=0.2), {"kind": "relu"}, gconv(W_std=1.1, b_std=0.1),
          {"kind": "relu"}, {"kind": "group_pool"}, {"kind": "dense", "W_std": 1.0, "b_std": 0.1}]


@pytest.fixture(scope="module")
def p4_net():
    return kernelc.compile(spec_text("p4", (4, 4), 2, LAYERS))


def _normalised(got, ref):
    scale = np.sqrt(np.outer(np.diag(ref), np.diag(ref)))
    return float(np.max(np.abs(got - ref) / scale))


@pytest.mark.slow  # compiles 4 variants of a p4 network: ~30 s
def test_fast_and_exact_maps_agree_and_match_the_reference(p4_net):
    x = inputs(7, 3, (4, 4), 2)
    ref = dict(zip(("nngp", "ntk"), reference_kernels(LAYERS, GENERATORS["p4"], "square",
                                                      (4, 4), x)))
    # float64: the proven 6e-15 per map (1e-13 asked); float32: a few roundoffs per layer.
    # Against the reference the bounds of tests/compiler/test_reference_agreement.py.
    for dtype, tol, tol_ref in (("float64", 1e-13, 1e-10), ("float32", 2e-6, 2e-6)):
        fast = p4_net.kernel_fn(x, dtype=dtype, fast_maps=True)
        exact = p4_net.kernel_fn(x, dtype=dtype, fast_maps=False)
        for name in ("nngp", "ntk"):
            assert _normalised(fast[name], exact[name]) < tol, (dtype, name)
            assert rel_err(fast[name], ref[name]) <= tol_ref, (dtype, name)


def test_the_switch_changes_the_traced_program(mlp):
    """None (default): fast in float32 only; True: float32 and float64; False: never."""
    batches = mlp.kernel_fn.compiled_passes
    for dtype, setting, fast in [("float32", None, True), ("float32", True, True),
                                 ("float32", False, False), ("float64", None, False),
                                 ("float64", True, True), ("float64", False, False)]:
        with x64_context(dtype):
            x = jnp.asarray(np.ones((2, 4, 1, 1)), dtype)
            stats = [jnp.zeros((2,) + shape, dtype) for shape in mlp.module.STATS_SHAPES]
            jaxpr = str(jax.make_jaxpr(batches[True, False, setting].jitted)(
                x, x, stats, stats, jnp.ones(2, bool)))
        assert ("atan2" not in jaxpr) == fast, (dtype, setting)
    from kernelc.errors import InputError
    with pytest.raises(InputError, match="fast_maps must be None, True or False"):
        mlp.kernel_fn(np.ones((2, 4, 1, 1)), fast_maps="yes")


# -- erf: K⁺ = (2/π) asin ρ', ρ' = 2k12/√((1 + 2k11)(1 + 2k22)) (docs/math/fast-maps.md) -------

def _printed(name, fast, dtype, *args, part=0):
    """The printed K⁺ (``part`` 0) or K̇ (1) of ``name`` at (k11, k12, k22) in ``dtype``,
    jitted with fast_maps=fast, as long doubles."""
    namespace = maps.namespace("jax")
    exec("def kmap(k11, k12, k22):\n    return "  # noqa: S102 - the printer's own output
         + kernel_map(name).emit_jax("k11", "k12", "k22")[part], namespace)
    with x64_context(dtype), maps.fast_maps(fast):
        out = jax.jit(namespace["kmap"])(*(jnp.asarray(v, dtype) for v in args))
        return np.asarray(out, np.longdouble)


def _erf_nngp(fast, dtype, *args):
    return _printed("erf", fast, dtype, *args)


def _erf_exact(k11, k12, k22):
    """(ρ', K⁺) in long double (64-bit mantissa on x86) at the given floating-point inputs."""
    k11, k12, k22 = (np.asarray(v, np.longdouble) for v in (k11, k12, k22))
    rho = 2 * k12 / np.sqrt((1 + 2 * k11) * (1 + 2 * k22))
    return rho, 2 / np.longdouble(np.pi) * np.arcsin(np.clip(rho, -1, 1))


def _erf_grid(dtype):
    """Variances 0 and 1e-4 … 1e3 (all pairs) × correlations: a dense grid, ±1, 0, within
    1e-7 … 1e-1 of ±1, and ρ' = 1/√2 (the switch of fast_asin_ratio2) ± 1 and 4 ulps."""
    ks = np.concatenate([[0.0], np.logspace(-4, 3, 36)])
    k11, k22 = (np.ravel(k) for k in np.meshgrid(ks, ks, indexing="ij"))
    edge = 1 - np.logspace(-7, -1, 13)
    rho = np.concatenate([np.linspace(-1, 1, 81), edge, -edge])
    rho_max = _erf_exact(k11, np.sqrt(k11 * k22), k22)[0].astype(np.float64)
    switch = np.where(rho_max > 2**-0.5, 2**-0.5 / np.where(rho_max > 0, rho_max, 1), 0)
    ulp = np.finfo(dtype).eps
    rho = np.concatenate([np.broadcast_to(rho, (k11.size, rho.size)),
                          switch[:, None] * (1 + ulp * np.array([-4, -1, 0, 1, 4]))], axis=1)
    k11, k22 = (np.broadcast_to(k[:, None], rho.shape).ravel() for k in (k11, k22))
    k12 = np.clip(rho.ravel(), -1, 1) * np.sqrt(k11 * k22)
    return [np.asarray(np.asarray(k, dtype), np.float64) for k in (k11, k12, k22)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_erf_bound_holds_on_a_dense_grid(dtype):
    """|K̂⁺ − K⁺| ≤ E u √(K⁺(x,x) K⁺(x',x')) + the change of K⁺ over ρ'(1 ± 7u) (the read)."""
    u = float(np.finfo(dtype).eps) / 2
    rho_err, _, nngp_err = maps.FAST_MAP_BOUNDS["asin"][dtype]
    k11, k12, k22 = _erf_grid(dtype)
    rho, want = _erf_exact(k11, k12, k22)
    scale = np.sqrt(_erf_exact(k11, k11, k11)[1] * _erf_exact(k22, k22, k22)[1])
    read = np.max([np.abs(2 / np.longdouble(np.pi) * np.arcsin(
        np.clip(rho * (1 + s * rho_err * u), -1, 1)) - want) for s in (-1, 1)], axis=0)
    fast, exact = (_erf_nngp(setting, dtype, k11, k12, k22) for setting in (True, False))
    err = np.abs(fast - want)
    assert np.all(err <= nngp_err * u * scale + read), np.max((err - read) / scale / u)
    assert np.all(fast[scale == 0] == 0)  # a zero variance: K⁺ = 0 exactly
    # fast against atan2: both within their reading of ρ' (atan2's ~3.5u) and evaluation
    inside = scale > 0
    diff = np.abs(fast - exact)[inside] / scale[inside] / u
    assert np.max(diff - 2 * read[inside] / scale[inside] / u) <= nngp_err + 4, np.max(diff)


def test_the_erf_evaluation_bound_is_sharp_where_the_read_is_exact():
    """1 + 2k a power of 4 (k = 0, 1.5, 7.5, 31.5, 127.5): 1/√(1 + 2k) and ρ' = 2k12/√(ab)
    are exact in float32, so K̂⁺ − K⁺ is the evaluation error alone: within 7.51u of K⁺, and
    of the kernel's scale; the largest seen is reported by the assertion."""
    u = 2.0**-24
    ks = np.array([0.0, 1.5, 7.5, 31.5, 127.5])
    k11, k22 = (np.ravel(k) for k in np.meshgrid(ks[1:], ks, indexing="ij"))
    rho = np.linspace(-1, 1, 20001)
    k12 = (rho[None, :] * np.sqrt(k11 * k22)[:, None]).astype(np.float32).astype(np.float64)
    k11, k22 = (np.broadcast_to(k[:, None], k12.shape).ravel() for k in (k11, k22))
    k12 = k12.ravel()
    _, want = _erf_exact(k11, k12, k22)
    got = _erf_nngp(True, "float32", k11, k12, k22)
    bound = maps.FAST_MAP_BOUNDS["asin"]["float32"][2] * u
    rel = np.abs(got - want) / np.where(want != 0, np.abs(want), 1)
    assert np.all(rel <= bound), np.max(rel) / u
    assert np.all(got[k12 == 0] == 0)


@pytest.mark.parametrize("dtype", ["float32", pytest.param("float64", marks=pytest.mark.slow)])
def test_erf_and_gelu_gradients_are_finite_at_the_edges(dtype):
    """∂K⁺/∂(k11, k12, k22) of the fast erf and gelu maps at a self pair, a zero variance,
    ρ = 0, ±1 and erf's switch ρ' = 1/√2 are finite and match the exact maps'."""
    namespace = maps.namespace("jax")
    exec("def nngp(k11, k12, k22):\n    return ({}) + ({})".format(  # noqa: S102
        kernel_map("erf").emit_jax("k11", "k12", "k22")[0],
        kernel_map("gelu").emit_jax("k11", "k12", "k22")[0]), namespace)
    k = 1 / (2 * (math.sqrt(2) - 1))  # a self pair with ρ' = 2k/(1 + 2k) = 1/√2
    points = np.array([[2.5, 2.5, 2.5], [0.0, 0.0, 3.0], [0.0, 0.0, 0.0], [1.0, 0.0, 4.0],
                       [1.0, -2.0, 4.0], [k, k, k], [k, -k, k], [1e-30, 1e-30, 1e-30]])
    grads = {}
    with x64_context(dtype):
        for fast in (True, False):
            with maps.fast_maps(fast):
                grad = jax.jit(jax.vmap(jax.grad(namespace["nngp"], argnums=(0, 1, 2))))
                grads[fast] = np.stack([np.asarray(g, np.float64)
                                        for g in grad(*jnp.asarray(points.T, dtype))])
    assert np.all(np.isfinite(grads[True])), grads[True]
    np.testing.assert_allclose(grads[True], grads[False], rtol=1e-4 if dtype == "float32"
                               else 1e-10, atol=1e-6)


@pytest.mark.parametrize("name", ["erf", "gelu"])
def test_the_fast_arcsine_is_taken_with_fast_maps_true_only(name):
    """fast_maps None (default): atan2 (its proven 7.51u/6.04u is above the ~2 ulp of a
    default; DEFAULT_FAST_HELPERS); True: the polynomial in float32 and float64; False: atan2
    in both (K⁺ and K̇ traced together)."""
    args = (np.float64(1.0), np.float64(0.3), np.float64(2.0))
    namespace = maps.namespace("jax")
    exec("def kmap(k11, k12, k22):\n    return "  # noqa: S102
         + ", ".join(kernel_map(name).emit_jax("k11", "k12", "k22")), namespace)
    for dtype, setting, fast in [("float32", None, False), ("float32", True, True),
                                 ("float32", False, False), ("float64", None, False),
                                 ("float64", True, True), ("float64", False, False)]:
        with x64_context(dtype), maps.fast_maps(setting):
            # a new function each time: JAX caches the trace of the same one
            jaxpr = str(jax.make_jaxpr(lambda *k: namespace["kmap"](*k))(
                *(jnp.asarray(a, dtype) for a in args)))
        assert ("atan2" not in jaxpr) == fast, (dtype, setting)


def test_track_precision_adds_the_bounds_of_the_helpers_a_map_takes():
    """The compiler states the FAST_MAP_BOUNDS rows of the fast helpers each printed map calls
    (track_precision's fast_angles), the same as tracing the map counts, and track_precision
    takes those the fast_maps setting allows (float32; the arcsine only with True)."""
    for name, rows in [("relu", ("acos",)), ("erf", ("asin",)), ("gelu", ("asin",)),
                       ("sin", ())]:
        kmap = kernel_map(name)
        statement = kmap.emit_precision("a", "b", "c", "x")
        namespace = maps.namespace("jax")
        exec("def nngp(k11, k12, k22):\n    return {}\n"  # noqa: S102
             "def kdot(k11, k12, k22):\n    return {}\n".format(
                 *kmap.emit_jax("k11", "k12", "k22")), namespace)
        one = jnp.ones((), jnp.float32)
        stated = []
        for fn in ("nngp", "kdot"):
            before = dict(maps._FAST_ANGLE_CALLS)
            with maps.fast_maps(True):  # new functions: JAX caches eval_shape per function
                jax.eval_shape(lambda *k, f=fn: namespace[f](*k), one, one, one)
            stated.append(tuple(h for h, n in maps._FAST_ANGLE_CALLS.items() if n > before[h]))
        assert (f"fast_angles={tuple(stated)!r}" in statement) == bool(rows), name
        assert set(stated[0] + stated[1]) == set(rows), name
        for setting, want in ((True, rows), (None, rows if rows == ("acos",) else ()),
                              (False, ())):
            with maps.fast_maps(setting):
                taken = tuple(h for h in rows if maps._fast_dtype(one, helper=h))
            assert taken == want, (name, setting)


ERF_MLP = MLP.replace("relu", "erf")


@pytest.mark.slow  # a compilation and three kernel_fn traces: ~3 s
def test_fast_and_exact_erf_kernels_agree_and_the_estimate_accounts_for_it():
    """The fast arcsine's proven 7u read and 7.51u evaluation are added (erf's K̇ takes no
    angle: its NTK window does not widen)."""
    net = kernelc.compile(ERF_MLP)
    assert net.fast_map_layers  # the switch acts on erf
    _fast_and_exact_agree(net, ntk_grows=False)


def test_the_fast_arcsine_is_within_its_bound_where_the_read_is_exact():
    """fast_asin_ratio2(n, a, b) with a, b powers of 4: ρ = n/√(ab) is read exactly, so the
    error is the arcsine's own, ≤ 6.04u (float32) of asin ρ in both branches."""
    u = 2.0**-24
    n = np.linspace(-1, 1, 200001, dtype=np.float32) * 8  # ρ = n/8 over [−1, 1]
    with maps.fast_maps(True):
        got = jax.jit(lambda *a: maps.fast_asin_ratio2(*a))(jnp.asarray(n), jnp.float32(4),
                                                            jnp.float32(16))
    want = np.arcsin(np.asarray(n, np.longdouble) / 8)
    rel = np.abs(np.asarray(got, np.longdouble) - want) / np.where(want != 0, np.abs(want), 1)
    assert np.max(rel) <= maps.FAST_MAP_BOUNDS["asin"]["float32"][1] * u, np.max(rel) / u
    assert got[0] == np.float32(-np.pi / 2) and got[-1] == np.float32(np.pi / 2)


@pytest.mark.parametrize("dtype", ["float32", pytest.param("float64", marks=pytest.mark.slow)])
def test_fast_and_exact_gelu_maps_agree_on_a_dense_grid(dtype):
    """gelu's fast and atan2 maps run the same code but for the arcsine, whose term moves K⁺
    and K̇ by ≤ 6.04u (float64: 215u) of their scales, plus 7u·G for the ρ' it reads
    (docs/math/fast-maps.md); atan2's reading (~3.5u·G) and own error are allowed as much."""
    u = float(np.finfo(dtype).eps) / 2
    rho_err, own, _ = maps.FAST_MAP_BOUNDS["asin"][dtype]
    k11, k12, k22 = _erf_grid(dtype)
    a, b = 1 + np.asarray(k11, np.longdouble), 1 + np.asarray(k22, np.longdouble)
    rho_m = np.sqrt(k11 * k22 / (a * b))
    gain = 2 / np.pi * rho_m / np.sqrt(1 - rho_m**2)  # G of docs/math/fast-maps.md
    for part in (0, 1):
        fast, exact = (_printed("gelu", f, dtype, k11, k12, k22, part=part) for f in (True, False))
        k = np.concatenate([k11, k22])
        diag = _printed("gelu", False, dtype, k, k, k, part=part)
        scale = np.sqrt(np.abs(diag[:k11.size] * diag[k11.size:]))
        assert np.all(np.isfinite(fast)) and np.all(fast[k12 == 0] == exact[k12 == 0])
        inside = scale > 0
        diff = (np.abs(fast - exact)[inside] / scale[inside] / u)
        assert np.all(diff <= 2 * (own + rho_err * gain[inside])), (part, np.max(diff))


def test_the_fast_read_widens_the_ntk_window_only_where_kdot_reads_it():
    """track_precision: relu's K̇ reads the fast angle, so its NTK window widens (6u with the
    calibrated 4u); erf's K̇ = 4/(π√D) does not, so only its NNGP error grows (slope × 7u)."""
    k11 = jnp.ones((1, 4), jnp.float32)
    k12 = jnp.asarray([[0.5, 0.9, 0.999, 1 - 1e-5]], jnp.float32)
    for name, ntk_grows in (("relu", True), ("erf", False)):
        kmap = kernel_map(name)
        est = {}
        for setting in (True, False):
            namespace = maps.namespace("jax")  # new functions: eval_shape caches per function
            exec("def nngp(k11, k12, k22):\n    return {}\n"  # noqa: S102
                 "def kdot(k11, k12, k22):\n    return {}\n".format(
                     *kmap.emit_jax("k11", "k12", "k22")), namespace)
            maps.PRECISION_ESTIMATES.clear()
            with maps.fast_maps(setting):  # jitted: ~4x quicker than op by op
                jax.jit(lambda a, b, ns=namespace: maps.track_precision(
                    name, ns["nngp"], ns["kdot"], a, b, a, True, object(), False,
                    kmap.precision_kind, fast_angles=kmap.fast_angle_rows))(k11, k12)
            jax.effects_barrier()
            est[setting] = maps.PRECISION_ESTIMATES[(0, name)]  # e_k, e_t, slope, gain
        assert est[True][0] > est[False][0], name  # the NNGP's error grows in both
        assert (est[True][3] > 1.2 * est[False][3]) == ntk_grows, (name, est)


@pytest.mark.parametrize("shape", [(3, 4, 5, 1, 1), (3, 1, 1, 4, 5), (3, 1, 4, 5, 1, 1), (6,)])
def test_site_roots_are_safe_sqrt_and_its_reciprocal_bit_for_bit(shape):
    """The per-site roots taken over a reshaped copy (maps.site_roots) are the plain
    elementwise ones, zero and negative variances included, under jit."""
    v = np.random.default_rng(3).normal(size=shape).astype(np.float32) ** 3
    v.flat[:2] = 0.0
    root, inv = jax.jit(maps.site_roots)(v)
    want_root = maps.safe_sqrt(jnp.asarray(v))
    assert root.shape == inv.shape == shape
    np.testing.assert_array_equal(np.asarray(root), np.asarray(want_root))
    np.testing.assert_array_equal(np.asarray(inv), np.asarray(maps.safe_div(1, want_root)))
    assert np.all(np.asarray(inv)[v <= 0] == 0)
