"""The tiled driver: passes compiled once per shape, and a long compilation announced with its
estimate before XLA starts (kernelc.runtime.driver.CompiledPass)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import kernelc
from kernelc.runtime import driver

SPEC = "network tiny\ngroup p4\ninput 3 x 3 channels 1\nlift(size=3)\nrelu\ngroup_pool\ndense(1)\n"


@pytest.fixture(scope="module")
def net():
    return kernelc.compile(SPEC)


def test_count_operations_enters_loop_bodies():
    def body(c, x):
        return c + jnp.sin(x) * 2.0, None

    jaxpr = jax.make_jaxpr(lambda xs: jax.lax.scan(body, 0.0, xs)[0] + 1.0)(jnp.ones(3))
    inner = len(jaxpr.jaxpr.eqns[0].params["jaxpr"].jaxpr.eqns)  # sin, mul, (convert), add
    assert inner >= 3
    assert driver.count_operations(jaxpr.jaxpr) == 2 + inner  # scan and add outside


def test_a_long_compilation_is_announced_with_its_estimate(net, monkeypatch, capsys):
    x = np.random.default_rng(0).normal(size=(2, 3, 3, 1))
    monkeypatch.setattr(driver, "COMPILE_NOTICE_SECONDS", 0.0)  # every compilation is "long"
    net.kernel_fn(x, get="nngp", progress=True, check_precision=False)
    err = capsys.readouterr().err
    assert "kernelc: compiling the diagonal pass for float32 (" in err
    assert "kernelc: compiling the Gram-tile pass for float32 (" in err
    assert "array operations, ~" in err and "s estimated; once per input shape) ... done in" in err
    assert driver.COMPILE_SECONDS_PER_OPERATION[0] > 0  # measured by these compilations
    net.kernel_fn(x, get="nngp", progress=True, check_precision=False)  # compiled: no notice
    assert "compiling" not in capsys.readouterr().err
    net.kernel_fn(x, get="nngp", dtype="float64", progress=False, check_precision=False)
    assert capsys.readouterr().err == ""  # progress off: silent


def test_kernel_fn_checks_its_gram_matrices_for_psd(net, monkeypatch):
    """kernel_fn hands the Gram matrices of x1 with itself to runtime.psd, not cross matrices."""
    x = np.random.default_rng(0).normal(size=(2, 3, 3, 1))
    seen = []
    monkeypatch.setattr(driver, "check_grams", lambda grams, dtype: seen.append(sorted(grams)))
    net.kernel_fn(x, x[:1], get="nngp", check_precision=False)
    assert seen == []
    net.kernel_fn(x, get="nngp", check_precision=False)
    assert seen == [["nngp"]]
