"""The steerable family's layer kinds and input: typing and every error path, with its message."""
import pytest

import kernelc
from kernelc.errors import ShapeError, SpecError


def _spec(body, group="C8", box="5 x 5"):
    return f"network t\ngroup {group}\ninput {box} channels 1\n{body}\n"


def test_a_steerable_network_types():
    tg = kernelc.check(_spec("lift(5, max_frequency=1)\nrelu\ngconv(3)\ngroup_pool\ndense(2)"))
    lift = tg.node(tg.order()[1])
    assert lift.hp["basis_size"] == 7 and lift.hp["weights_per_channel"] == 7
    gconv = tg.node(tg.order()[3])
    assert gconv.hp["weights_per_channel"] == 6 * 8
    assert tg.node(tg.order()[1]).out.group_order == 8


def test_any_n_by_name():
    tg = kernelc.check(_spec("lift(3)\ngroup_pool", group="D5"))
    assert tg.node(tg.order()[1]).out.group_order == 10


@pytest.mark.parametrize("body,error,match", [
    ("lift(3, basis=pixel)", ShapeError,
     r"basis=pixel rotates a filter by permuting its pixels, which only rotations by multiples "
     r"of 90° can do; C8 rotates by 45°"),
    ("lift(4)", ShapeError, r"a steerable filter needs an odd size \(centred on a pixel\), got 4"),
    ("lift(17)", ShapeError, "size=17 is above the largest steerable filter, 15×15"),
    ("lift(3, basis=bessel)", SpecError, "bad value for 'basis' of 'lift': expected rings"),
    ("lift(3, max_frequency=-1)", SpecError, "expected a non-negative integer"),
    ("gconv(3)", ShapeError, r"'gconv' before any 'lift'"),
    ("lift(3)\nlift(3)", ShapeError, "'lift' on a signal that is already on G"),
    ("lift(3, rotations=all)", SpecError, "'lift' has no hyperparameter 'rotations'"),
])
def test_error_paths(body, error, match):
    with pytest.raises(error, match=match):
        kernelc.check(_spec(body))


def test_pixel_basis_with_max_frequency_is_refused():
    with pytest.raises(ShapeError, match="max_frequency= belongs to basis=rings"):
        kernelc.check(_spec("lift(3, basis=pixel, max_frequency=1)", group="C4"))


def test_a_3d_input_is_refused():
    with pytest.raises(ShapeError, match="acts on the pixel grid Z², but the input box has 3 axes"):
        kernelc.check(_spec("lift(3)", box="4 x 4 x 4"))


def test_a_lattice_only_kind_is_not_in_the_table():
    with pytest.raises(SpecError, match="conv"):
        kernelc.check(_spec("conv(3)"))


def test_group_with_n_in_parentheses_is_the_named_group():
    tg = kernelc.check(_spec("lift(3)\ngroup_pool", group="D(12)"))
    assert tg.group.name == "D12" and tg.group.order == 24
