"""The orbit-average identity (O) on every built-in lattice group it applies to.

``net.orbit_kernel_fn(x)`` averages the kernel of the matching plain network over the point
group; it must equal the GCNN's own ``kernel_fn`` in float64. On p6 the matching plain network is
a *hexagonal* one (trivial point group on the hexagonal lattice: hexagonal filter balls and the
inscribed hexagonal domain); a square-lattice plain network gives a visibly wrong kernel.
"""
from __future__ import annotations

import numpy as np
import pytest

import kernelc
from kernelc.families.lattice.orbit import matching_cnn_spec, orbit_precondition
from kernelc.errors import SpecError
from kernelc.frontend.unparse import unparse

# case -> (group, box, channels, gconv size); tiny networks:
# lift(size=3) relu gconv relu group_pool dense. O is slow to jit: a 3x3x3 box and a 1x1x1 gconv
# in the fast case, the 5x5x5 box with 3x3x3 filters only under -m slow.
CASES = {
    "p2": ("p2", (7, 7), 2, 3),
    "p4": ("p4", (7, 7), 2, 3),
    "p4m": ("p4m", (7, 7), 1, 3),
    "p6": ("p6", (7, 7), 1, 3),
    "O": ("O", (3, 3, 3), 1, 1),
    "O-5": ("O", (5, 5, 5), 1, 3),
}
SLOW = {"O-5", "O", "p6", "p4m"}  # the 3-d group ~8 s each, p6 ~4 s, p4m ~5 s; p2, p4 fast


def _text(case: str) -> str:
    group, box, channels, size = CASES[case]
    return "\n".join([
        f"network orbit_{group}", f"group {group}",
        "input " + " x ".join(map(str, box)) + f" channels {channels}",
        "lift(size=3, W_std=1.3, b_std=0.2)", "relu",
        f"gconv(size={size}, W_std=1.2, b_std=0.1)", "relu",
        "group_pool", "dense(1, W_std=1.1, b_std=0.3)", ""])


@pytest.fixture(scope="module")
def nets():
    return {}


def _net(nets, group):
    if group not in nets:
        nets[group] = kernelc.compile(_text(group))
    return nets[group]


def _rel(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.slow) if c in SLOW else c
                                  for c in CASES])
def test_orbit_kernel_equals_kernel(nets, case):
    net = _net(nets, case)
    assert orbit_precondition(net.typed)[0]
    group, box, channels, _ = CASES[case]
    x = np.random.default_rng(len(case)).normal(size=(3, *box, channels))
    want = net.kernel_fn(x, dtype="float64")
    got = net.orbit_kernel_fn(x, dtype="float64")
    for k in ("nngp", "ntk"):
        g = np.asarray(got[k])
        assert g.dtype == np.float64
        assert _rel(g, want[k]) <= 1e-10, (case, k, _rel(g, want[k]))
        assert _rel(g, g.T) <= 1e-10, (case, k, "orbit Gram not symmetric")


def test_p6_matching_network_is_hexagonal(nets):
    """The matching plain network of p6: trivial point group on the hexagonal lattice, 7-point
    hexagonal filters and the hexagonal domain; its spec text round-trips through the parser."""
    net = _net(nets, "p6")
    cnn = net.matching_cnn
    g = cnn.typed.group
    assert g.order == 1 and g.lattice == "hexagonal" and g.dim == 2
    supports = [cnn.typed.node(n).hp["support"] for n in cnn.typed.order()
                if cnn.typed.node(n).kind == "conv"]
    assert supports and all(len(s) == 7 for s in supports)
    assert np.array_equal(g.domain_mask((7, 7)), net.typed.group.domain_mask((7, 7)))
    again = kernelc.compile(unparse(matching_cnn_spec(net.spec)))
    assert again.typed.group.lattice == "hexagonal" and again.typed.group.order == 1


def test_matching_network_of_square_group_is_square(nets):
    cnn = _net(nets, "p4").matching_cnn
    assert cnn.typed.group.lattice == "square" and cnn.typed.group.order == 1


@pytest.mark.parametrize("group", ["Z2", "Z3"])
def test_trivial_groups_refuse(group):
    box = (5, 5) if group == "Z2" else (3, 3, 3)
    text = "\n".join([f"network t_{group}", f"group {group}",
                      "input " + " x ".join(map(str, box)) + " channels 1",
                      "conv(size=3)", "relu", "avg_pool", "flatten", "dense(1)", ""])
    net = kernelc.compile(text)
    ok, reason = orbit_precondition(net.typed)
    assert not ok and "trivial" in reason
    with pytest.raises(SpecError, match="does not apply"):
        net.orbit_kernel_fn(np.zeros((1, *box, 1)))


def test_orbit_kernel_fn_checks_its_inputs_against_the_network(nets):
    """Checked before the orbit is built: an empty set failed in numpy's reshape, get=None in
    Python, and a wrong box was blamed on the group ("not invariant under p2")."""
    from kernelc.errors import InputError
    net = _net(nets, "p2")
    x = np.zeros((2, 7, 7, 2))
    with pytest.raises(InputError, match=r"^input error: x1 holds no inputs$"):
        net.orbit_kernel_fn(x[:0])
    with pytest.raises(InputError, match=r"x2 must have shape \(N, 7, 7, 2\) \(N inputs, the box, "
                                         r"channels last\), got \(2, 6, 7, 2\)"):
        net.orbit_kernel_fn(x, x[:, 1:])
    with pytest.raises(InputError, match=r"get must name 'nngp' and/or 'ntk' \(a string, or a "
                                         r"tuple of them\), got None"):
        net.orbit_kernel_fn(x, get=None)
