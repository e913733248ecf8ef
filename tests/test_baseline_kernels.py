"""Every bundled spec's kernels against the values stored before the runtime redesign
(``tests/baseline_kernels.py``): float64, ≤ 1e-12 relative to the largest entry.

The specs whose kernels take more than ~3 s to jit on two cores run under ``-m slow``.
"""
import warnings

import numpy as np
import pytest

import kernelc
from tests.baseline_kernels import ROOT, STORE, kernels

FAST = {"mlp_qm9", "mnist_cnn", "mnist_p4", "so3_atom", "so3_qm9"}
SPECS = sorted((ROOT / "specs").glob("*.kc"))
#: The stored SO(3) kernels were computed at the grids that were the default then (grid = L);
#: since issue 13 the default grid is chosen for accuracy (docs/so3.md), so these specs are
#: compared at the grid they were stored at, not at today's default: the stored numbers stay.
STORED_GRID = {"so3_atom": 6, "so3_qm9": 4}


def _compiled(spec):
    if spec.stem not in STORED_GRID:
        return kernelc.compile(spec)
    from kernelc.frontend.parser import parse_spec
    grid = f"grid={STORED_GRID[spec.stem]}, "
    text = spec.read_text().replace("lift(", "lift(" + grid).replace("gconv(", "gconv(" + grid)
    return kernelc.compile(parse_spec(text))


@pytest.mark.parametrize("spec", [pytest.param(s, id=s.stem, marks=() if s.stem in FAST
                                               else pytest.mark.slow) for s in SPECS])
def test_kernels_match_the_stored_baseline(spec):
    stored = np.load(STORE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # c2v_custom's swish quadrature warns, as it should
        fresh = kernels(_compiled(spec))
    for name, gram in fresh.items():
        want = stored[f"{spec.stem}/{name}"]
        assert gram.shape == want.shape
        scale = np.max(np.abs(want))
        assert np.max(np.abs(gram - want)) <= 1e-12 * scale, (spec.stem, name)


def test_the_baseline_covers_every_spec():
    stored = set(np.load(STORE).files)
    assert {f"{s.stem}/{g}" for s in SPECS for g in ("nngp", "ntk")} <= stored
