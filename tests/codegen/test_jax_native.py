"""JAX-native kernels (issue 12, item 2): ``CompiledKernel.kernel`` is a plain JAX function of
jax arrays (jit, vmap over inputs, grad with respect to inputs and hyperparameters), the
hyperparameters are arguments of the generated ``_propagate`` with the spec's values as
defaults, and a compiled network pickles. One tiny p4 network (4×4 images, relu: the
arc-cosine map whose derivative needs care; circular padding, see the last test) is compiled
once for the module."""
import pickle

import numpy as np
import pytest
import jax
import jax.numpy as jnp

import kernelc
from kernelc.errors import KernelcError
from kernelc.runtime.driver import x64_context
from kernelc.runtime.pure import safe_compiler_options

SPEC = ("network tiny_grad\ngroup p4\ninput 4 x 4 channels 2\n"
        "lift(size=3, W_std=1.3, b_std=0.1, padding=circular)\nrelu\n"
        "gconv(size=3, W_std=1.1, padding=circular)\nrelu\ngroup_pool\n"
        "dense(1, W_std=0.9, b_std=0.2)\n")


@pytest.fixture(scope="module")
def net():
    return kernelc.compile(SPEC)


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).normal(size=(3, 4, 4, 2))


def test_hyperparameters_are_arguments_with_the_spec_values_as_defaults(net):
    assert net.default_params == {"lift1.W_std": 1.3, "lift1.b_std": 0.1, "gconv1.W_std": 1.1,
                                  "dense1.W_std": 0.9, "dense1.b_std": 0.2}
    assert "DEFAULT_PARAMS = {" in net.source
    assert "params['gconv1.W_std'] ** 2 * lin_gconv1" in net.source
    assert "gconv1.b_std" not in net.source  # no bias in the spec: no bias term, no argument


def test_default_params_reproduce_kernel_fn(net, x):
    """The pure path at the defaults gives the tiled driver's numbers (which the baseline test
    ties to the stored kernels), Gram and cross Gram; kernel_fn takes jax arrays too."""
    ref = net.kernel_fn(x, get=("nngp", "ntk"), dtype="float64")
    cross = net.kernel_fn(x[:2], x[1:], get="ntk", dtype="float64")
    with x64_context("float64"):
        out = net.kernel(jnp.asarray(x))
        out_cross = net.kernel(jnp.asarray(x[:2]), jnp.asarray(x[1:]), get="ntk")
        assert isinstance(out["ntk"], jax.Array)
        again = net.kernel_fn(jnp.asarray(x), get="ntk", dtype="float64")
    # not bit for bit: one XLA program (safe_compiler_options) instead of the tiled passes
    # rounds differently, and the relu maps of a self pair amplify it (3.4e-12 measured)
    for name in ("nngp", "ntk"):
        np.testing.assert_allclose(np.asarray(out[name]), ref[name], rtol=1e-11, atol=0)
    np.testing.assert_allclose(np.asarray(out_cross), cross, rtol=1e-11, atol=0)
    np.testing.assert_array_equal(again, ref["ntk"])
    same = net.kernel(x, params=net.default_params, get="nngp")  # float32: all defaults given
    np.testing.assert_allclose(np.asarray(same), ref["nngp"], rtol=1e-5)


def test_traced_hyperparameters_under_jit_with_the_safe_options(net, x):
    """The forward pass under jax.jit with the hyperparameters traced: XLA:CPU's new fusion
    emitters (jaxlib 0.10.2) gave self-pass variances 3e-2 off here; with
    safe_compiler_options() it is op-by-op execution's to rounding, and so is a jitted
    gradient (where the earlier workaround, optimization level 0, was 2e5 off for another
    input set)."""
    with x64_context("float64"):
        p = {k: jnp.asarray(v) for k, v in net.default_params.items()}
        xs = jnp.asarray(x)
        right = net.kernel(xs, get="nngp")
        jitted = jax.jit(lambda a, q: net.kernel(a, get="nngp", params=q),
                         compiler_options=safe_compiler_options())(xs, p)
        np.testing.assert_allclose(np.asarray(jitted), np.asarray(right), rtol=1e-12)


def test_jit_and_vmap_over_inputs(net, x):
    safe = dict(compiler_options=safe_compiler_options())  # docs/jax.md, "Known issue"
    with x64_context("float64"):
        xs = jnp.asarray(x)
        eager = net.kernel(xs[:2], xs[1:], get="nngp")
        p = {"gconv1.W_std": jnp.asarray(1.1)}
        jitted = jax.jit(lambda a, b, q: net.kernel(a, b, get="nngp", params=q), **safe)(
            xs[:2], xs[1:], p)
        np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), rtol=1e-13)
        # a batch of query sets against one training set: vmap over the first argument
        batch = jnp.stack([xs[:2], xs[1:]])
        mapped = jax.jit(jax.vmap(lambda a: net.kernel(a, xs, get="nngp")), **safe)(batch)
        assert mapped.shape == (2, 2, 3)
        full = net.kernel(xs, get="nngp")
        np.testing.assert_allclose(np.asarray(mapped[0]), np.asarray(full[:2]), rtol=1e-13)
        np.testing.assert_allclose(np.asarray(mapped[1]), np.asarray(full[1:]), rtol=1e-13)


def _rel(a, b):
    return abs(float(a) - float(b)) / max(abs(float(b)), 1e-300)


