"""The rewrite passes over the plan (kernelc/compiler/passes.py) and the promise that what
``explain`` shows is what runs: both print the same IR statements."""
from collections import Counter

import numpy as np
import pytest

import kernelc
from kernelc.compiler import passes
from kernelc.ir.plan import (Affine, Assign, Call, Code, Layout, Line, Lit, Num, Op, Param, Ref,
                             Sum, Value)
from kernelc.families.lattice import rules as lattice_rules

SPEC = ("network tiny\ngroup p4\ninput 4 x 4 channels 1\nlift(size=3, b_std=0.1)\nrelu\n"
        "group_pool\ndense(1, W_std=1.0)\n")


def test_unit_scale_folds_bottom_up():
    fired = Counter()
    e = passes.rewrite_expr(Affine(Num(1.0), Ref("k"), Affine(Num(1.0), Ref("t"))), fired)
    assert e == Sum((Ref("k"), Ref("t")))
    assert fired["unit scale"] == 2
    assert passes.rewrite_expr(Affine(Num(2.0), Ref("k")), Counter()) == Affine(Num(2.0), Ref("k"))
    # inside a call's arguments too
    e = passes.rewrite_expr(Call("f", (Affine(Lit(1.0), Ref("a")),)), Counter())
    assert e.source() == "f(a)"


def test_a_hyperparameter_is_never_folded():
    """σ_w² = params['dense1.W_std'] ** 2 is an argument of _propagate (1.0 only by default):
    folding it would drop the kernels' dependence on it (and its gradient)."""
    fired = Counter()
    e = Affine(Param("dense1.W_std", 1.0, 2), Ref("k"), Param("dense1.b_std", 1.0, 2))
    assert passes.rewrite_expr(e, fired) == e and not fired
    assert e.source() == "params['dense1.W_std'] ** 2 * k + params['dense1.b_std'] ** 2"


def _op(lines, ntk=()):
    return Op("affine", "test", list(lines), 1, 1, list(ntk))


def test_copies_are_forwarded_and_names_renamed_in_text():
    ops = [[_op([Assign(("k1",), Call("f", (Ref("x"),)))], [Assign(("t1",), Ref("k1"))])],
           [_op([Line("v = g(k1)")], [Assign(("t2",), Code("h(t1) * v", ("t1", "v")))])]]
    lay = Layout("vector")
    new_ops, values, out, report = passes.simplify(
        ops, [Value("k1", "t1", lay), Value("v", "t2", lay)], Value("v", "t2", lay))
    assert [s.source() for s in new_ops[0][0].ntk_lines] == []
    assert new_ops[1][0].ntk_lines[0].source() == "t2 = h(k1) * v"
    assert values[0].ntk == "k1" and report["copy forwarding"][1] == 1


def test_a_copy_of_a_reassigned_array_is_kept():
    """t = k, then k is masked in place (k = k * MASK): t must keep the unmasked value."""
    ops = [[_op([Assign(("k",), Call("f", ())), Assign(("t",), Ref("k")),
                 Line("k = k * MASK"), Line("u = t + k")])]]
    lay = Layout("vector")
    new_ops, _, _, report = passes.simplify(ops, [Value("u", None, lay)], Value("u", None, lay))
    assert [s.source() for s in new_ops[0][0].lines] == ["k = f()", "t = k", "k = k * MASK",
                                                          "u = t + k"]
    assert "copy forwarding" not in report


@pytest.fixture(scope="module")
def compiled():
    return kernelc.compile(SPEC)


def test_generated_code_is_folded(compiled):
    src = compiled.source
    assert "1.0 * " not in src
    # dense(W_std=1.0): σ_w² is an argument (params), not the constant 1, so it stays
    assert "k_dense1 = params['dense1.W_std'] ** 2 * k_group_pool1" in src
    assert "t_lift1 = k_lift1" not in src  # the lifting-layer NTK Θ = K is forwarded
    assert "copy forwarding" in compiled.explain() and "unit scale" not in compiled.explain()


