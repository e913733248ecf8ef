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
