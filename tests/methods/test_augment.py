"""Data augmentation ⇔ GCNN: the orbit-averaged CNN kernel equals the GCNN kernel, exactly.

Tiny 6×6 inputs, 4 training images, float64. Relative tolerance 1e-10 for the kernels (the ReLU
NTK itself carries ~1e-12 round-off: its arccos is ill-conditioned at correlation 1); the mean
predictions are held to 1e-10 × cond(training kernel), their first-order perturbation bound, and
for erf (no such round-off) to 1e-10 outright.
"""
import numpy as np
import pytest

import kernelc
from kernelc.cli import main
from kernelc.errors import SpecError
from kernelc.methods.augment import _require_da_cnn, augmented_kernel, check_augmentation


def gcnn_spec(group, act, w=1.5):
    return f"""network g_{group}_{act}
group {group}
input 6 x 6 channels 1
lift(size=3, W_std={w}, b_std=0.1)
{act}
gconv(size=3, W_std={w}, b_std=0.1)
{act}
group_pool
dense(2)
"""


def cnn_spec(act, w=1.5, name="c"):
    return f"""network {name}_{act}
group Z2
input 6 x 6 channels 1
conv(size=3, W_std={w}, b_std=0.1)
{act}
conv(size=3, W_std={w}, b_std=0.1)
{act}
avg_pool
flatten
dense(2)
"""


def _x(n=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 6, 6, 1)) + rng.normal(size=(n, 1, 1, 1))


@pytest.mark.parametrize("group,act", [("p4", "erf"),
                                       pytest.param("p4m", "relu", marks=pytest.mark.slow),
                                       pytest.param("p4m", "erf", marks=pytest.mark.slow)])
def test_check_passes_exactly(group, act):
    cnn, gcnn = kernelc.compile(cnn_spec(act)), kernelc.compile(gcnn_spec(group, act))
    rep = check_augmentation(cnn, gcnn, group, _x(), tol=1e-10)
    assert rep.passed, str(rep)
    assert rep.kernel_max <= 1e-10
    assert set(rep.kernel_diffs) == {"nngp", "ntk"}
    assert any("t=inf" in k for k in rep.prediction_diffs) and len(rep.times) >= 3
    assert rep.n_test == 2 + 4  # noise inputs off the data manifold + transformed training inputs
    if act == "erf":
        assert rep.prediction_max <= 1e-10
    else:
        assert rep.prediction_max <= 1e-10 * rep.condition
    assert "AGREE" in str(rep)


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


