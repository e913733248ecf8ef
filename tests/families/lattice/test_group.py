"""LatticeGroup: group axioms from the Cayley table, and the induced actions on offsets, sites, signals."""
import itertools
import re

import numpy as np
import pytest

from kernelc.errors import GroupError
from kernelc.groups import LatticeGroup, builtin_groups, get_group

ORDERS = {"Z2": 1, "p2": 2, "p4": 4, "p4m": 8, "p6": 6, "Z3": 1, "O": 24}
ALL = sorted(ORDERS)


def boxes(g):
    """Boxes each group must map onto itself: odd and even squares, a cube, a hexagon."""
    if g.lattice == "hexagonal":
        return [(1, 1), (5, 5), (7, 7)]
    if g.dim == 3:
        return [(3, 3, 3), (4, 4, 4)]
    return [(1, 1), (4, 4), (5, 5)]


@pytest.mark.parametrize("name", ALL)
def test_orders_and_identity(name):
    g = get_group(name)
    assert g.order == ORDERS[name] == len(g.elements)
    assert g.elements.dtype == np.int64 and g.elements.shape[1:] == (g.dim, g.dim)
    assert g.identity == 0 and np.array_equal(g.elements[0], np.eye(g.dim))
    assert len({m.tobytes() for m in g.elements}) == g.order  # distinct
    assert g.element_labels[0] == "e" and len(set(g.element_labels)) == g.order


@pytest.mark.parametrize("name", ALL)
def test_group_axioms(name):
    g = get_group(name)
    c, n = g.cayley, g.order
    assert c.shape == (n, n) and c.min() >= 0 and c.max() < n          # closure
    for a in range(n):
        assert np.array_equal(g.elements[c[a, 0]], g.elements[a] @ g.elements[0])
        assert np.array_equal(g.elements[c[a, a]], g.elements[a] @ g.elements[a])
        assert sorted(c[a]) == list(range(n)) and sorted(c[:, a]) == list(range(n))  # Latin square
    assert np.array_equal(c[0], np.arange(n)) and np.array_equal(c[:, 0], np.arange(n))  # identity
    a, b, d = np.meshgrid(np.arange(n), np.arange(n), np.arange(n), indexing="ij")
    assert np.array_equal(c[c[a, b], d], c[a, c[b, d]])                    # associativity
    inv = g.inverse
    assert np.all(c[np.arange(n), inv] == 0) and np.all(c[inv, np.arange(n)] == 0)
    for i in range(n):
        assert g.index_of(g.elements[i]) == i


@pytest.mark.parametrize("name,abelian,nclasses",
                         [("Z2", True, 1), ("p2", True, 2), ("p4", True, 4), ("p4m", False, 5),
                          ("p6", True, 6), ("Z3", True, 1), ("O", False, 5)])
def test_abelian_and_conjugacy_classes(name, abelian, nclasses):
    g = get_group(name)
    assert g.is_abelian is abelian
    classes = g.conjugacy_classes
    assert len(classes) == nclasses
    assert sorted(itertools.chain(*classes)) == list(range(g.order))   # a partition
    assert [cl[0] for cl in classes] == sorted(cl[0] for cl in classes)
    assert classes[0] == (0,)


def test_class_sizes_of_O():
    assert sorted(map(len, get_group("O").conjugacy_classes)) == [1, 3, 6, 6, 8]


@pytest.mark.parametrize("name", ALL)
def test_site_permutation_is_a_representation(name):
    g = get_group(name)
    for shape in boxes(g):
        perm = g.site_permutation(shape)
        P = int(np.prod(shape))
        assert perm.shape == (g.order, P)
        for h in range(g.order):
            assert sorted(perm[h]) == list(range(P))                     # bijection
        assert np.array_equal(perm[0], np.arange(P))
        # perm[h] is the map p -> ρ(h)p, so ρ(a)ρ(b) applies perm[b] first, then perm[a]
        for a, b in itertools.product(range(g.order), repeat=2):
            assert np.array_equal(perm[g.cayley[a, b]], perm[a][perm[b]])


def test_site_permutation_rotates_about_the_centre():
    g = get_group("p4")
    perm = g.site_permutation((4, 4))
    r90 = g.index_of([[0, -1], [1, 0]])
    # site (0,0): doubled (-3,-3) -> (3,-3) -> site (3,0)
    assert perm[r90, 0] == np.ravel_multi_index((3, 0), (4, 4))
    # the centre of an odd box is fixed by everything
    assert np.all(g.site_permutation((5, 5))[:, 12] == 12)


