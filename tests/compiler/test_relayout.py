"""The identities as plan rewrites (kernelc.compiler.relayout): the lowerings state every kernel
in the general layout, and each applied identity's registered rewrite stores it reduced. The
numbers of both plans agree (tests/compiler/test_identities.py checks them against each other
and the reference on more networks); here: what the rewrite changes, and that it is the rewrite
(not a branch of the lowering) that does."""
import numpy as np
import pytest

import kernelc
from kernelc.compiler import relayout
from kernelc.families.lattice import LATTICE
from kernelc.families.lattice.plan import InputKernel, Stencil
from kernelc.ir.plan import Assign, LaidOut, Layout, Ref, walk

P4_POOL = "group p4\ninput 5 x 5 channels 2\nlift(size=3)\nrelu\ngconv(size=3)\nrelu\ngroup_pool\n"
P4_FLAT = "group p4\ninput 5 x 5 channels 2\nlift(size=3)\nrelu\nflatten\ndense(1)\n"
GENERAL = {"R": False, "D": False, "S": False}


def _laid_out(net):
    """Every layout-carrying node of the compiled plan."""
    return [e for nd in net.derivation.nodes for op in nd.ops for s in op.lines + op.ntk_lines
            if isinstance(s, Assign) for e in walk(s.value) if isinstance(e, LaidOut)]


def _x(n=3, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 5, 5, 2))


def test_general_plan_holds_only_general_layouts():
    kinds = {e.layout.kind for e in _laid_out(kernelc.compile(P4_POOL, identities=GENERAL))}
    assert kinds == {"box_full", "group_general"}


def test_R_rewrites_every_group_kernel_and_says_so():
    net = kernelc.compile(P4_POOL)
    kinds = {e.layout.kind for e in _laid_out(net)}
    assert kinds == {"box_full", "group_reduced"}
    stencils = [e for e in _laid_out(net) if isinstance(e, Stencil)]
    assert stencils and all(s.source().startswith("reduced_stencil(") for s in stencils)
    name, (reason, count) = next((k, v) for k, v in net.derivation.rewrites.items()
                                 if k.startswith("(R)"))
    assert count > 0 and "K̃[t,t'](q)" in reason
    assert "(R) right invariance" in net.explain().split("Layers")[0].split("Rewrites")[1]


def test_D_rewrites_the_layers_no_pool_follows():
    net = kernelc.compile(P4_FLAT)
    kinds = {e.layout.kind for e in _laid_out(net) if not isinstance(e, (InputKernel,))}
    assert "group_diag" in kinds and "group_reduced" not in kinds
    assert any(isinstance(e, InputKernel) and e.layout.kind == "box_diag"
               for e in _laid_out(net))
    assert any(k.startswith("(D)") for k in net.derivation.rewrites)


def test_D_without_R_is_declined_not_half_applied():
    """A general group kernel has no diagonal layout, and the input feeding a lift must be
    full: (D) is declined for the whole chain instead of mixing layouts."""
    net = kernelc.compile(P4_FLAT, identities={"R": False})
    assert not net.derivation.decisions["D"].applied
    kinds = {e.layout.kind for e in _laid_out(net)}
    assert kinds <= {"box_full", "group_general"}
    x = _x()
    a = net.kernel_fn(x, dtype="float64")
    b = kernelc.compile(P4_FLAT).kernel_fn(x, dtype="float64")
    np.testing.assert_allclose(a["nngp"], b["nngp"], rtol=1e-12, atol=1e-14)


def test_without_the_registered_rewrite_the_plan_stays_general(monkeypatch):
    """The lowering never branches on (R): remove its rewrite from the table and the same
    decision leaves the general plan (general stencils, |H|² entries), with the same numbers
    and the general formulas in explain."""
    on = kernelc.compile(P4_POOL)
    table = dict(relayout.LAYOUT_REWRITES[LATTICE])
    table.pop("R")
    monkeypatch.setitem(relayout.LAYOUT_REWRITES, LATTICE, table)
    off = kernelc.compile(P4_POOL)
    assert off.derivation.decisions["R"].applied  # decided, but no rewrite to apply
    assert {e.layout.kind for e in _laid_out(off)} == {"box_full", "group_general"}
    assert "general_stencil(" in off.source and "general_stencil(" not in on.source
    gconv = [op for nd in off.derivation.nodes if nd.kind == "gconv" for op in nd.ops][0]
    assert "(general)" in gconv.formula
    assert gconv.entries == 4 * [op for nd in on.derivation.nodes if nd.kind == "gconv"
                                 for op in nd.ops][0].entries
    x = _x()
    a, b = on.kernel_fn(x, dtype="float64"), off.kernel_fn(x, dtype="float64")
    for key in ("nngp", "ntk"):
        np.testing.assert_allclose(a[key], b[key], rtol=1e-11, atol=1e-13)


def test_a_node_refuses_a_layout_it_has_no_form_for():
    with pytest.raises(ValueError, match="InputKernel has no form for a group_reduced kernel"):
        InputKernel(Layout("box_full", (5, 5)), "input").at(Layout("group_reduced", (5, 5), 4))


def test_two_rewrites_for_one_identity_are_refused(monkeypatch):
    monkeypatch.setitem(relayout.LAYOUT_REWRITES, LATTICE, dict(relayout.LAYOUT_REWRITES[LATTICE]))
    with pytest.raises(ValueError, match=r"identity \(R\) of lattice has two rewrites"):
        relayout.layout_rewrite(LATTICE, "R", "again", {}, "")


def test_relayout_moves_only_the_owners_the_decision_names():
    lay = Layout("box_full", (3,))
    a = InputKernel(lay, "a")
    b = Stencil.of(Ref("k"), "C", [[0], [1]], [[[1]]], None, ((0, 1),), (3,), "same", lay, "b")

    def layout_of(owner, layout):
        return Layout("box_diag", layout.box) if owner == "b" else layout
    from kernelc.ir.plan import relayout as move
    assert move(a, layout_of) == a
    assert move(b, layout_of).source() == "stencil(k, C_TERMS, 1, ((0, 1),), (3,), 'same')"


SO3_SMALL = ("group SO3\ninput sphere bandlimit 2 channels 1\nlift(bandlimit=2, grid=2)\nrelu\n"
             "gconv(bandlimit=2, grid=2)\nrelu\ngroup_pool\n")


def test_so3_R_is_a_rewrite_too():
    """SO(3)'s rules lower on every pair of grid points; (R) moves the same nodes to Wigner
    coefficients of K̃(q) (cross-correlation, projection, sampling) with its own cost."""
    general = kernelc.compile(SO3_SMALL, identities=GENERAL)
    reduced = kernelc.compile(SO3_SMALL)
    assert {e.layout.kind for e in _laid_out(general)} == {"so3_general"}
    assert {e.layout.kind for e in _laid_out(reduced)} == {"so3_reduced"}
    assert "so3_cross_correlation(" in reduced.source and "so3_lift_general(" in general.source
    assert any(k.startswith("(R)") for k in reduced.derivation.rewrites)
    lift = [op for nd in reduced.derivation.nodes if nd.kind == "lift" for op in nd.ops][0]
    assert "(R: Wigner coefficients" in lift.formula
    general_lift = [op for nd in general.derivation.nodes if nd.kind == "lift"
                    for op in nd.ops][0]
    assert general_lift.entries == 64 * 64 and lift.entries == 64 + 1