@pytest.mark.slow  # 7 s; test_cli_check_fails_loudly_when_specs_do_not_correspond stays fast
def test_cli_check_p4_relu_passes(tmp_path, capsys):
    c = _write(tmp_path, "c.kc", cnn_spec("relu"))
    g = _write(tmp_path, "g.kc", gcnn_spec("p4", "relu"))
    rc = main(["augment", c, "--group", "p4", "--check", g, "--random", "4", "--tol", "1e-10"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "AGREE" in out and "NTK   kernel" in out and "t=inf" in out


def test_cli_check_fails_loudly_when_specs_do_not_correspond(tmp_path, capsys):
    c = _write(tmp_path, "c.kc", cnn_spec("relu", w=1.4, name="c14"))
    g = _write(tmp_path, "g.kc", gcnn_spec("p4", "relu", w=1.5))
    rc = main(["augment", c, "--group", "p4", "--check", g, "--random", "4"])
    cap = capsys.readouterr()
    assert rc == 1
    assert "AUGMENTATION CHECK FAILED" in cap.err and "DO NOT AGREE" in cap.err
    assert "does not correspond" in cap.out and "W_std=1.4" in cap.out and "W_std=1.5" in cap.out
    assert "AGREE:" not in cap.out


def test_augmented_kernel_refuses_non_cnn_and_asymmetric_support():
    x = _x(2)
    with pytest.raises(SpecError, match="already has the group p4"):
        augmented_kernel(kernelc.compile(gcnn_spec("p4", "relu")), "p4", x)
    lopsided = cnn_spec("relu").replace("conv(size=3, W_std=1.5, b_std=0.1)\nrelu\nconv",
                                        "conv(support=[[0, 0], [0, 1]], W_std=1.5)\nrelu\nconv", 1)
    with pytest.raises(SpecError, match="not invariant under"):
        augmented_kernel(kernelc.compile(lopsided), "p4", x)
    spatial = "network s\ngroup Z2\ninput 6 x 6 channels 1\nconv(size=3)\nrelu\nconv(size=3)\n"
    with pytest.raises(SpecError, match="spatial output"):
        augmented_kernel(kernelc.compile(spatial), "p4", x)


def _windowed_cnn(n, size, stride):
    return f"""network w
group Z2
input {n} x {n} channels 1
conv(size=3, W_std=1.5, b_std=0.1)
erf
avg_pool(size={size}, stride={stride})
conv(size=1, W_std=1.5)
erf
flatten
dense(2)
"""


def test_windowed_avg_pool_needs_windows_symmetric_about_the_centre():
    """avg_pool(size=k, stride=s) keeps the CNN kernel jointly invariant iff ρ(H) maps windows to
    windows, i.e. (n − k) is a multiple of s: 6×6 with k = 3, s = 2 leaves the last column out
    and is refused; 4×4 with k = s = 2 tiles the box, the check accepts it, and
    k(ρ(h)f, ρ(h)f') = k(f, f') for every h ∈ p4m (docs/math/augmentation.md)."""
    with pytest.raises(SpecError, match=r"windows of avg_pool1 \(size=3, stride=2\) on the 6×6 "
                                        r"box are not symmetric"):
        augmented_kernel(kernelc.compile(_windowed_cnn(6, 3, 2)), "p4m", _x(2))
    cnn = kernelc.compile(_windowed_cnn(4, 2, 2))
    G = kernelc.groups.get_group("p4m")
    x = _x(2)[:, 1:5, 1:5]
    orbit = np.concatenate([np.asarray(G.transform_signal(x, h, spatial_axes=(1, 2)))
                            for h in range(G.order)])
    gram = cnn.kernel_fn(orbit, get=("nngp", "ntk"), dtype="float64")
    for k in ("nngp", "ntk"):
        blocks = gram[k].reshape(G.order, 2, G.order, 2)
        same_h = np.stack([blocks[h, :, h] for h in range(G.order)])
        assert np.abs(same_h - same_h[0]).max() <= 1e-12 * np.abs(same_h[0]).max()
    _require_da_cnn(cnn, G)  # the check augmented_kernel runs: accepted


@pytest.mark.parametrize("group", ["C8", "SO3"])
def test_a_group_that_does_not_permute_the_grid_is_refused(group):
    """The augmented ensemble averages over permutations of the sites: C8's 45° rotation and
    SO(3) are none (they used to fail with an AttributeError)."""
    cnn = "network c\ngroup Z2\ninput 5 x 5 channels 1\nconv(3)\nrelu\navg_pool\nflatten\ndense(1)\n"
    with pytest.raises(SpecError, match=f"{group} is not a lattice point group"):
        augmented_kernel(cnn, group, np.zeros((2, 5, 5, 1)))


# -- argument errors (before any kernel is computed) -------------------------------------------
CNN5 = "network c5\ngroup Z2\ninput 5 x 5 channels 1\nconv(3)\nrelu\navg_pool\nflatten\ndense(1)\n"


@pytest.fixture(scope="module")
def cnn5():
    return kernelc.compile(CNN5)


def test_augmented_kernel_refuses_bad_groups_and_inputs(cnn5):
    from kernelc.errors import InputError
    x = np.zeros((2, 5, 5, 1))
    with pytest.raises(InputError, match=r"^input error: no group given$"):
        augmented_kernel(cnn5, None, x)
    with pytest.raises(InputError, match=r"group must be a group name or a LatticeGroup, got 5"):
        augmented_kernel(cnn5, 5, x)
    with pytest.raises(SpecError, match=r"spec 'c5' works on Z\^2 but O acts on Z\^3"):
        augmented_kernel(cnn5, "O", x)
    with pytest.raises(SpecError, match=r"the input box of 'c6x5' cannot be transformed by p4: "):
        augmented_kernel(CNN5.replace("c5", "c6x5").replace("5 x 5", "6 x 5"), "p4", x)
    with pytest.raises(InputError, match=r"x1 has shape \(2, 4, 4, 1\), but spec 'c5' takes "
                                         r"\(N, 5, 5, 1\) inputs"):
        augmented_kernel(cnn5, "p4", np.zeros((2, 4, 4, 1)))
    with pytest.raises(InputError, match=r"x1 must hold real numbers, got dtype <U1"):
        augmented_kernel(cnn5, "p4", np.full((2, 5, 5, 1), "a"))


def test_check_augmentation_refuses_bad_pairs_and_too_few_inputs(cnn5):
    from kernelc.errors import InputError
    with pytest.raises(SpecError, match=r"spec 'c5' has no point group to check against \(its group "
                                        r"is trivial\): pass the GCNN spec to --check"):
        check_augmentation(cnn5, cnn5, "p4")
    g6 = gcnn_spec("p4", "relu")
    with pytest.raises(SpecError, match=r"the specs take different inputs: 'c5' \(5, 5, 1\), "
                                        r"'g_p4_relu' \(6, 6, 1\)"):
        check_augmentation(cnn5, g6)
    c6 = cnn_spec("relu")
    with pytest.raises(InputError, match=r"^input error: check_augmentation needs at least 2 "
                                         r"training inputs$"):
        check_augmentation(c6, g6, n_random=1)
    with pytest.raises(InputError, match=r"check_augmentation needs at least 2 training inputs, "
                                         r"got 1"):
        check_augmentation(c6, g6, x=_x(1))


def test_augmented_kernel_refuses_a_get_it_cannot_read(cnn5):
    from kernelc.errors import InputError
    with pytest.raises(InputError, match=r"get must name 'nngp' and/or 'ntk' \(a string, or a "
                                         r"tuple of them\), got None"):
        augmented_kernel(cnn5, "p4", np.zeros((2, 5, 5, 1)), get=None)  # was a raw TypeError
