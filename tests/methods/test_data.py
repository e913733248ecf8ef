import re

import numpy as np
import pytest

from kernelc.errors import InputError
from kernelc.methods import as_images, load_arrays, load_mnist
from kernelc.methods import data as data_mod


def test_load_arrays(tmp_path):
    f = tmp_path / "d.npz"
    np.savez(f, x=np.ones((3, 2)), y=np.arange(3), images=np.zeros((3, 4, 4)))
    x, y = load_arrays(f)
    assert x.shape == (3, 2) and y.tolist() == [0, 1, 2]
    x, y = load_arrays(f, x_key="images")
    assert x.shape == (3, 4, 4)
    g = tmp_path / "nolabel.npz"
    np.savez(g, x=np.ones(2))
    assert load_arrays(g)[1] is None


def test_load_arrays_errors(tmp_path):
    f = tmp_path / "d.npz"
    np.savez(f, x_train=np.ones((3, 2)), labels=np.arange(3), bad=np.array([1.0, np.nan]))
    with pytest.raises(InputError, match=r"no array 'x_trian'.*available: bad, labels, x_train; did you mean 'x_train'\?"):
        load_arrays(f, x_key="x_trian")
    with pytest.raises(InputError, match=r"no array 'x'.*pass x_key= to choose one"):
        load_arrays(f)
    with pytest.raises(InputError, match=r"array 'bad' in .* contains 1 NaN/inf"):
        load_arrays(f, x_key="bad")
    with pytest.raises(InputError, match=r"data file not found: .*missing.npz"):
        load_arrays(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_text("not a zip")
    with pytest.raises(InputError, match=r"junk.npz is not an .npz archive \(no zip header\)"):
        load_arrays(tmp_path / "junk.npz")
    np.save(tmp_path / "arr.npy", np.ones(3))
    with pytest.raises(InputError, match=r"is a single .npy array, expected an .npz archive"):
        load_arrays(tmp_path / "arr.npy")
    np.savez(tmp_path / "obj.npz", x=np.array([{}, 1], dtype=object))
    with pytest.raises(InputError, match=r"cannot be read without pickle"):
        load_arrays(tmp_path / "obj.npz")
    h = tmp_path / "mismatch.npz"
    np.savez(h, x=np.ones((3, 2)), y=np.ones(4))
    with pytest.raises(InputError, match=r"'x' has 3 samples but 'y' has 4"):
        load_arrays(h)


def test_as_images():
    u8 = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)
    out = as_images(u8)
    assert out.shape == (1, 2, 2, 1) and out.dtype == np.float64
    assert np.allclose(out[0, :, :, 0], [[0, 1], [0.2, 0.4]])
    assert as_images(u8, channels_last=False).shape == (1, 1, 2, 2)
    assert as_images(np.full((2, 3, 3, 3), 7.0)).max() == 7.0  # floats are not rescaled
    with pytest.raises(InputError, match=r"images must be \(N, H, W\)"):
        as_images(np.zeros((4, 4)))


def test_load_mnist_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("KERNELC_DATA", str(tmp_path))
    monkeypatch.setattr(data_mod, "_REPO_ROOT", tmp_path / "repo")
    with pytest.raises(InputError, match=r"MNIST data not found; looked in: .*mnist_test10k.npz.*KERNELC_DATA"):
        load_mnist()


def test_load_mnist_shared():
    path = data_mod._REPO_ROOT.parent / "shared" / "data" / data_mod.MNIST_FILE
    if not path.is_file():
        pytest.skip(f"shared MNIST subset not present at {path}")
    d = load_mnist(path)
    assert d.x_train.shape == (8000, 28, 28, 1) and d.x_test.shape == (2000, 28, 28, 1)
    assert 0.0 <= d.x_train.min() and d.x_train.max() <= 1.0
    assert set(np.unique(d.y_test)) == set(range(10))


def test_as_images_refuses_empty_and_non_numeric_stacks():
    with pytest.raises(InputError, match=r"^input error: no images \(N = 0\)$"):
        as_images(np.zeros((0, 4, 4)))
    with pytest.raises(InputError, match=r"images must be numeric, got dtype <U1"):
        as_images(np.full((1, 2, 2), "a"))


def test_an_unreadable_data_file_is_named(tmp_path, monkeypatch):
    f = tmp_path / "d.npz"
    np.savez(f, x=np.ones((2, 3)))

    def denied(*a, **k):  # what open() raises on a file without read permission (root reads all)
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(data_mod, "open", denied, raising=False)
    with pytest.raises(InputError, match=rf"cannot read {re.escape(str(f))}: Permission denied"):
        load_arrays(f)
