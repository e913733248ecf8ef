"""The SO(3) family in the front end: the sphere input, its layer table, and every error path."""
import pytest

from kernelc.errors import ShapeError, SpecError
from kernelc.frontend.infer import check
from kernelc.frontend.parser import parse_spec

HEAD = "network t\ngroup SO3\ninput sphere bandlimit 4 channels 2\n"


def test_sphere_input_and_layer_types():
    tg = check(parse_spec(HEAD + "lift(3, grid=5)\nrelu\ngconv(2)\ngroup_pool\ndense(4)\n"))
    outs = [tg.node(n).out for n in tg.order()]
    assert outs[0].domain == "sphere" and outs[0].shape == (8, 8) and outs[0].band == 4
    assert (outs[1].domain, outs[1].band, outs[1].shape) == ("so3", 3, (10, 10, 10))
    assert outs[2] == outs[1]
    assert (outs[3].band, outs[3].shape) == (2, (4, 4, 4))  # grid defaults to the band limit
    assert outs[-1].describe() == "vector[4]"
    assert "input S² band 4 (grid 8×8)×2" in tg.summary()


@pytest.mark.parametrize("body,kind,message,line,col", [
    ("conv\n", SpecError, "layer 'conv' is not defined for the SO3 family", 4, 1),
    ("lift(grid=2)\n", ShapeError, "grid=2 cannot sample band limit 4", 4, 1),
    ("lift(grid=99)\n", ShapeError, "grid=99 is above the supported bandwidth 64", 4, 1),
    ("lift(size=3)\n", SpecError, "local (cap-shaped) filters are not supported on SO(3) yet", 4, 6),
    ("gconv\n", ShapeError, "'gconv' before 'lift': the signal is still on the sphere", 4, 1),
    ("lift\nlift\n", ShapeError, "'lift' takes a signal on the sphere S², but gets the group SO(3)", 5, 1),
    ("group_pool\n", ShapeError, "'group_pool' needs a signal on SO(3), but gets the sphere S²", 4, 1),
])
def test_so3_errors(body, kind, message, line, col):
    with pytest.raises(kind) as info:
        check(parse_spec(HEAD + body))
    assert message in info.value.message
    assert (info.value.span.line, info.value.span.column) == (line, col)


def test_sphere_input_needs_so3_and_back():
    with pytest.raises(ShapeError, match="sphere inputs need a group that acts on the sphere"):
        check(parse_spec("group p4\ninput sphere bandlimit 4 channels 1\nlift\n"))
    with pytest.raises(ShapeError, match="declare 'input sphere bandlimit L channels C'"):
        check(parse_spec("group SO3\ninput 8 x 8 channels 1\nlift\n"))


@pytest.mark.parametrize("decl,message", [
    ("input sphere bandlimit 0 channels 1", "must be positive"),
    ("input sphere bandlimit 65 channels 1", "band limit 65 is above the supported 64"),
])
def test_bad_sphere_inputs(decl, message):
    with pytest.raises(SpecError, match=message):
        parse_spec(f"group SO3\n{decl}\nlift\n")


def test_standard_parameterization_is_refused_for_so3():
    import kernelc
    with pytest.raises(ShapeError, match="standard parameterization is not supported for SO"):
        kernelc.compile(parse_spec("group SO3\ninput sphere bandlimit 2 channels 1\n"
                                   "parameterization standard\nlift(width=3)\ngroup_pool\n"))
