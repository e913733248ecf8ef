"""kernelc.testing.assert_equivariant: passes on equivariant maps, fails loudly otherwise."""
import numpy as np
import pytest

from kernelc.errors import InputError
from kernelc.groups import get_group
from kernelc.testing import assert_equivariant, transform_output


def _lift_like(group, box):
    """A hand-made lifting layer box -> G with zero padding (and the hexagonal mask for p6):
    out(t, r) = Σ_y w(y) f(t + ρ(r) y), written with loops, independent of kernelc.network."""
    support = group.default_support(3)
    w = np.random.default_rng(5).normal(size=len(support))
    mask = group.domain_mask(box)

    def apply(x):
        out = np.zeros(x.shape[:1] + box + (group.order, x.shape[-1]))
        for t in np.ndindex(*box):
            for r in range(group.order):
                for wy, y in zip(w, support):
                    s = np.array(t) + group.elements[r] @ y
                    if np.all(s >= 0) and np.all(s < box):
                        out[(slice(None),) + t + (r,)] += wy * x[(slice(None),) + tuple(s)]
        return out * mask[None, ..., None, None]
    return apply


@pytest.mark.parametrize("name", ["p4", "p4m", "p6"])
def test_equivariant_and_invariant_maps_pass(name):
    group = get_group(name)
    x = np.random.default_rng(0).normal(size=(2, 5, 5, 3))
    lift = _lift_like(group, (5, 5))
    assert_equivariant(lift, group, x)                       # auto: group output
    assert_equivariant(lambda x: lift(x).mean(axis=(1, 2, 3)), group, x)  # invariant


def test_failures_name_the_element_and_the_deviation():
    group = get_group("p4")
    x = np.random.default_rng(1).normal(size=(1, 4, 4, 2))
    with pytest.raises(AssertionError, match=r"not invariant under element 1 \[\[0,-1\],\[1,0\]\] "
                                             r"of p4: max deviation [0-9.e-]+ at index"):
        assert_equivariant(lambda x: x[:, 0, 0, :], group, x)
    # a map on G that forgets to permute the group axis
    wrong = lambda x: np.repeat(x[..., None, :], 4, axis=-2) * np.arange(1, 5)[:, None]
    with pytest.raises(AssertionError, match="equivariant \\(outputs on G\\)"):
        assert_equivariant(wrong, group, x)
    # params are passed through when given
    assert_equivariant(lambda p, x: p * x.sum(axis=(1, 2)), group, x, params=2.0)


def test_box_outputs_and_tolerances():
    group = get_group("p2")
    x = np.random.default_rng(2).normal(size=(1, 4, 6, 1))
    assert_equivariant(lambda x: 2 * x, group, x, output="box")
    noisy = lambda x: x.sum(axis=(1, 2)) + 1e-4 * x[:, 0, 0]
    with pytest.raises(AssertionError):
        assert_equivariant(noisy, group, x)
    assert_equivariant(noisy, group, x, atol=1e-2)
    with pytest.raises(InputError, match="output must be one of"):
        assert_equivariant(noisy, group, x, output="vector")
    with pytest.raises(InputError, match="cannot tell the layout"):
        assert_equivariant(lambda x: x[:, None, None, None], group, x)


def test_transform_output_composes_like_the_group():
    group = get_group("p4m")
    y = np.random.default_rng(3).normal(size=(1, 4, 4, 8, 2))
    a, b = 1, 5
    both = transform_output(group, transform_output(group, y, a, "group"), b, "group")
    np.testing.assert_allclose(both, transform_output(group, y, int(group.cayley[b, a]), "group"))


def test_a_group_name_is_taken_and_bad_tolerances_are_refused():
    """A name (as in a spec) failed with AttributeError ('str' has no .dim), a text tolerance
    inside numpy's add."""
    x = np.random.default_rng(0).normal(size=(2, 5, 5, 3))
    invariant = lambda x: x.sum(axis=(1, 2))  # noqa: E731
    assert_equivariant(invariant, "p4", x)
    with pytest.raises(InputError, match=r"atol must be a number >= 0, got '1'"):
        assert_equivariant(invariant, "p4", x, atol="1")
    with pytest.raises(InputError, match=r"rtol must be a number >= 0, got nan"):
        assert_equivariant(invariant, "p4", x, rtol=float("nan"))
