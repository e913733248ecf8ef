"""Gaussianity in the signal type (kernelc/frontend/gaussianity.py): every pattern where a
nonlinearity would receive a non-Gaussian input is refused with its message, position and
suggestion; the patterns the rules compute exactly get the right law.

The numbers of the accepted patterns are checked elsewhere: against the reference in
tests/compiler/test_reference_agreement.py (p4-composed-smooth, p4-concat-relu, p4-residual,
test_composed_nonlinearities_equal_their_closed_form) and by Monte Carlo in
tests/network/test_monte_carlo.py.
"""
from __future__ import annotations

import pytest

from kernelc.errors import ShapeError, SpecError
from kernelc.frontend import check
from kernelc.frontend.gaussianity import Activation, Concatenation, Gaussian

from .conftest import P4_HEADER as H
from .test_errors import assert_error, error_of

SO3 = "network t\ngroup SO3\ninput sphere bandlimit 2 channels 1\n"

RAW_INPUT = ("this nonlinearity (relu1) is applied to the raw input; the kernel maps of a "
             "nonlinearity assume a Gaussian pre-activation, and fixed input data is not one")
WEIGHT_FIRST = "put a weight layer (lift, conv or dense) before it"
PRE_ACTIVATION = ("use the pre-activation form: keep the nonlinearities inside the residual "
                  "branch, e.g. residual { relu; gconv; relu; gconv }, and put no nonlinearity "
                  "right before the block")
POOL_FIRST = ("apply the nonlinearity before pooling, or put a weight layer (dense) between the "
              "pooling and the nonlinearity")
NOT_GAUSSIAN = "this nonlinearity ({}) needs a Gaussian pre-activation, but its input is not " \
               "Gaussian: "


def pooled(name, line):
    return NOT_GAUSSIAN.format("relu2") + (
        f"'{name}' (line {line}) is a linear map of post-activation features; per channel it "
        "is a sum of dependent non-Gaussian terms, which is not Gaussian")


# -- refused ---------------------------------------------------------------------------------

@pytest.mark.parametrize("header", [H, SO3], ids=["p4", "SO3"])
def test_nonlinearity_on_the_raw_input_is_refused(header):
    text = header + "relu\nlift\ngroup_pool\ndense\n"
    assert_error(text, ShapeError, RAW_INPUT, 4, 1, suggestion=WEIGHT_FIRST, length=4)


def test_post_activation_residual_is_refused():
    text = H + ("lift(size=3)\nrelu\nresidual {\n  gconv(size=3)\n  relu\n  gconv(size=3)\n}\n"
                "relu\ngroup_pool\ndense\n")
    message = NOT_GAUSSIAN.format("relu3") + (
        "the residual block at line 6 adds the output of a nonlinearity (a post-activation "
        "residual), which is not Gaussian")
    assert_error(text, ShapeError, message, 11, 1, suggestion=PRE_ACTIVATION)


def test_post_activation_residual_inside_repeat_points_at_the_block():
    text = H + ("lift(size=3)\nrepeat 2 {\n  relu\n  residual {\n    gconv(size=3)\n  }\n}\n"
                "group_pool\ndense\n")
    err = assert_error(text, ShapeError, "a post-activation residual", 6, 3,
                       suggestion=PRE_ACTIVATION, in_message=True)
    assert "the residual block at line 7" in err.message


@pytest.mark.parametrize("pool, line", [("group_pool", 6), ("avg_pool", 6), ("flatten", 6)])
def test_nonlinearity_after_pooling_an_activation_is_refused(pool, line):
    tail = "dense\n" if pool != "avg_pool" else "group_pool\ndense\n"
    text = H + f"lift(size=3)\nrelu\n{pool}\nrelu\n" + tail
    assert_error(text, ShapeError, pooled(pool + "1", line), 7, 1, suggestion=POOL_FIRST)


def test_nonlinearity_after_pooling_a_concatenation_is_refused():
    text = H + ("lift(size=3)\nrelu\nconcat {\n  branch {\n    gconv(size=3)\n  }\n"
                "  branch {\n    gconv(size=1)\n    relu\n  }\n}\ngroup_pool\nrelu\ndense\n")
    message = NOT_GAUSSIAN.format("relu3") + (
        "'group_pool1' (line 15) pools a concatenation; the per-branch kernels a nonlinearity "
        "would need are not kept through pooling")
    assert_error(text, ShapeError, message, 16, 1,
                 suggestion="apply the nonlinearity before the pooling layer, or put a weight "
                            "layer between")


def test_a_composition_above_the_degree_limit_is_refused_at_the_outer_nonlinearity():
    text = H + "lift(size=3)\npoly(0, 0, 0, 1)\npoly(0, 0, 0, 0, 0, 0, 1)\ngroup_pool\ndense\n"
    assert_error(text, ShapeError,
                 "poly(0, 0, 0, 0, 0, 0, 1)∘poly(0, 0, 0, 1) is a polynomial of degree 18, "
                 "above 16; its exact kernel would take too long", 6, 1,
                 suggestion="put a weight layer between the two nonlinearities, or lower the "
                            "polynomials' degrees")


