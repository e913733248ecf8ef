"""The lattice family's finite layers (kernelc.families.lattice.network) against brute-force
loops over sites, group elements and filter offsets (tests/network/reference.py), for every
padding and several groups, including rotational supports R ≠ H and supports that are not
centred boxes."""
import jax
import numpy as np
import pytest

import kernelc
from kernelc.network import network
from kernelc.network.filters import expansion_index

from tests.network import reference as ref

CASES = [  # group, box, padding
    ("p4", (5, 5), "same"), ("p4", (5, 5), "valid"), ("p4", (5, 5), "circular"),
    ("p4m", (4, 4), "same"), ("p4m", (6, 6), "valid"), ("p4m", (4, 4), "circular"),
    ("p6", (5, 5), "same"), ("p2", (4, 6), "circular"),
]


def _net(text):
    tg = kernelc.check(text)
    return tg, network(tg)


def _spec(group, box, channels, body):
    return (f"network t\ngroup {group}\ninput {' x '.join(map(str, box))} channels {channels}\n"
            f"{body}\n")


@pytest.mark.parametrize("group,box,padding", CASES)
def test_lift_and_gconv_match_brute_force(group, box, padding):
    rots = "[0, 1]" if group != "p2" else "[1]"
    tg, net = _net(_spec(group, box, 2,
                         f"lift(size=3, W_std=1.3, b_std=0.2, padding={padding})\n"
                         f"gconv(size=3, W_std=0.9, b_std=0.3, padding={padding}, rotations={rots})"))
    G = tg.group
    lift_n, gconv_n = tg.order()[1:3]
    hl, hg = tg.node(lift_n).hp, tg.node(gconv_n).hp
    x = np.random.default_rng(0).normal(size=(2,) + box + (2,))
    p = net.init(jax.random.PRNGKey(1), None, 3)
    P = {k: {n: np.asarray(v, np.float64) for n, v in d.items()} for k, d in p.items()}
    mask = G.domain_mask(box)
    x = x * mask[None, ..., None]  # the network zeroes inputs outside a hexagonal domain
    z1 = ref.lift(G, x, P["lift1"]["W"], P["lift1"]["b"], hl["support"], 1.3, 0.2, padding)
    if z1.shape[1:3] == box:
        z1 = z1 * mask[None, ..., None, None]
    z2 = ref.gconv(G, z1, P["gconv1"]["W"], P["gconv1"]["b"], hg["support"], hg["rotations"],
                   0.9, 0.3, padding)
    if z2.shape[1:3] == box:
        z2 = z2 * mask[None, ..., None, None]
    out = np.asarray(net.apply(p, x.astype(np.float32)))
    assert out.shape == z2.shape == net.output_shape(2, 3)
    np.testing.assert_allclose(out, z2, atol=2e-5)


@pytest.mark.parametrize("padding", ["same", "valid", "circular"])
def test_plain_conv_with_an_uncentred_support(padding):
    # Z2 accepts any support; this one is not symmetric and does not reach below 0 on axis 0
    body = (f"conv(support=[(0, 0), (1, 0), (0, 2), (2, -1)], W_std=1.1, b_std=0.4, "
            f"padding={padding})")
    tg, net = _net(_spec("Z2", (5, 6), 3, body))
    hp = tg.node(tg.order()[1]).hp
    x = np.random.default_rng(2).normal(size=(2, 5, 6, 3))
    p = net.init(jax.random.PRNGKey(3), None, 4)
    want = ref.conv(x, np.asarray(p["conv1"]["W"], np.float64), np.asarray(p["conv1"]["b"]),
                    hp["support"], 1.1, 0.4, padding)
    got = np.asarray(net.apply(p, x.astype(np.float32)))
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=2e-5)


def test_expansion_index_hits_every_weight_once_per_output_element():
    G = kernelc.groups.get_group("p4m")
    support = G.default_support(3)
    exp = expansion_index(G, support, range(G.order), G.order, (0, 2, 5))
    assert exp.index.shape == (9, 8, 8) and exp.kbox == (3, 3) and exp.pads == ((1, 1), (1, 1))
    for r in range(G.order):
        used = exp.index[:, :, r]
        hits = np.sort(used[used < exp.m * exp.n_rot])
        np.testing.assert_array_equal(hits, np.arange(exp.m * exp.n_rot))


def test_hexagonal_support_and_mask():
    tg, net = _net(_spec("p6", (5, 5), 1, "lift(size=3, W_std=1.0, b_std=1.0)"))
    exp = net.prepared(tg.order()[1])
    assert exp.m == 7 and exp.kbox == (3, 3)
    p = net.init(jax.random.PRNGKey(0), (5, 5, 1), 2)
    out = np.asarray(net.apply(p, np.zeros((1, 5, 5))))  # bias only: nonzero exactly on the hexagon
    mask = tg.group.domain_mask((5, 5))
    assert np.all(out[0][~mask] == 0) and np.all(out[0][mask] != 0)
    assert net.site_count((5, 5)) == 19 and net.site_count((3, 3)) == 9


@pytest.mark.parametrize("group, box, pool", [
    ("p4", (6, 6), "avg_pool(size=2)"), ("p4m", (5, 5), "avg_pool(size=3, stride=1)"),
    ("Z2", (5, 6), "avg_pool(size=2, stride=3)"), ("Z3", (4, 3, 5), "avg_pool(2, stride=1)")])
def test_windowed_avg_pool_matches_brute_force(group, box, pool):
    """The finite windowed mean (lax.reduce_window) against the loop over windows, on group
    features (N, *box, |H|, C) and box features (N, *box, C)."""
    first = "lift(size=3, b_std=0.2)" if group.startswith("p") else "conv(size=3, b_std=0.2)"
    tg, net = _net(_spec(group, box, 2, f"{first}\n{pool}"))
    p = net.init(jax.random.PRNGKey(4), None, 3)
    x = np.random.default_rng(5).normal(size=(2,) + box + (2,)).astype(np.float32)
    order = tg.order()
    feats = np.asarray(net.features(p, x, order[1]), np.float64)
    want = ref.window_pool(feats, len(box), tg.node(order[2]).hp["size"],
                           tg.node(order[2]).hp["stride"])
    got = np.asarray(net.apply(p, x))
    assert got.shape == want.shape == net.output_shape(2, 3)
    np.testing.assert_allclose(got, want, atol=1e-5)
