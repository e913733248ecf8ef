"""runtime.stencils.with_theta: one call of a filter sum on K and Θ stacked gives each one's
sum, the same numbers as separate calls; no Θ gives (S(K), None)."""
import numpy as np
import jax.numpy as jnp

from kernelc.runtime.stencils import reduced_stencil, with_theta

ROT = [np.array(m) for m in ([[1, 0], [0, 1]], [[0, -1], [1, 0]], [[-1, 0], [0, -1]],
                             [[0, 1], [-1, 0]])]
TERMS = tuple(tuple((tuple(y), tuple(int(c) for c in q @ np.array(y)))
                    for y in [(a, b) for a in (-1, 0, 1) for b in (-1, 0, 1)]) for q in ROT)


def test_with_theta_equals_two_calls():
    rng = np.random.default_rng(0)
    k, t = (jnp.asarray(rng.normal(size=(3, 4, 5, 5, 5, 5))) for _ in range(2))
    args = (TERMS, ((1, 1), (1, 1)), (5, 5), "same")
    sk, st = with_theta(reduced_stencil, k, t, *args)
    np.testing.assert_array_equal(sk, reduced_stencil(k, *args))
    np.testing.assert_array_equal(st, reduced_stencil(t, *args))
    only, none = with_theta(reduced_stencil, k, None, *args)
    assert none is None
    np.testing.assert_array_equal(only, sk)


def test_pairwise_sum_is_the_sum_over_any_axes():
    from kernelc.runtime.driver import x64_context
    from kernelc.runtime.stencils import pairwise_sum
    x = np.random.default_rng(1).normal(size=(3, 5, 7, 4, 9))
    for axes, keepdims in [((1, 2, 3, 4), False), ((1, 2), True), ((0, 2), False), ((3,), True),
                           ((1, 2, 3), True), ((4,), False)]:
        with x64_context("float64"):
            got = np.asarray(pairwise_sum(jnp.asarray(x), axes, keepdims))
        np.testing.assert_allclose(got, x.sum(axis=axes, keepdims=keepdims), rtol=1e-12,
                                   atol=1e-12)


def test_pairwise_sum_stays_accurate_in_float32_with_kernelcs_xla_options():
    """A pool of 262,144 positive entries per pair, fused with its producer and compiled as
    the driver compiles the passes: within a few roundoffs of the float64 sum (a running sum
    is ~√(n/3) u ≈ 2e-5 off; the proven bound is (⌈log₂ n⌉ + 30) u ≈ 2.9e-6)."""
    import jax
    from kernelc.runtime import driver
    from kernelc.runtime.stencils import pairwise_sum
    x = (np.random.default_rng(0).random((4, 4, 16, 16, 16, 16)) + 0.5).astype(np.float32)
    lowered = jax.jit(lambda a: pairwise_sum(jnp.sqrt(a), (1, 2, 3, 4, 5))).trace(x).lower()
    got = np.asarray(driver.compile_lowered(lowered, [x])(x), np.float64)
    exact = np.sqrt(x.astype(np.float64)).sum(axis=(1, 2, 3, 4, 5))
    assert np.max(np.abs(got - exact) / exact) < 5e-7
