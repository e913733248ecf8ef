"""float32 that cannot be trusted is not returned silently (docs/precision.md).

A deep erf network with a large W_std is chaotic: near correlation 1 each layer stretches
correlations by χ(1) ≈ 3.4, so the float32 rounding of two nearly identical inputs grows like
χ^L. kernel_fn estimates that error to first order during the float32 run
(kernelc.runtime.maps.track_precision) and warns (PrecisionWarning) naming the layer where the
estimate passes the tolerance; float64 runs trace and compute nothing of it.
"""
import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy

import kernelc
from kernelc.errors import PrecisionWarning
from kernelc.rules.nonlinearities import KernelMap, kernel_map
from kernelc.runtime.driver import PRECISION_TOLERANCE, precision_estimate, x64_context


def deep(phi="erf", w_std=5.0, depth=10):
    return ("network deep\ngroup Z2\ninput 5 x 1 channels 1\nflatten\n"
            + f"dense(8, W_std={w_std}, b_std=0.1)\n{phi}\n" * depth + "dense(1)\n")


@pytest.fixture(scope="module")
def compile_spec():
    return kernelc.compile


@pytest.fixture(scope="module")
def erf_net(compile_spec):
    """Small and quick to compile: 3 erf layers with W_std = 30 (χ(1) ≈ 19-27)."""
    return compile_spec(deep(depth=3, w_std=30.0))


def near_duplicates(s, seed=2):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(1, 5, 1, 1))
    return np.concatenate([x, x + s * rng.normal(size=x.shape)])