def test_explain_shows_the_statements_that_run(compiled):
    text = compiled.explain()
    for nd in compiled.derivation.nodes:
        for op in nd.ops:
            for stmt in op.lines + op.ntk_lines:
                for line in stmt.source().split("\n"):  # a call split for reading: each line
                    assert line.strip() in compiled.source
                    assert line.strip() in text


def test_changing_a_rule_changes_code_and_explain_alike(monkeypatch):
    """A different affine rule (σ_b² doubled) shows up in both outputs and in the numbers."""
    x = np.random.default_rng(0).normal(size=(2, 4, 4, 1))
    before = kernelc.compile(SPEC)
    original = lattice_rules.affine_lines  # the lift's affine step (its family's rules)

    def doubled_bias(ctx, node, lin, out):
        hp = ctx.hp(node)
        return [Assign((out,), Affine(Num(hp["W_std"] ** 2), Ref(lin),
                                      Num(2 * hp["b_std"] ** 2 + 0.5)))]
    monkeypatch.setattr(lattice_rules, "affine_lines", doubled_bias)
    after = kernelc.compile(SPEC)
    # lift's W_std is 1 and a constant here: the unit-scale rewrite folds 1.0 * lin_lift1
    assert "k_lift1 = lin_lift1 + 0.52" in after.source
    assert "k_lift1 = lin_lift1 + 0.52" in after.explain()
    assert "0.52" not in before.source and "0.52" not in before.explain()
    monkeypatch.setattr(lattice_rules, "affine_lines", original)
    k0 = before.kernel_fn(x, dtype="float64", get="nngp")
    k1 = after.kernel_fn(x, dtype="float64", get="nngp")
    assert not np.allclose(k0, k1)


GCONV_SPEC = ("network joint\ngroup p4\ninput 4 x 4 channels 1\nlift(size=3, b_std=0.1)\nrelu\n"
              "gconv(size=3, b_std=0.1)\nrelu\ngconv(size=1)\ngroup_pool\ndense(1)\n")


def test_the_filter_sums_of_k_and_theta_are_one_call(monkeypatch):
    """S(K) and S(Θ) of a gconv become with_theta(S, K, Θ): the same numbers as two calls
    (float64, to rounding), fewer statements, and the NNGP alone (want_ntk False) still works."""
    joint = kernelc.compile(GCONV_SPEC)
    src = joint.source
    assert ("lin_gconv1, t_gconv1_lin = with_theta(reduced_stencil, k_relu1, "
            "t_relu1 if want_ntk else None, GCONV1_TERMS") in src
    assert "optimization_barrier" not in src  # with_theta keeps its own barrier
    assert "one filter sum for K and Θ" in joint.explain()
    monkeypatch.delitem(passes.PASSES, "one filter sum for K and Θ")
    separate = kernelc.compile(GCONV_SPEC + "# the pass removed\n")
    assert "with_theta" not in separate.source
    x = np.random.default_rng(1).normal(size=(3, 4, 4, 1))
    a, b = joint.kernel_fn(x, dtype="float64"), separate.kernel_fn(x, dtype="float64")
    for name in ("nngp", "ntk"):
        np.testing.assert_allclose(a[name], b[name], rtol=1e-13, atol=0)
    np.testing.assert_allclose(joint.kernel_fn(x, dtype="float64", get="nngp"), a["nngp"],
                               rtol=1e-13, atol=0)


def test_the_filter_sum_of_theta_equal_to_k_is_assigned():
    """After a lift Θ = K (copy forwarded), so S(Θ) is S(K): assigned, not computed again."""
    src = kernelc.compile("network alias\ngroup p4\ninput 4 x 4 channels 1\nlift(size=3)\n"
                          "gconv(size=3)\nrelu\ngroup_pool\ndense(1)\n").source
    assert "t_gconv1_lin = lin_gconv1" in src and "with_theta" not in src
