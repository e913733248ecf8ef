"""The plan's expression nodes: each prints itself, lists what it reads, and the passes rename
and rewrite through its children (kernelc.ir.plan, kernelc.compiler.passes)."""
from collections import Counter

import kernelc
from kernelc.compiler.passes import rename, rewrite_expr
from kernelc.families.lattice.plan import PoolMean
from kernelc.ir.plan import Affine, Assign, Map, Mean, Num, Ref
from kernelc.rules.nonlinearities import kernel_map


def test_a_map_node_prints_the_rules_map_at_its_arguments():
    relu = kernel_map("relu")
    node = relu.expr("K⁺", "k11", "k_conv1", "k22")
    assert isinstance(node, Map) and node.name == "relu" and node.part == "K⁺"
    assert node.source() == relu.emit_jax("k11", "k_conv1", "k22")[0]
    assert node.refs() == ("k11", "k_conv1", "k22")
    kdot = relu.expr("K̇", "k11", "k_conv1", "k22")
    assert Affine(kdot, Ref("t_conv1")).source() == \
        f"({relu.emit_jax('k11', 'k_conv1', 'k22')[1]}) * t_conv1"  # a map scale: parenthesised


def test_renaming_reaches_the_arguments_of_maps_and_means():
    relu = kernel_map("relu")
    stmt = Assign(("k_relu1",), relu.expr("K⁺", "k11", "k_dense1", "k22"))
    renamed = rename(stmt, {"k_dense1": "k_flatten1"})
    assert renamed.value.refs() == ("k11", "k_flatten1", "k22")
    assert renamed.source() == "k_relu1 = " + relu.emit_jax("k11", "k_flatten1", "k22")[0]
    mean = Assign(("k_pool",), Mean(Ref("k_relu1"), (1, 2), 16.0, keepdims=True))
    assert rename(mean, {"k_relu1": "k_x"}).source() == \
        "k_pool = pairwise_sum(k_x, (1, 2), keepdims=True) / 16.0"


def test_mean_forms():
    assert Mean(Ref("k"), None, 4.0).source() == "pairwise_sum(k, tuple(range(1, k.ndim))) / 4.0"
    assert Mean(Ref("k"), None, 1.0).source() == "pairwise_sum(k, tuple(range(1, k.ndim)))"
    assert Mean(Ref("k"), (1, 2, 3, 4), window=(2, 2)).source() == \
        "window_mean(k, (1, 2, 3, 4), 2, 2)"


def test_rewrites_apply_inside_a_mean():
    fired = Counter()
    out = rewrite_expr(Mean(Affine(Num(1.0), Ref("k")), None, 4.0), fired)
    assert out == Mean(Ref("k"), None, 4.0) and fired["unit scale"] == 1


def test_compiled_plans_hold_maps_and_means():
    net = kernelc.compile("group p4\ninput 4 x 4 channels 1\nlift(size=3)\nerf\ngroup_pool\n"
                          "dense(1)")
    values = [s.value for nd in net.derivation.nodes for op in nd.ops
              for s in op.lines + op.ntk_lines if isinstance(s, Assign)]
    assert [v.name for v in values if isinstance(v, Map)] == ["erf"]
    assert any(isinstance(v, Affine) and isinstance(v.scale, Map) for v in values)  # Θ⁺ = K̇ Θ
    means = [v for v in values if isinstance(v, PoolMean)]  # group_pool of K and Θ
    assert len(means) == 2
    # under (R) the pool reads K̃[t,t'](q): 4 rotations × 16² position pairs
    assert {m.layout.kind for m in means} == {"group_reduced"}
    assert means[0].mean() == Mean(means[0].x, None, 4.0 * 16 * 16)


def test_variance_shape_is_the_shape_of_a_self_pairs_diagonal():
    """Layout.variance_shape (a generated module's STATS_SHAPES) is the per-input shape that
    runtime.layouts.self_diagonal gives for a self pair's kernel, in every variance layout."""
    import numpy as np
    from kernelc.ir.plan import _VARIANCE_LAYOUTS, Layout
    from kernelc.runtime.layouts import self_diagonal
    for kind in _VARIANCE_LAYOUTS:
        layout = Layout(kind, box=(3, 2), order=4)
        k = np.zeros((5,) + layout.pair_shape)
        assert self_diagonal(kind, layout.d, k).shape == (5,) + layout.variance_shape, kind