# -- exact -----------------------------------------------------------------------------------

def _laws(text):
    tg = check(text)
    return {tg.node(n).name: tg.node(n).out.law for n in tg.order()}


def test_consecutive_nonlinearities_compose_into_one_activation_of_the_lift():
    laws = _laws(H + "lift(size=3)\nrelu\nabs\nleaky_relu(0.1)\ngroup_pool\ndense\n")
    law = laws["leaky_relu1"]
    assert isinstance(law, Activation) and len(law.chain) == 3
    assert laws["lift1"] == Gaussian(law.source)
    # leaky_relu(0.1)∘|·|∘relu = relu: the two-slope closed form, not quadrature
    assert law.map.name == "leaky_relu(0.1)∘abs∘relu" and law.map.method == "closed form"


def test_smooth_composition_uses_quadrature():
    law = _laws(H + "lift(size=3)\nerf\nsin(degree=40)\ngroup_pool\ndense\n")["sin1"]
    assert law.map.name == "sin∘erf" and law.map.method == "gauss-hermite(n=40)"


def test_kinked_composition_without_closed_form_is_refused():
    text = H + "lift(size=3)\nrelu\nerf\ngroup_pool\ndense\n"
    assert_error(text, ShapeError,
                 "erf∘relu is not smooth (Max) and has no closed form in the rules table; "
                 "Gauss–Hermite quadrature of a kinked φ converges too slowly to be exact "
                 "(relu∘sin at n=32 is ~2% off in K⁺ and ~20% in K̇), so it is refused", 6, 1,
                 suggestion="put a weight layer between the nonlinearities, or use a smooth φ "
                            "(e.g. gelu in place of relu)")


def test_kinked_phi_expression_is_refused():
    err = error_of(H + "lift(size=3)\nphi(max(0, sin(x)))\ngroup_pool\ndense\n", SpecError)
    assert "is not smooth (Max)" in err.message and err.span.line == 5


def test_nonlinearity_after_concat_acts_per_block():
    laws = _laws(H + ("lift(size=3)\nrelu\nconcat {\n  branch {\n    gconv(size=3, width=3)\n"
                      "  }\n  branch {\n    gconv(size=1, width=1)\n    abs\n  }\n}\nrelu\n"
                      "group_pool\ndense\n"))
    law = laws["relu2"]
    assert isinstance(law, Concatenation)
    assert law.weights == (0.75, 0.25)
    assert isinstance(law.parts[0], Activation) and len(law.parts[0].chain) == 1
    assert isinstance(law.parts[1], Activation) and len(law.parts[1].chain) == 2  # relu∘abs


def test_pre_activation_residual_sum_is_gaussian():
    laws = _laws(H + ("lift(size=3)\nresidual {\n  relu\n  gconv(size=3)\n  relu\n"
                      "  gconv(size=3)\n}\nrelu\ngroup_pool\ndense\n"))
    sums = [law for name, law in laws.items() if name.startswith("residual")
            or name.startswith("sum")]
    assert sums and all(isinstance(law, Gaussian) for law in sums)
    assert isinstance(laws["relu3"], Activation)


def test_windowed_pool_of_an_activation_then_a_weight_layer():
    """avg_pool(size=2) is a fixed linear map: it keeps a Gaussian field Gaussian and a pooled
    activation non-Gaussian, which the next gconv makes Gaussian again for the relu after it
    (the numbers: tests/compiler/test_windowed_avg_pool.py)."""
    laws = _laws(H + "lift(size=3)\nrelu\navg_pool(size=2, stride=2)\ngconv(size=3)\nrelu\n"
                     "group_pool\ndense\n")
    assert not isinstance(laws["avg_pool1"], (Gaussian, Activation))
    assert isinstance(laws["gconv1"], Gaussian) and isinstance(laws["relu2"], Activation)
    laws = _laws(H + "lift(size=3)\navg_pool(size=3, stride=1)\nrelu\ngroup_pool\ndense\n")
    assert isinstance(laws["avg_pool1"], Gaussian)
    # a relu right after the windowed pool of an activation is refused
    text = H + "lift(size=3)\nrelu\navg_pool(size=2)\nrelu\ngroup_pool\ndense\n"
    assert_error(text, ShapeError, pooled("avg_pool1", 6), 7, 1, suggestion=POOL_FIRST)


def test_pooling_a_gaussian_field_keeps_it_gaussian():
    laws = _laws(H + "lift(size=3)\navg_pool\nrelu\ngroup_pool\ndense\n")
    assert isinstance(laws["avg_pool1"], Gaussian)
    assert isinstance(laws["relu1"], Activation)


def test_every_bundled_spec_types(spec_path):
    """Every bundled spec passes the Gaussianity check (p4_residual is pre-activation)."""
    check(spec_path)