def _run(net, x, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = net.kernel_fn(x, **kwargs)
    estimate = precision_estimate()  # before another call clears it
    return out, [w for w in caught if issubclass(w.category, PrecisionWarning)], estimate


def _normalised_error(got, ref):
    scale = np.sqrt(np.outer(np.diag(ref), np.diag(ref)))
    return float(np.max(np.abs(got - ref) / scale))


def _check_warning(net, x, layers, chi):
    g32, caught, (nngp, ntk, rows) = _run(net, x)
    g64 = net.kernel_fn(x, dtype="float64")
    # the warning is true: float32 is off by more than the 1e-3 the issue asks for
    assert _normalised_error(g32["ntk"], g64["ntk"]) > 1e-3
    assert len(caught) == 1
    message = str(caught[0].message)
    assert re.search(r"above tolerance from erf\d+ \(line \d+\) on", message), message
    assert "NNGP ~" in message and "NTK ~" in message
    assert f"stretch correlations by up to {chi}" in message
    assert "dtype='float64'" in message
    assert [r[0].split()[0] for r in rows] == [f"erf{i}" for i in range(1, layers + 1)]
    assert min(nngp, ntk) > PRECISION_TOLERANCE


def test_chaotic_erf_near_duplicates_warn_naming_the_layer(erf_net):
    # χ(1) for this draw; (the draw of seed 2 rounds, by chance, to a float32 NTK only 1e-4 off
    # with the fast arcsine (3e-2 with atan2), so it cannot show an error above 1e-3)
    _check_warning(erf_net, near_duplicates(1e-5, seed=3), 3, "29")


@pytest.mark.slow
def test_the_issue_reproducer_warns(compile_spec):
    """10 layers dense(8, W_std=5) + erf, two inputs 1e-5 apart: float32 is ~1e-2 off (NTK)."""
    _check_warning(compile_spec(deep()), near_duplicates(1e-5, seed=1), 10, "3.")


def test_nngp_only_request_checks_the_nngp_alone(erf_net):
    _, caught, (_, ntk, _) = _run(erf_net, near_duplicates(1e-5), get="nngp")
    assert len(caught) == 1 and np.isnan(ntk)
    assert "NNGP ~" in str(caught[0].message) and "NTK" not in str(caught[0].message)


def test_distant_inputs_of_the_same_network_do_not_warn(erf_net):
    x = np.random.default_rng(1).normal(size=(2, 5, 1, 1))  # N = 2: the compiled shapes again
    g32, caught, (nngp, ntk, _) = _run(erf_net, x)
    assert caught == []
    assert max(nngp, ntk) < PRECISION_TOLERANCE
    g64 = erf_net.kernel_fn(x, dtype="float64")
    for name in ("nngp", "ntk"):  # and the estimate bounds the actual error
        assert _normalised_error(g32[name], g64[name]) < {"nngp": nngp, "ntk": ntk}[name]


def test_identical_inputs_are_self_pairs_and_do_not_warn(erf_net):
    """Pairs of bit-identical inputs come from the self pass, whose correlations are exact."""
    x = near_duplicates(0.0)
    assert _run(erf_net, x)[1] == []
    assert _run(erf_net, x[:1], x2=x)[1] == []


def test_float64_traces_nothing_and_is_unchanged(compile_spec, erf_net):
    x = near_duplicates(1e-5)
    g64, caught, _ = _run(erf_net, x, dtype="float64")
    assert caught == []
    module = erf_net.module
    with x64_context("float64"):
        xa = jnp.asarray(x, "float64")
        jaxpr = str(jax.make_jaxpr(lambda a: module._propagate(a, a, None, None, True))(xa))
    assert "callback" not in jaxpr
    original = KernelMap.emit_precision
    try:
        KernelMap.emit_precision = lambda self, *a, **k: "pass"
        plain = compile_spec(deep(depth=3, w_std=30.0))
    finally:
        KernelMap.emit_precision = original
    assert "track_precision" not in plain.source
    reference = plain.kernel_fn(x, dtype="float64")
    for name in ("nngp", "ntk"):
        np.testing.assert_array_equal(g64[name], reference[name])


def test_relu_is_not_chaotic_and_its_nngp_does_not_warn(compile_spec):
    net = compile_spec(deep("relu", 2 ** 0.5, depth=3))
    x = near_duplicates(1e-5)
    g32, caught, (nngp, _, rows) = _run(net, x, get="nngp")
    assert caught == [] and nngp < 1e-5
    np.testing.assert_allclose(g32, net.kernel_fn(x, get="nngp", dtype="float64"), rtol=1e-5)
    assert max(r[3] for r in rows) <= 1.0 + 1e-6  # relu: χ(1) = 1


def test_the_emitted_statement_names_the_map_and_the_layer():
    relu, erf = kernel_map("relu"), kernel_map("erf")
    assert relu.homogeneous and kernel_map("leaky_relu", (0.2,)).homogeneous
    assert not erf.homogeneous and not kernel_map("gelu").homogeneous
    line = erf.emit_precision("k11", "k_dense2", "k22", "erf2 (line 8)")
    comment, call = line.split("\n", 1)
    assert comment.startswith("# float32: estimate the rounding error after erf2")
    assert call.startswith("track_precision('erf2 (line 8)',\n")
    assert "k11, k_dense2, k22, want_ntk, stats, self_pairs, 'smooth',\n" in call
    # the FAST_MAP_BOUNDS rows of the fast helpers its K⁺ and K̇ call (erf's K̇: none)
    assert call.endswith("fast_angles=(('asin',), ()))  # the fast angles K⁺ and K̇ call")
    assert "fast_angles" not in kernel_map("sin").emit_precision("k11", "k12", "k22", "sin1")
    assert relu.precision_kind == "homogeneous"
    # φ with kinks or from quadrature: no Cauchy–Schwarz bound from the variances
    assert kernel_map("gelu").precision_kind == kernel_map("poly", (0, 1, 0.5)).precision_kind \
        == "smooth"
    assert kernel_map("phi", expr=sympy.sin(sympy.Symbol("x")) ** 3 + sympy.tanh(
        sympy.Symbol("x"))).precision_kind == "quadrature"
    compile(call, "<line>", "eval")  # one Python expression


def test_check_precision_false_skips_the_estimate(erf_net):
    x = near_duplicates(1e-5)
    checked, caught, _ = _run(erf_net, x)
    assert len(caught) == 1
    unchecked, caught, (nngp, ntk, rows) = _run(erf_net, x, check_precision=False)
    assert caught == [] and rows == [] and nngp == ntk == 0.0
    for name in ("nngp", "ntk"):  # the estimate never feeds back into the kernels
        np.testing.assert_allclose(unchecked[name], checked[name], rtol=1e-6)


def test_the_cli_prints_the_warning_as_one_line(tmp_path, capsys):
    from kernelc.cli import main
    spec = tmp_path / "deep.kc"
    spec.write_text(deep(depth=3, w_std=30.0))
    np.savez(tmp_path / "x.npz", x=near_duplicates(1e-5))
    assert main(["kernel", str(spec), "--data", str(tmp_path / "x.npz"),
                 "--out", str(tmp_path / "k.npz")]) == 0
    err = capsys.readouterr().err
    assert err.startswith("kernelc: warning: float32 kernels may be inaccurate")
    assert "above tolerance from erf" in err and "(CLI: --dtype float64)" in err
    assert "PrecisionWarning" not in err and "cli.py" not in err  # no Python source location


def test_an_estimate_past_one_says_every_digit_may_be_lost():
    from kernelc.runtime.driver import warn_imprecise
    from kernelc.runtime.maps import PRECISION_ESTIMATES
    PRECISION_ESTIMATES.clear()
    PRECISION_ESTIMATES[(0, "erf1 (line 5)")] = [2e-4, 3e-4, 30.0, 0.1]
    PRECISION_ESTIMATES[(1, "erf2 (line 7)")] = [5.0, 7e3, 30.0, 0.5]
    try:
        with pytest.warns(PrecisionWarning) as caught:
            warn_imprecise("float32", ("nngp", "ntk"))
    finally:
        PRECISION_ESTIMATES.clear()
    message = str(caught[0].message)
    assert "NNGP over 100% and NTK over 100%" in message
    assert "above tolerance from erf2 (line 7) on" in message
    assert "stretch correlations by up to 30x per layer" in message


def test_the_host_chain_of_relu_maps_equals_the_graph_chain(compile_spec, monkeypatch):
    """Runs of relu-like maps are chained per pair on the host (in numpy float64, K̇ from the
    compiler's two_slopes) unless a map that needs every entry's error comes next (erf: the run is evaluated in
    the graph first). Forcing every map into the graph gives the same estimates: e_K and the
    slope to rounding, e_Θ and the gain to the float32 cancellation in K̇(hi) − K̇(hi − e)."""
    from kernelc.runtime import maps

    def mixed(name):
        layer = "dense(8, W_std={}, b_std=0.1)\n{}\n"
        return (f"network {name}\ngroup Z2\ninput 5 x 1 channels 1\nflatten\n"
                + layer.format(1.5, "relu") * 2 + layer.format(3, "erf")
                + layer.format(1.5, "relu") + "dense(1)\n")

    x = near_duplicates(1e-3)
    *_, host = _run(compile_spec(mixed("host")), x, get="nngp")  # the NTK's: one step's lines
    graph_only = maps.track_precision  # without the constants: the chain stays in the graph
    monkeypatch.setattr(maps, "track_precision",
                        lambda *args, two_slopes=None, **kw: graph_only(*args, **kw))
    *_, graph = _run(compile_spec(mixed("graph")), x, get="nngp")
    assert [r[0] for r in host[2]] == [r[0] for r in graph[2]] == [
        "relu1 (line 6)", "relu2 (line 8)", "erf1 (line 10)", "relu3 (line 12)"]
    for h, g in zip(host[2], graph[2]):
        np.testing.assert_allclose([h[1], h[3]], [g[1], g[3]], rtol=1e-6)


@pytest.mark.parametrize("name, args, constants", [
    ("relu", (), (0.5, 0.5, 0.0)), ("abs", (), (1.0, 1.0, -1.0)), ("identity", (), (1, 1, 1)),
    ("leaky_relu", (0.2,), (0.52, 0.52, 0.2)), ("leaky_relu", (-1.5,), (1.625, 1.625, -1.5)),
    ("erf", (), None), ("gelu", (), None)])
def test_two_slopes_of_the_relu_like_maps(name, args, constants):
    """φ = a·x (x > 0), b·x (x < 0): K⁺(1,1,1) = K̇(1,1,1) = (a² + b²)/2, K̇(1,−1,1) = ab, and
    K̇ linear in θ = arccos ρ between them (what the host's chain evaluates), checked here
    against the printed K̇ run by JAX in float32; any other map has none (its chain stays in
    the graph)."""
    from kernelc.runtime import maps
    kmap = kernel_map(name, args)
    got = kmap.two_slopes
    if constants is None:
        assert got is None
        assert "two_slopes" not in kmap.emit_precision("k11", "k12", "k22", "erf1 (line 1)")
    else:
        np.testing.assert_allclose(got, constants, rtol=1e-12, atol=1e-15)
        assert f"two_slopes=({', '.join(map(repr, got))})" in kmap.emit_precision(
            "k11", "k12", "k22", "relu1 (line 1)")
        namespace = maps.namespace("jax")
        kdot = eval(f"lambda k11, k12, k22: {kmap.emit_jax('k11', 'k12', 'k22')[1]}", namespace)
        rho = np.linspace(-1, 1, 9, dtype=np.float32)
        np.testing.assert_allclose(maps._two_slope_kdot(*got[1:], 1.0, rho, 1.0),
                                   np.asarray(kdot(np.ones(9, np.float32), rho,
                                                   np.ones(9, np.float32))), atol=1e-6)


def test_a_smooth_map_bounds_its_error_from_the_variances(compile_spec, monkeypatch):
    """erf is smooth: while the Cauchy–Schwarz bound from the variances (slope ≤ √(χ₁χ₂), the
    change of K̇ ≤ e √(g₁g₂)) stays below PRECISION_SMALL, no entry is visited. The bound is
    never below the per-entry estimate (the slope at ρ = 1 against the slope at the pairs' own
    correlations: larger for distant inputs) and still above the actual float32 error."""
    from kernelc.runtime.maps import PRECISION_SMALL

    def erf_net(name):
        return compile_spec(f"network {name}\n" + deep("erf", 1.5, depth=2).split("\n", 1)[1])

    x = np.random.default_rng(5).normal(size=(3, 5, 1, 1))
    net = erf_net("smooth")
    g32, caught, bound = _run(net, x)
    assert caught == [] and bound[1] <= PRECISION_SMALL
    monkeypatch.setattr(KernelMap, "smooth", property(lambda self: False))
    _, _, entry = _run(erf_net("per_entry"), x)
    assert "'smooth',\n" in net.source and "'closed form'" not in net.source  # erf: fast_angles follows
    for b, e in zip(bound[2], entry[2]):
        assert b[0] == e[0]
        np.testing.assert_array_less(np.array(e[1::2]) * (1 - 1e-6), b[1::2])  # e_K, slope
        # e_Θ and the gain: the per-entry K̇(hi) − K̇(lo) is itself a float32 difference of
        # numbers ~0.6, so it is known to ~2 ulp only
        np.testing.assert_array_less(np.array(e[2::2]) - 2.0 ** -22, b[2::2])
    assert bound[2][1][1] > 1.3 * entry[2][1][1]  # the bound: larger where the chain is longer
    g64 = net.kernel_fn(x, dtype="float64")
    assert _normalised_error(g32["nngp"], g64["nngp"]) <= bound[0]
    assert _normalised_error(g32["ntk"], g64["ntk"]) <= bound[1]