def test_hexagonal_mask_is_invariant_and_outside_sites_are_fixed():
    g = get_group("p6")
    mask = g.domain_mask((5, 5))
    assert mask.sum() == 19 and mask[2, 2] and not mask[0, 0]
    perm = g.site_permutation((5, 5))
    inside = np.flatnonzero(mask.ravel())
    for h in range(g.order):
        assert set(perm[h, inside]) == set(inside)
        outside = np.flatnonzero(~mask.ravel())
        assert np.array_equal(perm[h, outside], outside)
    with pytest.raises(GroupError, match="odd square box"):
        g.domain_mask((4, 4))
    assert get_group("p4").domain_mask((4, 6)).all()


@pytest.mark.parametrize("name", ALL)
def test_transform_signal_composes_like_the_group(name):
    g = get_group(name)
    rng = np.random.default_rng(0)
    shape = boxes(g)[-1]
    x = rng.normal(size=(2,) + shape + (3,))
    if g.lattice == "hexagonal":
        x = x * g.domain_mask(shape)[None, ..., None]
    assert np.array_equal(g.transform_signal(x, 0), x)
    for a, b in itertools.product(range(g.order), repeat=2):
        lhs = g.transform_signal(g.transform_signal(x, a), b)
        assert np.array_equal(lhs, g.transform_signal(x, g.cayley[b, a]))


def test_transform_signal_is_the_rotated_image():
    g = get_group("p4")
    x = np.arange(16).reshape(4, 4)
    r90 = g.index_of([[0, -1], [1, 0]])
    # (ρf)(x) = f(ρ⁻¹x): the value at site (0,0) moves to ρ(0,0) = site (3,0)
    y = g.transform_signal(x, r90, spatial_axes=(0, 1))
    assert y[3, 0] == x[0, 0]
    assert np.array_equal(y, np.rot90(x, k=1, axes=(0, 1)))  # axis 0 turned towards axis 1
    # matrix form of h is accepted too
    assert np.array_equal(g.transform_signal(x, [[0, -1], [1, 0]], spatial_axes=(0, 1)), y)


def test_transform_signal_with_jax():
    jnp = pytest.importorskip("jax.numpy")
    import jax
    g = get_group("p4m")
    x = np.random.default_rng(1).normal(size=(5, 5, 2)).astype(np.float32)
    for h in range(g.order):
        got = jax.jit(lambda v, h=h: g.transform_signal(v, h))(jnp.asarray(x))
        assert np.allclose(np.asarray(got), g.transform_signal(x, h))


