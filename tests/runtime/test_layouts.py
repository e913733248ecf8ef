"""Run-time layouts: the variances a nonlinearity reads (kernelc.runtime.layouts)."""
import numpy as np

from kernelc.runtime.layouts import pair_variances, self_diagonal


def test_pair_variances_reads_a_self_pairs_own_diagonal():
    """pair_variances: every pair's own diagonal (True), the self pass's (None), or per pair."""
    k = np.random.default_rng(0).normal(size=(3, 2, 2, 2, 2))
    own = self_diagonal("box_full", 2, k)
    stats_a, stats_b = [np.full((3, 2, 2), 7.0)], [np.full((3, 2, 2), 9.0)]
    for v in pair_variances("box_full", 2, k, None, None, 0, True):
        np.testing.assert_array_equal(v, own)
    v_a, v_b = pair_variances("box_full", 2, k, stats_a, stats_b, 0, None)
    assert v_a is stats_a[0] and v_b is stats_b[0]
    flags = np.array([True, False, True])
    v_a, v_b = pair_variances("box_full", 2, k, stats_a, stats_b, 0, flags)
    np.testing.assert_array_equal(np.asarray(v_a)[flags], own[flags])
    np.testing.assert_array_equal(np.asarray(v_b)[flags], own[flags])
    assert np.all(np.asarray(v_a)[1] == 7.0) and np.all(np.asarray(v_b)[1] == 9.0)
