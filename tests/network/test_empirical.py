"""Empirical kernels: the NTK methods agree, NNGP estimates and Monte Carlo bookkeeping."""
import jax
import jax.flatten_util  # noqa: F401 - ravel_pytree
import jax.numpy as jnp
import numpy as np
import pytest

import kernelc
from kernelc.errors import InputError
from kernelc.network import (empirical_nngp, empirical_ntk, monte_carlo, network,
                             output_product)

SPEC = """network emp
group p4
input 4 x 4 channels 2
lift(size=3, W_std=1.4, b_std=0.2)
relu
gconv(size=1, W_std=1.3)
group_pool
dense(3, b_std=0.1)
"""


@pytest.fixture(scope="module")
def net():
    return network(kernelc.check(SPEC))


@pytest.fixture(scope="module")
def data():
    return np.random.default_rng(0).normal(size=(3, 4, 4, 2)).astype(np.float32)


def test_ntk_methods_agree_with_an_explicit_jacobian(net, data):
    params = net.init(jax.random.PRNGKey(0), None, 4)
    x2 = data[:2] * 0.5
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    jac = jax.jit(jax.jacrev(lambda v: net.apply(unravel(v), jnp.concatenate([data, x2]))))(flat)
    j1, j2 = np.asarray(jac[:3]), np.asarray(jac[3:])          # (N, n_out, P)
    want = np.einsum("ikp,jkp->ijk", j1, j2)
    for kw in ({"method": "jacobian"}, {"method": "jacobian", "batch_size": 1},
               {"method": "ntvp"}, {"method": "auto", "max_memory": 1}):
        got = np.asarray(empirical_ntk(net.apply, params, data, x2, reduce="none", **kw))
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=str(kw))
    mean = np.asarray(empirical_ntk(net.apply, params, data))   # x2 = x1, averaged over units
    full = np.einsum("ikp,jkp->ij", j1, j1) / j1.shape[1]
    np.testing.assert_allclose(mean, full, rtol=1e-4, atol=1e-6)
    with pytest.raises(InputError):
        empirical_ntk(net.apply, params, data, method="bogus")


def test_nngp_estimates(net, data):
    ps = [net.init(jax.random.PRNGKey(i), None, 4) for i in range(2)]
    prods = [np.asarray(output_product(net.apply, p, data)) for p in ps]
    np.testing.assert_allclose(np.asarray(empirical_nngp(net.apply, ps, data)),
                               np.mean(prods, axis=0), rtol=1e-5, atol=1e-7)
    stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *ps)
    np.testing.assert_allclose(np.asarray(empirical_nngp(net.apply, stacked, data)),
                               np.mean(prods, axis=0), rtol=1e-5, atol=1e-7)
    out = np.asarray(net.apply(ps[0], data))
    np.testing.assert_allclose(prods[0], out @ out.T / 3, rtol=1e-5, atol=1e-7)
    # the readout-averaged estimate: σ_w²/n h·hᵀ + σ_b² of the features entering dense(3)
    pool = net.typed.inputs(net.readout_node)[0]
    h = np.asarray(net.features(ps[0], data, pool), np.float64)
    np.testing.assert_allclose(np.asarray(net.readout_nngp(ps[0], data)),
                               h @ h.T / h.shape[1] + 0.1 ** 2, rtol=1e-5)


def test_monte_carlo_samples_do_not_depend_on_chunking(net, data):
    a = monte_carlo(net.init, net.apply, data, width=3, samples=3, seed=4, chunk=1)
    b = monte_carlo(net.init, net.apply, data, width=3, samples=5, seed=4, chunk=4)
    assert a["nngp"].shape == (3, 3, 3) and b["ntk"].shape == (5, 3, 3)
    for k in ("nngp", "ntk"):
        np.testing.assert_allclose(a[k], b[k][:3], rtol=1e-5, atol=1e-7)
    with pytest.raises(InputError):
        monte_carlo(net.init, net.apply, data, width=3, samples=0)


def test_float64_networks(net, data):
    mc = monte_carlo(net.init, net.apply, data, data[:1], width=3, samples=2, dtype="float64",
                     get=("nngp",))
    assert set(mc) == {"nngp"} and mc["nngp"].shape == (2, 3, 1)
    assert mc["nngp"].dtype == np.float64
    with jax.enable_x64(True):
        params = jax.eval_shape(lambda k: net.init(k, None, 3, "float64"), jax.random.PRNGKey(0))
        assert params["lift1"]["W"].dtype == jnp.float64


def test_argument_errors_name_the_argument(net, data):
    # refused before any parameter or input is looked at
    with pytest.raises(InputError, match=r"method must be 'auto', 'jacobian' or 'ntvp', got 'bogus'"):
        empirical_ntk(net.apply, None, data, method="bogus")
    with pytest.raises(InputError, match=r"reduce must be 'mean' or 'none', got 'sum'"):
        empirical_ntk(net.apply, None, data, reduce="sum")
    with pytest.raises(InputError, match=r"empirical_nngp needs at least one set of parameters"):
        empirical_nngp(net.apply, [], data)
    for bad in (0, True, 2.0):
        with pytest.raises(InputError, match=rf"samples must be a positive integer, got {bad!r}"):
            monte_carlo(net.init, net.apply, data, width=3, samples=bad)


def test_monte_carlo_takes_one_kernel_name_as_a_string(net, data):
    # tuple("nngp") was its letters: refused as "got ('n', 'n', 'g', 'p')"
    out = monte_carlo(net.init, net.apply, data[:2], width=3, samples=2, get="nngp")
    assert set(out) == {"nngp"} and out["nngp"].shape == (2, 2, 2)
    with pytest.raises(InputError, match=r"get must name 'nngp', 'ntk' and/or 'nngp_readout', "
                                         r"got None"):
        monte_carlo(net.init, net.apply, data, width=3, samples=2, get=None)