@pytest.mark.parametrize("name", ALL)
def test_default_support_offset_permutation(name):
    g = get_group(name)
    for size in (1, 3, 5):
        s = g.default_support(size)
        expect = size ** g.dim if g.lattice == "square" else 3 * ((size - 1) // 2) ** 2 + 3 * ((size - 1) // 2) + 1
        assert s.shape == (expect, g.dim)
        assert [tuple(p) for p in s.tolist()] == sorted(tuple(p) for p in s.tolist())
        assert g.is_invariant(s)
        perm = g.offset_permutation(s)
        for h in range(g.order):
            assert sorted(perm[h]) == list(range(len(s)))
            assert np.array_equal(g.elements[h] @ s.T, s[perm[h]].T)
        for a, b in itertools.product(range(g.order), repeat=2):
            assert np.array_equal(perm[g.cayley[a, b]], perm[a][perm[b]])


def test_even_support_trivial_group():
    s = get_group("Z2").default_support(4)
    assert s.shape == (16, 2) and s.min() == -2 and s.max() == 1


def test_offset_permutation_not_invariant():
    g = get_group("p4")
    with pytest.raises(GroupError, match=r"not invariant under p4.*offset \(1,0\)"):
        g.offset_permutation([[0, 0], [1, 0]])
    assert not g.is_invariant([[0, 0], [1, 0]])


# ------------------------------------------------------------------------------ errors
def test_non_integer_generator():
    with pytest.raises(GroupError, match="non-integer entry 0.5"):
        LatticeGroup.from_generators("bad", 2, [[[0.5, 0], [0, 1]]])


def test_determinant_two_generator():
    with pytest.raises(GroupError, match="determinant 2"):
        LatticeGroup.from_generators("bad", 2, [[[2, 0], [0, 1]]])


def test_wrong_shape_generator():
    with pytest.raises(GroupError, match="expected 2 x 2"):
        LatticeGroup.from_generators("bad", 2, [[[1, 0, 0], [0, 1, 0], [0, 0, 1]]])


def test_infinite_group_stops_at_max_order():
    with pytest.raises(GroupError, match="closure exceeds 1000 elements"):
        LatticeGroup.from_generators("shear", 2, [[[1, 1], [0, 1]]])
    with pytest.raises(GroupError, match="closure exceeds 10 elements"):
        LatticeGroup.from_generators("shear", 2, [[[1, 1], [0, 1]]], max_order=10)


def test_dim_and_lattice_validation():
    with pytest.raises(GroupError, match="dimension"):
        LatticeGroup.from_generators("g", 0, [])
    with pytest.raises(GroupError, match="hexagonal"):
        LatticeGroup.from_generators("g", 3, [], lattice="hexagonal")


def test_non_invariant_box():
    with pytest.raises(GroupError, match=r"4 x 6 box is not invariant under p4.*site \(0,0\).*square box"):
        get_group("p4").site_permutation((4, 6))
    get_group("p2").site_permutation((4, 6))   # 180° keeps any box


def test_even_filter_size_under_p4():
    with pytest.raises(GroupError, match="even filter size 4 cannot be invariant under p4; use an odd size"):
        get_group("p4").default_support(4)


def test_index_of_non_element():
    with pytest.raises(GroupError, match="not an element of p4"):
        get_group("p4").index_of([[1, 0], [0, -1]])


def test_user_group_by_generators():
    g = LatticeGroup.from_generators("mirror", 2, [[[1, 0], [0, -1]]], description="C2 reflection")
    assert g.order == 2 and g.is_abelian and g.inverse.tolist() == [0, 1]
    assert g.describe() == "mirror: order 2, dim 2, square lattice, generators [[1,0],[0,-1]]"
    perm = g.site_permutation((3, 4))              # a reflection keeps a non-square box
    assert sorted(perm[1]) == list(range(12))
    x = np.arange(12.0).reshape(3, 4)
    assert np.array_equal(g.transform_signal(x, 1, spatial_axes=(0, 1)), x[:, ::-1])


def test_a_generator_numpy_cannot_read_is_not_a_matrix():
    class Unreadable:  # a ragged list becomes an object array of the wrong shape instead
        def __array__(self, *args, **kwargs):
            raise ValueError("cannot convert")

    with pytest.raises(GroupError, match=r"^group error: group 'g': generator 1 is not a matrix "
                                         r"\(cannot convert\)$"):
        LatticeGroup.from_generators("g", 2, [Unreadable()])


def test_an_unknown_lattice():
    with pytest.raises(GroupError, match="^group error: group 'g': unknown lattice 'triangular'") \
            as info:
        LatticeGroup.from_generators("g", 2, [], lattice="triangular")
    assert info.value.expected == ["hexagonal", "square"]


@pytest.mark.parametrize("size", [0, -1, 2.0, True])
def test_a_filter_size_that_is_not_a_positive_integer(size):
    with pytest.raises(GroupError, match=f"^group error: filter size must be a positive integer, "
                                         f"got {size!r}$"):
        get_group("p4").default_support(size)


def test_filter_offsets_with_duplicates():
    with pytest.raises(GroupError, match="^group error: filter offsets contain duplicates$"):
        get_group("p4").offset_permutation([[0, 0], [0, 0]])


@pytest.mark.parametrize("shape", [(5,), (5, 0)])
def test_a_box_of_the_wrong_rank_or_an_empty_side(shape):
    with pytest.raises(GroupError, match=re.escape(f"group error: a box for p4 needs 2 positive "
                                                   f"sides, got {shape}")):
        get_group("p4").site_permutation(shape)


@pytest.mark.parametrize("axes", [(1,), (1, 1)])
def test_transform_signal_needs_distinct_spatial_axes(axes):
    x = np.zeros((1, 3, 3, 1))
    with pytest.raises(GroupError, match=re.escape(f"transform_signal needs 2 distinct spatial "
                                                   f"axes for p4 in an array of rank 4, got "
                                                   f"{axes!r}")):
        get_group("p4").transform_signal(x, 1, spatial_axes=axes)
