"""Type inference: the signal type of every node, for every shipped spec and for each typing
rule (valid padding, pooling, concat widths, flatten sizes, user groups, 3-d inputs)."""
from __future__ import annotations

from pathlib import Path

import pytest

from kernelc.families import family_of
from kernelc.frontend import TypedGraph, check, parse_spec
from kernelc.frontend.types import SignalType

from .conftest import P4_HEADER, SPEC_DIR, SPEC_PATHS


def fmt(t: SignalType) -> str:
    shape = "x".join(map(str, t.shape)) or "-"
    return f"{t.domain}:{shape}:{'inf' if t.channels is None else t.channels}"


def chain(tg: TypedGraph) -> str:
    """``name=domain:shape:channels`` of every node, in topological order."""
    return " ".join(f"{tg.node(n).name}={fmt(tg.node(n).out)}"
                    for n in tg.order())


def out(text: str) -> SignalType:
    return check(text).output_type


# spec -> (group, |H|, output type, the chain of node types)
EXPECTED = {
    "c2v_custom.kc": ("c2v", 4, "vector[1]", """
        input=box:10x14:1 lift1=group:10x14:inf leaky_relu1=group:10x14:inf
        gconv1=group:10x14:inf phi1=group:10x14:inf group_pool1=vector:-:inf dense1=vector:-:1"""),
    "cnn_histology.kc": ("Z2", 1, "vector[9]", """
        input=box:32x32:3 conv1=box:32x32:inf relu1=box:32x32:inf conv2=box:32x32:inf
        relu2=box:32x32:inf avg_pool1=box:1x1:inf flatten1=vector:-:inf dense1=vector:-:32
        relu3=vector:-:32 dense2=vector:-:9"""),
    "mnist_cnn.kc": ("Z2", 1, "vector[10]", """
        input=box:7x7:1 conv1=box:7x7:inf relu1=box:7x7:inf conv2=box:7x7:inf relu2=box:7x7:inf
        avg_pool1=box:1x1:inf flatten1=vector:-:inf dense1=vector:-:10"""),
    "mnist_p4.kc": ("p4", 4, "vector[10]", """
        input=box:7x7:1 lift1=group:7x7:inf relu1=group:7x7:inf gconv1=group:7x7:inf
        relu2=group:7x7:inf group_pool1=vector:-:inf dense1=vector:-:10"""),
    "mnist_p4m.kc": ("p4m", 8, "vector[10]", """
        input=box:7x7:1 lift1=group:7x7:inf relu1=group:7x7:inf gconv1=group:7x7:inf
        relu2=group:7x7:inf group_pool1=vector:-:inf dense1=vector:-:10"""),
    "o3d_volume.kc": ("O", 24, "vector[1]", """
        input=box:6x6x6:1 lift1=group:6x6x6:inf relu1=group:6x6x6:inf gconv1=group:6x6x6:inf
        relu2=group:6x6x6:inf group_pool1=vector:-:inf dense1=vector:-:1"""),
    "p2_small.kc": ("p2", 2, "vector[1]", """
        input=box:12x12:2 lift1=group:12x12:inf erf1=group:12x12:inf gconv1=group:12x12:inf
        erf2=group:12x12:inf group_pool1=vector:-:inf dense1=vector:-:1"""),
    "p4_histology.kc": ("p4", 4, "vector[9]", """
        input=box:32x32:3 lift1=group:32x32:inf relu1=group:32x32:inf gconv1=group:32x32:inf
        relu2=group:32x32:inf group_pool1=vector:-:inf dense1=vector:-:32 relu3=vector:-:32
        dense2=vector:-:9"""),
    "p4_residual.kc": ("p4", 4, "vector[10]", """
        input=box:16x16:3 lift1=group:16x16:inf fanout1=group:16x16:inf relu1=group:16x16:inf
        gconv1=group:16x16:inf relu2=group:16x16:inf gconv2=group:16x16:inf
        identity1=group:16x16:inf sum1=group:16x16:inf fanout2=group:16x16:inf
        relu3=group:16x16:inf gconv3=group:16x16:inf relu4=group:16x16:inf
        gconv4=group:16x16:inf identity2=group:16x16:inf sum2=group:16x16:inf
        relu5=group:16x16:inf group_pool1=vector:-:inf dense1=vector:-:10"""),
    "p4m_mnist.kc": ("p4m", 8, "vector[10]", """
        input=box:28x28:1 lift1=group:28x28:inf relu1=group:28x28:inf gconv1=group:28x28:inf
        relu2=group:28x28:inf group_pool1=vector:-:inf dense1=vector:-:10"""),
    "p6_hexagonal.kc": ("p6", 6, "vector[1]", """
        input=box:9x9:1 lift1=group:9x9:inf relu1=group:9x9:inf gconv1=group:9x9:inf
        relu2=group:9x9:inf group_pool1=vector:-:inf dense1=vector:-:1"""),
}

