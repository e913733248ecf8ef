"""C_n and D_n as groups of the steerable family: tables, labels, the grid symmetries and their
action on images, and the error paths (the bases: tests/runtime/test_steerable.py)."""
import numpy as np
import pytest

from kernelc.errors import GroupError, SpecError
from kernelc.families.steerable.group import SteerableGroup, steerable_group
from kernelc.groups import get_group


@pytest.mark.parametrize("name,order,grid", [("C8", 8, 4), ("D8", 16, 8), ("C6", 6, 2),
                                             ("D3", 6, 2), ("C1", 1, 1)])
def test_group_tables(name, order, grid):
    g = get_group(name)
    assert g.order == order and len(g.grid_elements) == grid
    mats = g.elements
    for a in range(order):  # cayley[a, b] is the index of R_a R_b; inverse[a] inverts
        for b in range(order):
            np.testing.assert_allclose(mats[g.cayley[a, b]], mats[a] @ mats[b], atol=1e-12)
        np.testing.assert_allclose(mats[g.inverse[a]] @ mats[a], np.eye(2), atol=1e-12)
    assert g.is_abelian == (name.startswith("C") or order <= 4)


def test_labels_and_grid_group():
    g = get_group("D8")
    assert g.element_labels[:3] == ("e", "r45", "r90") and g.element_labels[8] == "f"
    assert g.grid_group.order == 8  # D4: the grid symmetries of D8


def test_a_45_degree_rotation_is_not_a_grid_action():
    x = np.zeros((3, 3, 1))
    with pytest.raises(GroupError, match=r"element r45 of C8 \(rotation by 45°\) does not map "
                                         "the pixel grid onto itself"):
        get_group("C8").transform_signal(x, 1)


def test_grid_rotation_permutes_pixels():
    x = np.arange(9.0).reshape(3, 3, 1)
    out = get_group("C8").transform_signal(x, 2)[..., 0]  # 90°
    # (R f)(p) = f(R⁻¹p) about the centre: the value at offset (1, 0) moves to (0, 1)
    centre = np.array([1, 1])
    for p in [(0, 0), (0, 1), (2, 1)]:
        src = centre + np.array([[0, 1], [-1, 0]]) @ (np.array(p) - centre)  # R⁻¹ p
        assert out[p] == x[tuple(src)][0]


@pytest.mark.parametrize("bad", ["C0", "C65", "D100"])
def test_out_of_range_names_are_unknown_groups(bad):
    with pytest.raises(SpecError, match=f"unknown group '{bad}'"):
        get_group(bad)


def test_n_is_checked():
    with pytest.raises(GroupError, match=r"n must be an integer in 1\.\.64"):
        SteerableGroup("bad", 0, False)
    assert steerable_group("p4") is None


def test_index_of_a_rotation_outside_the_group():
    c, s = np.cos(np.pi / 6), np.sin(np.pi / 6)  # 30° is not in C8
    with pytest.raises(GroupError, match=r"^group error: \[\[.*\]\] is not an element of C8$"):
        get_group("C8").index_of([[c, -s], [s, c]])
