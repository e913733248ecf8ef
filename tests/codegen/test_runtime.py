"""The generated module's runtime: input validation, memory budget, tiling, dtype, get=."""
import numpy as np
import pytest

import kernelc
from kernelc.errors import InputError, KernelcError, MemoryBudgetError

SPEC = """network tiny
group p4
input 5 x 5 channels 2
lift(size=3, W_std=1.3, b_std=0.1)
relu
gconv(size=3, W_std=1.2)
relu
group_pool
dense(1)
"""


@pytest.fixture(scope="module")
def net():
    return kernelc.compile(SPEC)


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).normal(size=(5, 5, 5, 2))


def test_gram_is_symmetric_and_matches_cross_call(net, x):
    full = net.kernel_fn(x, dtype="float64")
    cross = net.kernel_fn(x, x, dtype="float64")
    for name in ("nngp", "ntk"):
        np.testing.assert_allclose(full[name], full[name].T, rtol=1e-12)
        np.testing.assert_allclose(full[name], cross[name], rtol=1e-10)


def _budget_for_tiles_of(net, n, pairs, dtype="float32"):
    """The smallest of a grid of budgets under which kernel_fn(x[:n]) runs tiles of ``pairs``
    pairs (the tile is sized by XLA's report of the compiled passes: found by asking)."""
    for budget in np.geomspace(20_000, 20_000_000, 60).astype(int):
        try:
            plan = net.module.plan_memory(n, None, dtype, int(budget), True, compiled=True)
        except MemoryBudgetError:
            continue
        if plan["tile_pairs"] == pairs:
            return int(budget)
    raise AssertionError(f"no budget gives tiles of {pairs} pairs")


def test_tiling_does_not_change_the_result(net, x):
    whole = net.kernel_fn(x, dtype="float64")
    budget = _budget_for_tiles_of(net, 5, 2, "float64")
    tiled = net.kernel_fn(x, dtype="float64", max_memory=budget)
    for name in whole:
        np.testing.assert_allclose(tiled[name], whole[name], rtol=1e-12)


def test_request_that_cannot_fit_is_refused_with_estimate(net, x):
    with pytest.raises(MemoryBudgetError, match=r"needs at least .* more than the budget of"):
        net.kernel_fn(x, max_memory=1000)


def test_memory_budget_text_is_parsed(net):
    plan = net.module.plan_memory(10, None, "float32", "1GB")
    assert plan["budget"] == 1 << 30
    with pytest.raises(InputError, match="cannot read the memory budget"):
        net.module.plan_memory(10, None, "float32", "lots")


def test_float32_default_and_float64_option(net, x):
    g32 = net.kernel_fn(x, get="nngp")
    g64 = net.kernel_fn(x, get="nngp", dtype="float64")
    assert g32.dtype == np.float32 and g64.dtype == np.float64
    np.testing.assert_allclose(g32, g64, rtol=1e-4)
    import jax.numpy as jnp
    assert jnp.ones(1).dtype == jnp.float32  # no global x64 flag was flipped


def test_single_channel_inputs_may_omit_the_channel_axis():
    net = kernelc.compile("group p2\ninput 4 x 4 channels 1\nlift(3)\nrelu\ngroup_pool\ndense(1)")
    x = np.random.default_rng(1).normal(size=(3, 4, 4))
    a = net.kernel_fn(x, get="nngp")
    b = net.kernel_fn(x[..., None], get="nngp")
    np.testing.assert_allclose(a, b)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((2, 4, 4, 2)), r"x1 must have shape \(N, 5, 5, 2\)"),
    (np.zeros((0, 5, 5, 2)), "holds no inputs"),
    (np.full((2, 5, 5, 2), np.nan), "contains 100 NaN or infinite values"),
    (np.array([["a"]]), "must hold real numbers"),
])
def test_bad_inputs_get_clear_errors(net, bad, message):
    with pytest.raises(InputError, match=message):
        net.kernel_fn(bad)


def test_bad_get_and_dtype(net, x):
    with pytest.raises(InputError, match="get must name 'nngp' and/or 'ntk'"):
        net.kernel_fn(x, get=("nngp", "ntkk"))
    with pytest.raises(InputError, match="dtype must be float32 or float64"):
        net.kernel_fn(x, dtype="int8")


def test_errors_are_kernelc_errors(net):
    with pytest.raises(KernelcError):
        net.kernel_fn(np.zeros((1, 2)))


def test_get_only_nngp_skips_ntk(net, x):
    out = net.kernel_fn(x, get=("nngp",))
    assert set(out) == {"nngp"}


def test_progress_bar_is_written_when_asked(net, x, capsys):
    budget = _budget_for_tiles_of(net, 5, 2)
    net.kernel_fn(x, max_memory=budget, progress=True)
    err = capsys.readouterr().err
    # 10 pairs i < j, 2 pairs per tile under this budget: 5 tiles
    assert "kernelc: Gram tiles" in err and "5/5" in err


@pytest.mark.parametrize("budget", ["inf", "1e400", float("nan"), float("inf"), [1], -5, "0", True])
def test_memory_budget_that_is_not_a_size_is_refused(net, x, budget):
    with pytest.raises(InputError, match="the memory budget must be a positive, finite number"):
        net.kernel_fn(x, max_memory=budget)


def test_memory_budget_from_the_environment_is_checked(net, x, monkeypatch):
    monkeypatch.setenv("KERNELC_MAX_MEMORY", "inf")
    with pytest.raises(InputError, match="got 'inf'"):
        net.kernel_fn(x)


@pytest.mark.parametrize("dtype, scale, tol", [("float32", 1e-10, 1e-5), ("float64", 1e-78, 1e-9)])
def test_tiny_inputs_do_not_underflow(dtype, scale, tol):
    """A relu network without biases is homogeneous of degree 2 in its input, so tiny inputs
    must give the scaled kernels. k11·k22 of variances ~1e-20 (float32) or ~1e-156 (float64)
    used to underflow and put the kernels 83% off; the maps now scale the product first."""
    net = kernelc.compile("network tiny\ngroup p4\ninput 4 x 4 channels 1\nlift(W_std=1.3)\n"
                          "relu\ngconv(W_std=1.2)\nrelu\ngroup_pool\ndense\n")
    x = np.random.default_rng(5).normal(size=(3, 4, 4, 1))
    ref = net.kernel_fn(x, dtype="float64")
    out = net.kernel_fn(x * scale, dtype=dtype)
    for k in ("nngp", "ntk"):
        err = np.abs(out[k] / scale**2 - ref[k]).max() / np.abs(ref[k]).max()
        assert err <= tol, (k, err)
