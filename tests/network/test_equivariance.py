"""Finite networks built from specs are exactly invariant (group_pool nets) or equivariant
(outputs on G) under every element of the point group, for every lattice group and every
equivariant layer kind: lift, gconv (R = H and R ≠ H), nonlinearities, residual sums, concat,
avg_pool, group_pool, dense; same/valid/circular padding."""
import jax
import numpy as np
import pytest

import kernelc
from kernelc.network import build
from kernelc.testing import assert_equivariant

GROUPS = {  # header line, box
    "Z2": ("group Z2", (4, 5)),
    "p2": ("group p2", (4, 6)),
    "p4": ("group p4", (4, 4)),
    "p4m": ("group p4m", (5, 5)),
    "p6": ("group p6", (5, 5)),
    "O": ("group O", (3, 3, 3)),
    "c2v": ("group c2v = generators [[-1, 0], [0, 1]], [[1, 0], [0, -1]]", (4, 6)),
}

BODY = """
lift(size=3, W_std=1.3, b_std=0.1, padding={pad})
relu
gconv(size=3, W_std=1.2, b_std=0.1)
residual {{ erf gconv(size=3, W_std=1.1, rotations=[0]) phi(x * sigmoid(x), degree=8) gconv(size=3, W_std=0.8, b_std=0.2) }}
concat {{ branch {{ gconv(size=1, W_std=1.0) }} branch {{ leaky_relu(0.1) }} }}
abs
"""

TAILS = {"invariant": "group_pool\ndense(3, b_std=0.5)", "group": ""}


def _spec(name, tail, pad="same"):
    header, box = GROUPS[name]
    channels = 1 if len(box) == 3 else 2
    return (f"network eq_{name}\n{header}\ninput {' x '.join(map(str, box))} channels "
            f"{channels}\n" + BODY.format(pad=pad) + tail + "\n"), box + (channels,)


@pytest.mark.parametrize("name", sorted(GROUPS))
@pytest.mark.parametrize("tail", sorted(TAILS))
def test_networks_are_equivariant(name, tail):
    text, shape = _spec(name, TAILS[tail])
    typed = kernelc.check(text)
    init, apply = build(typed)
    apply = jax.jit(apply)  # one compilation instead of op-by-op dispatch for every element
    width = 2 if name == "O" else 3
    params = init(jax.random.PRNGKey(7), shape, width)
    x = np.random.default_rng(0).normal(size=(2,) + shape).astype(np.float32)
    out = np.asarray(apply(params, x))
    assert out.shape == ((2, 3) if tail == "invariant" else
                         (2,) + shape[:-1] + (typed.group.order, 2 * width))
    assert_equivariant(apply, typed.group, x, params=params)


@pytest.mark.parametrize("pad", ["valid", "circular"])
def test_other_paddings_and_avg_pool_keep_equivariance(pad):
    text, shape = _spec("p4m", "avg_pool", pad)
    typed = kernelc.check(text)
    init, apply = build(typed)
    apply = jax.jit(apply)
    params = init(jax.random.PRNGKey(1), shape, 3)
    x = np.random.default_rng(1).normal(size=(2,) + shape)
    assert apply(params, x).shape == (2, 1, 1, 8, 6)
    assert_equivariant(apply, typed.group, x, params=params, output="group")


def test_plain_cnn_with_flatten_and_translation_equivariance():
    # Z2: a plain CNN (conv, avg_pool, flatten, dense); with circular padding a cyclic shift
    # of the input shifts the conv features the same way
    text = ("network cnn\ngroup Z2\ninput 4 x 5 channels 2\n"
            "conv(size=3, W_std=1.4, b_std=0.1, padding=circular)\nrelu\n"
            "conv(size=3, W_std=1.4, padding=circular)\n")
    init, apply = build(kernelc.check(text))
    apply = jax.jit(apply)
    params = init(jax.random.PRNGKey(0), (4, 5, 2), 4)
    x = np.random.default_rng(0).normal(size=(1, 4, 5, 2))
    shifted = np.roll(x, (1, 3), axis=(1, 2))
    np.testing.assert_allclose(np.asarray(apply(params, shifted)),
                               np.roll(np.asarray(apply(params, x)), (1, 3), axis=(1, 2)),
                               atol=1e-5)
    init2, apply2 = build(kernelc.check(text + "avg_pool\nflatten\ndense(2)\n"))
    p = init2(jax.random.PRNGKey(0), (4, 5, 2), 4)
    assert jax.eval_shape(apply2, p, x).shape == (1, 2)


def test_jit_gives_the_same_outputs():
    text, shape = _spec("p4", TAILS["invariant"])
    init, apply = build(kernelc.check(text))
    params = init(jax.random.PRNGKey(3), shape, 3)
    x = np.random.default_rng(3).normal(size=(2,) + shape).astype(np.float32)
    np.testing.assert_allclose(np.asarray(jax.jit(apply)(params, x)),
                               np.asarray(apply(params, x)), atol=1e-6)