SUMMARIES = {
    "p4_histology.kc": "p4_histology: group p4 (|H|=4), input 32×32×3, 8 layers, output "
                       "vector[9], ntk parameterization",
    "p4_residual.kc": "p4_residual: group p4 (|H|=4), input 16×16×3, 14 layers, output "
                      "vector[10], ntk parameterization",
    "o3d_volume.kc": "o3d_volume: group O (|H|=24), input 6×6×6×1, 6 layers, output vector[1], "
                     "ntk parameterization",
    "c2v_custom.kc": "c2v_custom: group c2v (|H|=4), input 10×14×1, 6 layers, output vector[1], "
                     "ntk parameterization",
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shipped_spec_types(name):
    path = SPEC_DIR / name
    assert path.is_file(), f"specs/{name} is gone: update EXPECTED"
    group, order, output, expected_chain = EXPECTED[name]
    tg = check(path)
    assert (tg.group.name, tg.group.order) == (group, order)
    assert str(tg.output_type) == output
    assert chain(tg) == " ".join(expected_chain.split())


@pytest.mark.parametrize("name", sorted(SUMMARIES))
def test_summary_line(name):
    assert check(SPEC_DIR / name).summary() == SUMMARIES[name]


def test_every_spec_is_well_typed(spec_path):
    """Generic invariants, also for specs added after this test was written."""
    tg = check(spec_path)
    spec = tg.spec
    if spec.input.domain == "sphere":
        assert tg.input_type == SignalType("sphere", spec.input.shape, spec.input.channels, 0,
                                           spec.input.bandlimit)
    else:
        assert tg.input_type == SignalType("box", spec.input.shape, spec.input.channels, 1)
    assert tg.output_type.domain == "vector" and tg.output_type.channels is not None
    for n in tg.order():
        data = tg.node(n)
        t = data.out
        assert isinstance(t, SignalType)
        if t.domain == "group":
            assert t.group_order == tg.group.order and len(t.shape) == len(spec.input.shape)
        elif t.domain == "box":
            assert t.group_order == 1 and len(t.shape) == len(spec.input.shape)
        elif t.domain in ("sphere", "so3"):
            assert t.band >= 1 and len(t.shape) == {"sphere": 2, "so3": 3}[t.domain]
        else:
            assert t.shape == () and t.group_order == 1
        for i in tg.inputs(n):  # elementwise and structural nodes keep the type
            if data.kind in ("nonlinearity", "fanout", "identity"):
                assert tg.node(i).out == t
    summary = tg.summary()
    order = family_of(tg.group).order_text(tg.group)
    assert summary.startswith(f"{spec.name}: group {tg.group.name} ({order}), input ")
    assert f"output {tg.output_type}" in summary and spec.parameterization in summary


def test_check_accepts_text_path_and_ast():
    path = SPEC_DIR / "p4_histology.kc"
    by_path = check(path)
    by_str = check(str(path))
    by_text = check(path.read_text())
    by_ast = check(parse_spec(path.read_text()))
    assert chain(by_path) == chain(by_str) == chain(by_text) == chain(by_ast)
    assert by_path.spec.filename == str(path) and by_text.spec.filename == "<spec>"


# -- padding --------------------------------------------------------------------------------------

def test_valid_padding_shrinks_the_box():
    tg = check(P4_HEADER + "lift(size=3, padding=valid)\ngconv(size=5, padding=valid)\n"
               "gconv(size=1, padding=valid)\ngroup_pool\n")
    assert chain(tg) == ("input=box:8x8:1 lift1=group:6x6:inf gconv1=group:2x2:inf "
                         "gconv2=group:2x2:inf group_pool1=vector:-:inf")


def test_valid_padding_on_plain_and_3d_boxes():
    assert fmt(out("group Z2\ninput 10 x 7 channels 2\nconv(size=3, padding=valid)\n")) == \
        "box:8x5:inf"
    # an even filter is fine for the trivial group: the box loses k-1 sites per axis
    assert fmt(out("group Z2\ninput 10 x 7 channels 2\nconv(size=4, padding=valid)\n")) == \
        "box:7x4:inf"
    assert fmt(out("group O\ninput 6 x 6 x 6 channels 1\nlift(padding=valid)\n"
                   "gconv(padding=valid)\n")) == "group:2x2x2:inf"
    # an explicit support: the extent of the offsets counts
    assert fmt(out(P4_HEADER + "lift(support=[(0,0),(2,0),(0,2),(-2,0),(0,-2)], padding=valid)\n")) \
        == "group:4x4:inf"


def test_same_and_circular_padding_keep_the_box():
    for padding in ("same", "circular"):
        tg = check(P4_HEADER + f"lift(size=5, padding={padding})\ngconv(size=7, padding={padding})\n")
        assert fmt(tg.output_type) == "group:8x8:inf"


# -- pooling and flattening --------------------------------------------------------------------

def test_avg_pool_gives_a_one_site_box():
    assert fmt(out(P4_HEADER + "lift\navg_pool\n")) == "group:1x1:inf"
    assert fmt(out("group Z2\ninput 5 x 9 channels 3\navg_pool\n")) == "box:1x1:3"
    assert fmt(out("group Z3\ninput 4 x 5 x 6 channels 3\nconv\navg_pool\n")) == "box:1x1x1:inf"
    # after pooling the group part goes on: a gconv on the 1-site box
    tg = check(P4_HEADER + "lift\navg_pool\ngconv\ngroup_pool\ndense(3)\n")
    assert chain(tg) == ("input=box:8x8:1 lift1=group:8x8:inf avg_pool1=group:1x1:inf "
                         "gconv1=group:1x1:inf group_pool1=vector:-:inf dense1=vector:-:3")


def test_windowed_avg_pool_output_box():
    """floor((n − size)/stride) + 1 valid windows per axis; stride defaults to size; the group
    axis and the channels are kept."""
    assert fmt(out(P4_HEADER + "lift\navg_pool(size=2)\n")) == "group:4x4:inf"
    assert fmt(out(P4_HEADER + "lift\navg_pool(3)\n")) == "group:2x2:inf"        # 8 -> 2
    assert fmt(out(P4_HEADER + "lift\navg_pool(size=3, stride=1)\n")) == "group:6x6:inf"
    assert fmt(out(P4_HEADER + "lift\navg_pool(size=2, stride=3)\n")) == "group:3x3:inf"
    assert fmt(out(P4_HEADER + "lift\navg_pool(size=8)\n")) == "group:1x1:inf"
    assert fmt(out("group Z2\ninput 5 x 9 channels 3\navg_pool(size=2)\n")) == "box:2x4:3"
    assert fmt(out("group Z3\ninput 4 x 5 x 6 channels 3\nconv\navg_pool(size=2, stride=2)\n")
               ) == "box:2x2x3:inf"
    tg = check(P4_HEADER + "lift(width=5)\navg_pool(size=2, stride=2)\ngconv\ngroup_pool\n")
    assert chain(tg) == ("input=box:8x8:1 lift1=group:8x8:5 avg_pool1=group:4x4:5 "
                         "gconv1=group:4x4:inf group_pool1=vector:-:inf")
    pool = next(n for n in tg.order() if tg.node(n).kind == "avg_pool")
    assert tg.node(pool).hp == {"size": 2, "stride": 2}
    # without size= it stays the global mean (stride left unset)
    tg = check(P4_HEADER + "lift\navg_pool\n")
    pool = next(n for n in tg.order() if tg.node(n).kind == "avg_pool")
    assert tg.node(pool).hp == {"size": None, "stride": None}


def test_group_pool_and_flatten_channels():
    assert fmt(out(P4_HEADER + "lift(width=6)\ngroup_pool\n")) == "vector:-:6"
    # flatten keeps every site and group element: width × sites × |H|
    assert fmt(out(P4_HEADER + "lift(width=2)\nflatten\n")) == "vector:-:512"
    assert fmt(out("group Z2\ninput 3 x 4 channels 5\nflatten\n")) == "vector:-:60"
    assert fmt(out(P4_HEADER + "lift\nflatten\n")) == "vector:-:inf"
    assert fmt(out(P4_HEADER + "lift\ngroup_pool\ndense(7)\nrelu\n")) == "vector:-:7"


# -- blocks ------------------------------------------------------------------------------------

def test_concat_sums_channel_widths():
    tg = check(P4_HEADER + "lift\nconcat {\n  branch { gconv(width=2) }\n"
               "  branch { gconv(width=3) relu }\n  branch { gconv(size=5, width=4) }\n}\n")
    assert fmt(tg.output_type) == "group:8x8:9"
    # an empty branch passes its input width on; an unknown (infinite) width makes the sum unknown
    assert fmt(out("group Z2\ninput 8 x 8 channels 3\nconcat { branch { } branch { conv(width=2) } }\n"
                   )) == "box:8x8:5"
    assert fmt(out(P4_HEADER + "lift\nconcat { branch { gconv(width=2) } branch { gconv } }\n")) \
        == "group:8x8:inf"


def test_residual_keeps_the_type():
    tg = check(P4_HEADER + "lift(width=4)\nresidual { gconv(width=4) relu gconv(width=4) }\n")
    assert fmt(tg.output_type) == "group:8x8:4"
    tg = check(P4_HEADER + "lift\nrepeat 3 { residual { branch { gconv } branch { gconv relu } } }\n")
    assert fmt(tg.output_type) == "group:8x8:inf"
    assert sum(1 for n in tg.order() if tg.node(n).kind == "sum") == 3


# -- groups and dimensions ---------------------------------------------------------------------

def test_user_groups_are_resolved():
    c2v = check("group c2v = generators [[-1,0],[0,1]], [[1,0],[0,-1]]\ninput 6 x 8 channels 1\n"
                "lift\ngroup_pool\n")
    assert (c2v.group.name, c2v.group.order, c2v.group.lattice) == ("c2v", 4, "square")
    h6 = check("group h6 = hexagonal generators [[0,-1],[1,1]]\ninput 9 x 9 channels 1\n"
               "lift\ngconv\n")
    assert (h6.group.order, h6.group.lattice) == (6, "hexagonal")
    assert fmt(h6.output_type) == "group:9x9:inf" and h6.output_type.group_order == 6
    z = check("group Z4d = trivial 3\ninput 4 x 5 x 6 channels 2\nconv\nlift\n")
    assert z.group.order == 1 and z.group.dim == 3
    assert chain(z) == "input=box:4x5x6:2 conv1=box:4x5x6:inf lift1=group:4x5x6:inf"


def test_1d_and_4d_inputs():
    tg = check("group mirror = generators [[-1]]\ninput 9 channels 1\nlift\ngconv(padding=valid)\n"
               "group_pool\ndense(2)\n")
    assert chain(tg) == ("input=box:9:1 lift1=group:9:inf gconv1=group:7:inf "
                         "group_pool1=vector:-:inf dense1=vector:-:2")
    assert tg.node("n001").out.group_order == 2
    assert fmt(out("group Z = trivial 4\ninput 3 x 3 x 3 x 3 channels 1\nconv\n")) == \
        "box:3x3x3x3:inf"


# -- resolved hyperparameters -----------------------------------------------------------------

def test_resolved_hyperparameters():
    tg = check(P4_HEADER + "lift\ngconv(5, rotations=identity, W_std=2, b_std=0.5, width=3)\n"
               "gconv(rotations=[0, 2])\n")
    lift, g1, g2 = (tg.node(n).hp for n in ("n001", "n002", "n003"))
    assert (lift["size"], lift["W_std"], lift["b_std"], lift["padding"], lift["width"]) == \
        (3, 1.0, 0.0, "same", None)
    assert lift["support"].shape == (9, 2)
    assert g1["support"].shape == (25, 2) and g1["rotations"] == (0,)
    assert (g1["W_std"], g1["b_std"], g1["width"]) == (2.0, 0.5, 3)
    assert g2["rotations"] == (0, 2)
    assert check(P4_HEADER + "lift\ngconv\n").node("n002").hp["rotations"] == (0, 1, 2, 3)
    hexa = check("group p6\ninput 9 x 9 channels 1\nlift(size=5)\n").node("n001").hp
    assert hexa["support"].shape == (19, 2)  # the hexagonal ball of radius 2


def test_nonlinearity_nodes_carry_their_kernel_map():
    # each separated by a weight layer: consecutive ones would compose (tests/frontend/
    # test_gaussianity.py), and erf∘φ(x**2)∘leaky∘relu is kinked, which is refused
    tg = check(P4_HEADER + "lift\nrelu\ngconv\nleaky_relu(0.1)\ngconv\nphi(x**2)\ngconv\n"
               "erf(degree=12)\n")
    maps = [tg.node(n).hp for n in ("n002", "n004", "n006", "n008")]
    assert [m["map"].name for m in maps] == ["relu", "leaky_relu(0.1)", "phi(x**2)", "erf"]
    assert [m["degree"] for m in maps] == [32, 32, 32, 12]
