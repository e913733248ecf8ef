"""The messages of the rules' error paths reached through their public functions
(:func:`kernelc.rules.nonlinearities.kernel_map`, :func:`kernelc.rules.gaussian.gaussian_moment`)."""
from __future__ import annotations

import pytest
import sympy

from kernelc.errors import SpecError
from kernelc.rules.gaussian import gaussian_moment
from kernelc.rules.nonlinearities import _MAX_QUAD_DEGREE, kernel_map, x


def test_a_negative_moment_order():
    k = sympy.Symbol("k")
    with pytest.raises(ValueError, match="^moment orders must be non-negative$"):
        gaussian_moment(-1, 2, k, k, k)


def test_phi_needs_exactly_one_expression_and_no_numbers():
    with pytest.raises(SpecError, match=r"^error: phi takes one expression in x, e\.g\. "
                                        r"phi\(x\*sigmoid\(x\)\)$"):
        kernel_map("phi", (1.0,), expr=x)
    with pytest.raises(SpecError, match=r"^error: phi needs an expression in x, e\.g\. "
                                        r"phi\(x\*sigmoid\(x\)\)$"):
        kernel_map("phi")


def test_phi_of_text_is_refused_not_sympified():
    with pytest.raises(SpecError, match="^error: phi needs a sympy expression in x, got str$"):
        kernel_map("phi", expr="x*sigmoid(x)")


@pytest.mark.parametrize("degree", [0, _MAX_QUAD_DEGREE + 1, 2.5, True])
def test_a_quadrature_degree_out_of_range(degree):
    with pytest.raises(SpecError, match=f"^error: quadrature degree must be an integer in "
                                        f"1..{_MAX_QUAD_DEGREE}, got {degree!r}$"):
        kernel_map("phi", expr=sympy.tanh(x), quad_degree=degree)
