"""The general (no right invariance) stencil has two implementations — shifted slices for small
|H|²·|S|, one gather per offset for large groups — and both must equal the reduced path."""
import numpy as np
import pytest

import kernelc
from kernelc.runtime import stencils


@pytest.mark.parametrize("group, padding", [pytest.param("p6", "same", marks=pytest.mark.slow),
                                            pytest.param("p4m", "circular", marks=pytest.mark.slow),
                                            ("p4", "valid"),
                                            pytest.param("p2", "same", marks=pytest.mark.slow)])
def test_gather_and_slice_general_paths_equal_reduced(group, padding, monkeypatch):
    spec = (f"group {group}\ninput 5 x 5 channels 1\nlift(size=3, b_std=0.1, padding={padding})\n"
            f"relu\ngconv(size=3, padding={padding})\nerf\ngroup_pool\ndense(1)")
    x = np.random.default_rng(0).normal(size=(2, 5, 5, 1))
    reduced = kernelc.compile(spec).kernel_fn(x, dtype="float64")
    for limit in (0, 10 ** 6):  # 0 forces gathers, a large limit forces slices
        net = kernelc.compile(spec, identities={"R": False})
        monkeypatch.setattr(stencils, "SLICE_LIMIT", limit)
        general = net.kernel_fn(x, dtype="float64")
        for name in reduced:
            np.testing.assert_allclose(general[name], reduced[name], rtol=1e-12, atol=1e-15)
