"""Building finite networks: widths, parameter shapes, input checks, the CompiledKernel API."""
import jax
import numpy as np
import pytest

import kernelc
from kernelc.errors import InputError, KernelcError, ShapeError
from kernelc.network import build, network

P4 = """network small
group p4
input 4 x 4 channels 3
lift(size=3, W_std=1.4, b_std=0.1)
relu
gconv(size=3, W_std=1.4, rotations=[0, 2])
relu
group_pool
dense(7, W_std=1.2, b_std=0.1)
relu
dense(5)
"""


def test_param_shapes_and_widths():
    net = network(kernelc.check(P4))
    params = jax.eval_shape(lambda k: net.init(k, (4, 4, 3), width=6), jax.random.PRNGKey(0))
    shapes = jax.tree_util.tree_map(lambda a: a.shape, params)
    assert shapes == {"lift1": {"W": (9, 3, 6), "b": (6,)}, "gconv1": {"W": (9, 2, 6, 6)},
                      "dense1": {"W": (6, 6), "b": (6,)}, "dense2": {"W": (6, 5)}}
    # width=None keeps the declared sizes where there are any, and needs them elsewhere
    with pytest.raises(KernelcError, match="lift1 has no width="):
        net.init(jax.random.PRNGKey(0), (4, 4, 3))
    assert net.output_shape(2, 6) == (2, 5)


def test_spec_widths_are_used_without_a_width_argument():
    text = P4.replace("lift(size=3,", "lift(size=3, width=4,").replace(
        "gconv(size=3,", "gconv(size=3, width=2,")
    net = network(kernelc.check(text))
    shapes = lambda *a: jax.eval_shape(lambda k: net.init(k, *a), jax.random.PRNGKey(0))
    params = shapes()
    assert params["gconv1"]["W"].shape == (9, 2, 4, 2) and params["dense1"]["W"].shape == (2, 7)
    # an explicit width overrides every hidden layer, the readout keeps its 5 outputs
    params = shapes(None, 3)
    assert params["dense1"]["W"].shape == (3, 3) and params["dense2"]["W"].shape == (3, 5)


def test_layers_are_independent_and_seeded():
    net = network(kernelc.check(P4))
    init = jax.jit(net.init, static_argnums=(1, 2))
    a = init(jax.random.PRNGKey(1), None, 48)
    b = init(jax.random.PRNGKey(1), None, 48)
    c = init(jax.random.PRNGKey(2), None, 48)
    np.testing.assert_array_equal(a["lift1"]["W"], b["lift1"]["W"])
    assert not np.allclose(a["lift1"]["W"], c["lift1"]["W"])
    w = np.asarray(a["gconv1"]["W"])
    assert abs(w.mean()) < 0.02 and abs(w.std() - 1) < 0.02  # N(0, 1) in the NTK param.
    assert abs(np.asarray(a["lift1"]["b"]).std() - 1) < 0.4


def test_input_checks():
    init, apply = build(kernelc.check(P4))
    params = jax.eval_shape(lambda k: init(k, (1, 4, 4, 3), 2), jax.random.PRNGKey(0))  # batch ok
    with pytest.raises(InputError, match="input_shape"):
        init(jax.random.PRNGKey(0), (5, 5, 3), 2)
    with pytest.raises(InputError, match="input channel"):
        init(jax.random.PRNGKey(0), (4, 4, 2), 2)
    with pytest.raises(InputError, match="width must be a positive integer"):
        init(jax.random.PRNGKey(0), None, 0)
    with pytest.raises(InputError, match="x must have shape"):
        apply(params, np.zeros((2, 5, 5, 3)))
    # dtypes: unreadable ones were numpy's TypeError, integers JAX's ValueError, and float64
    # outside the 64-bit mode came back as float32 with only a warning
    for dtype in ("foo", None, "int32", 3):
        with pytest.raises(InputError, match=r"dtype must be a floating dtype \(float32, "
                                             r"float64, bfloat16, float16\), got "):
            init(jax.random.PRNGKey(0), None, 2, dtype)
    with pytest.raises(InputError, match=r"dtype=float64 needs JAX's 64-bit mode: draw the "
                                         r"parameters inside `with jax.enable_x64\(True\):`"):
        init(jax.random.PRNGKey(0), None, 2, "float64")
    with jax.enable_x64(True):
        drawn = jax.eval_shape(lambda k: init(k, None, 2, "float64"), jax.random.PRNGKey(0))
    assert drawn["lift1"]["W"].dtype == np.float64
    one = network(kernelc.check(P4.replace("channels 3", "channels 1")))
    p1 = jax.eval_shape(lambda k: one.init(k, (4, 4), 2), jax.random.PRNGKey(0))
    assert jax.eval_shape(one.apply, p1, np.ones((2, 4, 4))).shape == (2, 5)  # no channel axis


def test_residual_with_mismatched_channels_is_refused():
    text = """network bad
group p4
input 4 x 4 channels 3
lift(size=3, width=4)
residual { gconv(size=3, width=5) }
group_pool
dense(1)
"""
    net = network(kernelc.check(text))
    with pytest.raises(ShapeError, match="different channel counts"):
        net.channels()
    assert net.channels(4)[net.typed.output_node] == 1  # one width for all is fine


def test_compiled_kernel_exposes_init_and_apply():
    compiled = kernelc.compile("specs/p2_small.kc")
    assert compiled.network is compiled.network  # cached
    params = compiled.init_fn(jax.random.PRNGKey(0), width=3)
    out = compiled.apply_fn(params, np.ones((2, 12, 12, 2)))
    assert out.shape == (2, 1) and np.all(np.isfinite(out))


@pytest.mark.parametrize("path", ["specs/p4_residual.kc", "specs/cnn_histology.kc",
                                  "specs/c2v_custom.kc", "specs/p6_hexagonal.kc",
                                  "specs/o3d_volume.kc", "specs/p4m_mnist.kc"])
def test_every_shipped_spec_builds(path):
    typed = kernelc.check(path)
    net = network(typed)
    params = jax.eval_shape(lambda k: net.init(k, None, 2), jax.random.PRNGKey(0))
    x = np.ones((1,) + tuple(typed.spec.input.shape) + (typed.spec.input.channels,))
    out = jax.eval_shape(net.apply, params, x)  # shapes only: no compilation
    assert out.shape == net.output_shape(1, 2)


def test_readout_nngp_needs_a_dense_output_layer():
    pooled = "network pooled\ngroup Z2\ninput 4 x 4 channels 1\nconv(size=3)\nrelu\navg_pool\nflatten\n"
    net = network(kernelc.check(pooled))
    with pytest.raises(KernelcError, match=r"^error: readout_nngp needs a network whose output "
                                           r"layer is dense$"):
        net.readout_nngp({}, np.zeros((1, 4, 4, 1)))
