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
    # Σ x² = 2.25e38 fits float32; W_std = 1000 makes the first layer's variance overflow
    x = np.full((2, 3, 3, 1), 5e18)
    with pytest.raises(InputError, match=r"the (nngp|ntk) Gram matrix has non-finite entries; the "
                                         r"inputs or the weight variances may be too large for "
                                         r"float32 \(try "
                                         r"dtype='float64'\)"):
        net.kernel_fn_with({"conv1.W_std": 1e3})(x, dtype="float32")


def test_inputs_whose_sum_of_squares_overflows_the_dtype_are_refused():
    # erf is bounded: an overflowed variance gave the NNGP [[1, -1], [-1, 1]] (± W_std²) without
    # a word, in float32 from |x| ~1e19 and in float64 from ~1e154
    erf_net = kernelc.compile("network erf_big\ngroup Z2\ninput 2 x 2 channels 1\nflatten\n"
                              "dense(4)\nerf\ndense(1)\n")
    x = np.random.default_rng(0).normal(size=(2, 2, 2, 1))
    small = erf_net.kernel_fn(x * 1e18, get="nngp", dtype="float32")
    assert abs(small[0, 1]) < 0.99  # a real correlation, not the ±1 of an overflow
    with pytest.raises(InputError, match=r"^input error: x1 has values too large for float32: the "
                                         r"sum of squares of input 1 is ~1e40, beyond the largest "
                                         r"float32 \(3\.4e\+38\), and the kernels start from "
                                         r"x·x' \(try dtype='float64' or scale them down\)$"):
        erf_net.kernel_fn(x * 1e20, get="nngp", dtype="float32")
    with pytest.raises(InputError, match=r"^input error: x2 has values too large for float64: .* "
                                         r"\(scale them down\)$"):
        erf_net.kernel_fn(x, x * 1e160, get="nngp", dtype="float64")
    # the same overflow inside the network (W_std² = 1e40 is inf in float32): the NaN of the
    # overflowed variance reaches the finiteness check, as atan2 and as the fast polynomial
    for fast_maps in (False, True):
        with pytest.raises(InputError, match=r"^input error: the nngp Gram matrix has non-finite "
                                             r"entries; the inputs or the weight variances may be "
                                             r"too large for float32"):
            erf_net.kernel_fn_with({"dense1.W_std": 1e20})(x, get="nngp", dtype="float32",
                                                           fast_maps=fast_maps)


# -- arguments that used to end in a raw TypeError/ValueError, or a misleading message ----------
def test_kernel_fn_refuses_get_and_dtype_values_it_cannot_read(net):
    x = np.zeros((2, 3, 3, 1))
    for get in (None, 1, b"ntk"):
        with pytest.raises(InputError, match=r"get must name 'nngp' and/or 'ntk' \(a string, or "
                                             r"a tuple of them\), got " + repr(get)[:2]):
            net.kernel_fn(x, get=get)
        with pytest.raises(InputError, match=r"get must name 'nngp' and/or 'ntk'"):
            net.kernel(x, get=get)
    for dtype in ("foo", 1, None, ["float32"]):  # None was numpy's float64, silently
        with pytest.raises(InputError, match=r"dtype must be float32 or float64, got "):
            net.kernel_fn(x, dtype=dtype)


def test_kernel_fn_refuses_duplicate_devices_an_odd_out_and_names_what_it_got(net):
    x = np.zeros((2, 3, 3, 1))
    dev = jax.devices()[0]
    with pytest.raises(InputError, match=r"devices lists a device more than once"):
        net.kernel_fn(x, devices=[dev, dev])
    with pytest.raises(InputError, match=r"devices must be a non-empty list of JAX devices "
                                         r"\(e\.g\. jax\.devices\(\)\), got CpuDevice"):
        net.kernel_fn(x, devices=dev)  # one device, not a list: the message said "got None"
    with pytest.raises(InputError, match=r"out must be a folder path \(str or os\.PathLike\), "
                                         r"got 3"):
        net.kernel_fn(x, out=3)


def test_a_memory_budget_beyond_int64_is_read(net):
    x = np.random.default_rng(0).normal(size=(2, 3, 3, 1))
    gram = net.kernel_fn(x, get="nngp", max_memory=2 ** 70)  # np.isfinite refused the int
    assert gram.shape == (2, 2)


def test_a_float64_overflow_does_not_suggest_float64(net):
    with pytest.raises(InputError, match=r"inputs or the weight variances may be too large "
                                         r"for float64 \(scale them "
                                         r"down\)$"):
        # Σ x² = 9e306 fits float64; W_std = 1000 makes the first layer's variance overflow
        net.kernel_fn_with({"conv1.W_std": 1e3})(np.full((2, 3, 3, 1), 1e153), get="nngp",
                                                 dtype="float64")


def test_kernel_checks_hyperparameter_values_before_its_jit(net):
    x = np.zeros((1, 3, 3, 1))
    # a text value failed inside jax.jit's argument handling; a complex one ran (σ² = -1)
    with pytest.raises(InputError, match=r"hyperparameter conv1\.W_std must be a number or a "
                                         r"scalar array, got str"):
        net.kernel(x, params={"conv1.W_std": "1.0"})
    with pytest.raises(InputError, match=r"hyperparameter conv1\.W_std must be a real number, "
                                         r"got complex128"):
        net.kernel(x, params={"conv1.W_std": np.complex128(1j)})
    with pytest.raises(InputError, match=r"hyperparameter\(s\) conv1\.W_std must be finite, "
                                         r"got nan"):
        net.kernel_fn_with({"conv1.W_std": float("nan")})


def test_explain_refuses_a_size_or_dtype_it_cannot_cost(net):
    from kernelc.errors import ExplainError
    for n in (0, -1, 1.5, "10", True):  # -1 and 1.5 printed a report, "10" a TypeError
        with pytest.raises(ExplainError, match=r"n \(CLI: --n N\), the number of inputs of the "
                                               r"Gram matrix, must be a whole number ≥ 1, got "):
            net.explain(n=n)
    for dtype in ("foo", "float16", None):  # float16 was costed at 2 bytes an entry
        with pytest.raises(ExplainError, match=r"dtype must be float32 or float64, got "):
            net.explain(n=4, dtype=dtype)
    with pytest.raises(ExplainError, match=r"style must be 'unicode', 'latex' or 'markdown', "
                                           r"got 'x'"):
        net.formulas(style="x")