#: the measured agreement of the last run, by kernel and variable (printed with pytest -s)
AGREEMENT = {}


@pytest.mark.parametrize("get, how", [pytest.param("nngp", "op by op", marks=pytest.mark.slow),
                                      ("ntk", "op by op"), ("ntk", "jit")])
def test_grad_matches_finite_differences(net, x, get, how):
    """jax.grad of an off-diagonal Gram entry with respect to an input (along a random
    direction) and to W_std/b_std agrees with central differences to ≤ 1e-6 (float64). The
    gradient runs op by op, or under jax.jit with safe_compiler_options() (docs/jax.md,
    "Known issue": what a training loop should do, ~100× faster per step); the differences
    are taken of CompiledKernel.kernel's own jitted values."""
    h = 1e-5
    with x64_context("float64"):
        xs = jnp.asarray(x)
        v = jnp.asarray(np.random.default_rng(1).normal(size=x[0].shape))

        def entry(x0, params):  # K(x0, x1) of the Gram matrix of (x0, x1, x2)
            return net.kernel(xs.at[0].set(x0), get=get, params=params)[0, 1]
        p = {k: jnp.asarray(val) for k, val in net.default_params.items()}
        grad = jax.grad(entry, argnums=(0, 1))
        if how == "jit":
            grad = jax.jit(grad, compiler_options=safe_compiler_options())
        gx, gp = grad(xs[0], p)
        fd_x = (entry(xs[0] + h * v, p) - entry(xs[0] - h * v, p)) / (2 * h)
        errors = {"x": _rel(jnp.vdot(gx, v), fd_x)}
        for key in ("lift1.W_std", "gconv1.W_std", "dense1.b_std"):
            up, down = dict(p), dict(p)
            up[key], down[key] = p[key] + h, p[key] - h
            errors[key] = _rel(gp[key], (entry(xs[0], up) - entry(xs[0], down)) / (2 * h))
    AGREEMENT[get, how] = errors
    print(get, how, errors)
    assert max(errors.values()) <= 1e-6, errors


@pytest.mark.slow  # 14 s: an SO(3) network's grad (the lattice grads stay fast)
def test_so3_weight_layers_take_their_hyperparameters_as_arguments():
    """The SO(3) family too: σ_w² and σ_b² of lift and gconv (the bias as a Wigner degree-0
    coefficient) are params; grad of an off-diagonal NTK entry w.r.t. W_std = differences."""
    net = kernelc.compile("network s\ngroup SO3\ninput sphere bandlimit 3 channels 2\n"
                          "lift(bandlimit=3, W_std=1.4, b_std=0.1)\nrelu\n"
                          "gconv(bandlimit=3, W_std=1.2)\nrelu\ngroup_pool\n"
                          "dense(1, W_std=1.0, b_std=0.1)\n")
    assert net.default_params == {"lift1.W_std": 1.4, "lift1.b_std": 0.1, "gconv1.W_std": 1.2,
                                  "dense1.W_std": 1.0, "dense1.b_std": 0.1}
    x = np.random.default_rng(0).normal(size=(3,) + net.module.INPUT_SHAPE)
    h, key = 1e-5, "gconv1.W_std"
    with x64_context("float64"):
        xs = jnp.asarray(x)
        np.testing.assert_allclose(np.asarray(net.kernel(xs, get="ntk")),
                                   net.kernel_fn(x, get="ntk", dtype="float64"), rtol=1e-11)
        p = {k: jnp.asarray(v) for k, v in net.default_params.items()}

        def entry(params):
            return net.kernel(xs, get="ntk", params=params)[0, 1]
        grad = jax.grad(entry)(p)[key]
        up, down = dict(p), dict(p)
        up[key], down[key] = p[key] + h, p[key] - h
        error = _rel(grad, (entry(up) - entry(down)) / (2 * h))
    print("so3", key, error)
    assert error <= 1e-6


def test_bad_params_and_inputs_are_refused(net, x):
    with pytest.raises(KernelcError, match="unknown hyperparameter.*gconv1.b_std"):
        net.kernel(x, params={"gconv1.b_std": 0.5})
    with pytest.raises(KernelcError, match="must be a scalar"):
        net.kernel(x, params={"lift1.W_std": jnp.ones(2)})
    with pytest.raises(KernelcError, match="must have shape"):
        net.kernel(x[..., :1])
    with pytest.raises(KernelcError, match="get must name"):
        net.kernel(x, get="both")


def test_tiled_kernel_fn_at_other_params(net, x):
    params = {"lift1.W_std": 0.7, "dense1.b_std": 0.5}
    tiled = net.kernel_fn_with(params)(x, get="ntk", dtype="float64")
    with x64_context("float64"):
        pure = net.kernel(jnp.asarray(x), get="ntk", params=params)
    np.testing.assert_allclose(tiled, np.asarray(pure), rtol=1e-12)
    assert not np.allclose(tiled, net.kernel_fn(x, get="ntk", dtype="float64"))


def test_pickle_round_trip(net, x):
    back = pickle.loads(pickle.dumps(net))
    assert back.source == net.source and back.spec == net.spec
    np.testing.assert_array_equal(back.kernel_fn(x, get="ntk", dtype="float64"),
                                  net.kernel_fn(x, get="ntk", dtype="float64"))
