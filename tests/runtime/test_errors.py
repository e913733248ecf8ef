"""Messages of the runtime's argument checks: kernel_fn's and kernel's inputs, hyperparameter
dicts, and a Gram matrix that overflows float32. One tiny network for the module."""
import jax
import numpy as np
import pytest

import kernelc
from kernelc.errors import InputError, KernelcError

SPEC = ("network tiny_err\ngroup Z2\ninput 3 x 3 channels 1\nconv(size=3, W_std=1.4, b_std=0.1)\n"
        "relu\navg_pool\nflatten\ndense(1)\n")


@pytest.fixture(scope="module")
def net():
    return kernelc.compile(SPEC)


def test_kernel_fn_names_a_missing_or_ragged_input(net):
    with pytest.raises(InputError, match=r"^input error: x1 is missing$"):
        net.kernel_fn(None)
    with pytest.raises(InputError, match=r"x2 is not an array: "):
        net.kernel_fn(np.zeros((1, 3, 3, 1)), [[1.0], [1.0, 2.0]])


def test_kernel_names_a_missing_or_ragged_input_and_bad_params(net):
    x = np.zeros((1, 3, 3, 1))
    with pytest.raises(InputError, match=r"^input error: x1 is missing$"):
        net.kernel(None)
    with pytest.raises(InputError, match=r"x2 is not an array: "):
        net.kernel(x, [[1.0], [1.0, 2.0]])
    with pytest.raises(InputError, match=r"params must be a dict of hyperparameters by name "
                                         r"\(e\.g\. \{'conv1\.W_std': 1\.0\}\), got list"):
        net.kernel(x, params=[1.0])


def test_kernel_fn_with_refuses_traced_values(net):
    def f(w):
        return net.kernel_fn_with({"conv1.W_std": w})
    with pytest.raises(KernelcError, match=r"kernel_fn_with takes plain numbers \(the tiled driver "
                                           r"compiles them in\); to differentiate, use "
                                           r"\.kernel\(\.\.\., params=\.\.\.\)"):
        jax.grad(f)(1.0)


def test_a_gram_matrix_that_overflows_float32_is_refused(net):
    x = np.full((2, 3, 3, 1), 1e25)  # finite inputs whose squares overflow float32
    with pytest.raises(InputError, match=r"the (nngp|ntk) Gram matrix has non-finite entries; the "
                                         r"inputs may be too large for float32 \(try "
                                         r"dtype='float64'\)"):
        net.kernel_fn(x, dtype="float32")
